// Bit packing of 4- and 2-bit codes (SWAR, portable), and the generic "packed" codec ops
// every ISA table may fall back to for tails. Header-only, no allocation.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "codec.h"
#include "half.h"

namespace edgeinf {
// NOTE: internal linkage on purpose: this header is compiled into TUs built with different
// -m flags (generic, -msse4.1, -mavx2, -mavx512*); an ordinary inline function is one symbol,
// and the linker kept the AVX-512 copy for every caller: SIGILL in int4 encode on a CPU
// without AVX-512 (found on a Zen 2 EPYC). Each TU now keeps the copy built with its flags.
namespace {

inline uint64_t load_u64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
inline uint32_t load_u32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline void store_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// codes (one per byte, < 2^bits) -> packed bytes; a partial last byte keeps unused bits 0.
inline void pack_codes(const uint8_t* codes, size_t n, int bits, uint8_t* dst) {
    const size_t per = 8 / bits;
    size_t i = 0, o = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x = load_u64(codes + i);
        if (bits == 4) {
            x = (x | (x >> 4)) & 0x00FF00FF00FF00FFull;
            x = (x | (x >> 8)) & 0x0000FFFF0000FFFFull;
            x = (x | (x >> 16)) & 0xFFFFFFFFull;
            store_u32(dst + o, static_cast<uint32_t>(x));
            o += 4;
        } else {  // 2 bits
            x = (x | (x >> 6)) & 0x00FF00FF00FF00FFull;
            x = (x | (x >> 12)) & 0x0000FFFF0000FFFFull;
            x = (x | (x >> 24)) & 0xFFFFull;
            store_u16(dst + o, static_cast<uint16_t>(x));
            o += 2;
        }
    }
    for (; i < n; i += per) {  // tail: a partial last byte keeps its unused bits 0
        uint8_t b = 0;
        for (size_t k = 0; k < per && i + k < n; ++k) b |= codes[i + k] << (k * bits);
        dst[o++] = b;
    }
}

inline void unpack_codes(const uint8_t* src, size_t n, int bits, uint8_t* codes) {
    size_t i = 0, o = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        if (bits == 4) {
            x = load_u32(src + o);
            o += 4;
            x = (x | (x << 16)) & 0x0000FFFF0000FFFFull;
            x = (x | (x << 8)) & 0x00FF00FF00FF00FFull;
            x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0Full;
        } else {
            x = load_u16(src + o);
            o += 2;
            x = (x | (x << 24)) & 0x000000FF000000FFull;
            x = (x | (x << 12)) & 0x000F000F000F000Full;
            x = (x | (x << 6)) & 0x0303030303030303ull;
        }
        store_u64(codes + i, x);
    }
    const int mask = (1 << bits) - 1;
    for (; i < n; ++i) codes[i] = (src[(i * bits) / 8] >> ((i * bits) % 8)) & mask;
}


constexpr size_t kPackChunk = 1024;  // codes staged on the stack between the two steps

// Quantize n values (the first starts a byte) and pack them at dst, through `quantize`.
inline void quantize_packed_via(void (*quantize)(const float*, size_t, float, float, float, int32_t, uint8_t*),
                                const float* x, size_t n, int bits, float inv, float lo, float hi,
                                int32_t zp, uint8_t* dst) {
    uint8_t codes[kPackChunk];
    const size_t per = 8 / bits;
    for (size_t i = 0; i < n; i += kPackChunk) {
        const size_t m = n - i < kPackChunk ? n - i : kPackChunk;
        quantize(x + i, m, inv, lo, hi, zp, codes);
        pack_codes(codes, m, bits, dst + i / per);
    }
}

inline void dequantize_packed_via(void (*dequantize)(const uint8_t*, size_t, int32_t, float, float*),
                                  const uint8_t* src, size_t n, int bits, int32_t zp, float scale,
                                  float* out) {
    uint8_t codes[kPackChunk];
    const size_t per = 8 / bits;
    for (size_t i = 0; i < n; i += kPackChunk) {
        const size_t m = n - i < kPackChunk ? n - i : kPackChunk;
        unpack_codes(src + i / per, m, bits, codes);
        dequantize(codes, m, zp, scale, out + i);
    }
}

}  // namespace
}  // namespace edgeinf
