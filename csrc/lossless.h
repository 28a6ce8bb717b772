// The shuffled lz4 stages in one call each (docs/codec.md, "shuf" and "bshuf" stages):
// byte planes -> judged -> (bit-transposed) -> lz4, and back. The stored layout is the one the
// Python reference in edgeinf/codec.py writes and reads: `size` little-endian u32 plane
// lengths, then each plane, either lz4 (length < n) or its n bytes stored as they are.
// Plain functions over pointers and sizes; no Python. Untrusted input is bounded before use.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu.h"

namespace edgeinf {

// Bytes of dst lz4_pack_planes may write to for `len` payload bytes of `size`-byte elements:
// the lengths, every plane stored, and lz4's worst-case overrun of one plane (a plane is only
// kept compressed when it is smaller; the count returned never exceeds 4 * size + len).
size_t lz4_pack_bound(size_t len, int size);

// Pack payload[0, len) (len % size == 0, size 2 or 4): each byte plane of at least
// 4 * sample bytes judged on its first `sample` bytes (has_repeats); noise is stored without
// trying lz4. With bitplanes, a plane tried is bit-transposed first (and stored untransposed
// when lz4 does not shrink it). Writes at most lz4_pack_bound bytes to dst; returns the count.
// scratch: len + len / size bytes.
size_t lz4_pack_planes(Isa isa, const uint8_t* payload, size_t len, int size, bool bitplanes, size_t sample,
                       uint8_t* scratch, uint8_t* dst);

// Unpack what lz4_pack_planes wrote (comp[0, clen), untrusted) into `size` planes of n bytes:
// planes[b] points into comp for a stored plane, else into scratch (size * n bytes) where the
// plane was decompressed (and bit-untransposed: tmp, n bytes, with bitplanes). Returns nullptr,
// or what is wrong (a static string) for a malformed payload.
const char* lz4_unpack_planes(Isa isa, const uint8_t* comp, size_t clen, int size, size_t n, bool bitplanes,
                              uint8_t* scratch, uint8_t* tmp, const uint8_t** planes);

// One lz4 block of src[0, n) into dst (capacity >= lz4_block_bound(n)), with a freshly
// zeroed stream: python-lz4's lz4.block.compress bytes. Returns the block's length.
size_t lz4_block_bound(size_t n);
size_t lz4_block_compress(const uint8_t* src, size_t n, uint8_t* dst);
// Inflate an untrusted block into exactly n bytes of dst: nullptr, or what is wrong.
const char* lz4_block_decompress(const uint8_t* src, size_t len, uint8_t* dst, size_t n);

int lz4_library_version();

}  // namespace edgeinf
