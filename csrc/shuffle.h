// Byte shuffle: the bytes of n elements of `size` bytes (2 or 4) regrouped into size planes,
// plane b holding byte b of every element (blosc's "shuffle"). Floats' sign/exponent bytes
// then sit together, where a lossless stage finds their redundancy; mantissa planes that
// stay random are stored as they are (see docs/codec.md, "shuf" stages).
// Plain functions over pointers and sizes; no allocation, no Python.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu.h"

namespace edgeinf {

struct ShuffleOps {
    // out[b * n + i] = in[i * size + b]
    void (*shuffle)(const uint8_t* in, size_t n, int size, uint8_t* out);
    // out[i * size + b] = planes[b][i]: the planes need not be adjacent (a staged decode
    // passes each where lz4/zstd left it, with no copy to join them)
    void (*unshuffle)(const uint8_t* const* planes, size_t n, int size, uint8_t* out);
    // Bit planes of n bytes (the "bshuf" stages: a byte plane bit-transposed before lz4).
    // With m = n - n % 8: plane k (bit k, 0 = least significant) is out[k * m/8 .. (k+1) * m/8),
    // whose byte j has in bit i the bit k of in[8j + i]; the n % 8 trailing bytes follow as is.
    void (*bitplanes)(const uint8_t* in, size_t n, uint8_t* out);
    void (*unbitplanes)(const uint8_t* in, size_t n, uint8_t* out);  // the inverse
};
extern const ShuffleOps kShuffleGeneric;
const ShuffleOps& shuffle_ops(Isa isa);

// Element ranges [i0, n) for the SIMD tails (shared by every ISA table).
void shuffle_tail(const uint8_t* in, size_t i0, size_t n, int size, uint8_t* out);
void unshuffle_tail(const uint8_t* const* planes, size_t i0, size_t n, int size, uint8_t* out);
// The plane pointers of one buffer holding `size` planes of n bytes back to back
inline void plane_ptrs(const uint8_t* in, size_t n, int size, const uint8_t** planes) {
    for (int b = 0; b < size; ++b) planes[b] = in + b * n;
}
// Whether an lz4-style match finder sees repeats in p[0, n): 4-byte sequences seen before
// (one candidate per hash, as lz4 keeps), counted as matched bytes; true when they cover at
// least 1/8 of n. Noise (a float's low mantissa bytes) has almost none. Portable, n <= 65535.
bool has_repeats(const uint8_t* p, size_t n);
// 8-byte groups [j0, n / 8) and the trailing bytes, portably (the SIMD tables' tails; NEON's whole)
void bitplanes_tail(const uint8_t* in, size_t j0, size_t n, uint8_t* out);
void unbitplanes_tail(const uint8_t* in, size_t j0, size_t n, uint8_t* out);

}  // namespace edgeinf
