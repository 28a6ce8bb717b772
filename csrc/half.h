// Scalar float16 / bfloat16 conversions, round to nearest even (F. Giesen's branchy
// version); shared by the generic paths and SIMD tails. Header-only, no allocation.
#pragma once
#include <cstdint>
#include <cstring>

namespace edgeinf {
// NOTE: internal linkage on purpose: this header is compiled into TUs built with different
// -m flags (generic, -msse4.1, -mavx2, -mavx512*); an ordinary inline function is one symbol,
// and the linker kept the AVX-512 copy for every caller: SIGILL in int4 encode on a CPU
// without AVX-512 (found on a Zen 2 EPYC). Each TU now keeps the copy built with its flags.
namespace {

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bits_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline uint16_t f32_to_f16_scalar(float f) {
    uint32_t u = f32_bits(f);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint16_t o;
    if (u >= (143u << 23)) {  // >= 65536: inf, or NaN -> quiet NaN
        o = (u > (255u << 23)) ? 0x7e00 : 0x7c00;
    } else if (u < (113u << 23)) {  // half subnormal or zero: let the FPU round
        o = static_cast<uint16_t>(f32_bits(bits_f32(u) + 0.5f) - f32_bits(0.5f));
    } else {
        const uint32_t mant_odd = (u >> 13) & 1;
        u += (static_cast<uint32_t>(15 - 127) << 23) + 0xfff + mant_odd;
        o = static_cast<uint16_t>(u >> 13);
    }
    return static_cast<uint16_t>(o | (sign >> 16));
}

inline float f16_to_f32_scalar(uint16_t h) {
    uint32_t o = static_cast<uint32_t>(h & 0x7fff) << 13;
    const uint32_t exp = o & (0x7c00u << 13);
    o += (127 - 15) << 23;
    if (exp == (0x7c00u << 13)) {
        o += (128 - 16) << 23;  // inf / NaN
    } else if (exp == 0) {
        o = f32_bits(bits_f32(o + (1u << 23)) - bits_f32(113u << 23));  // subnormal
    }
    return bits_f32(o | (static_cast<uint32_t>(h & 0x8000) << 16));
}

inline uint16_t f32_to_bf16_scalar(float f) {
    const uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // qNaN
    return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

inline float bf16_to_f32_scalar(uint16_t b) { return bits_f32(static_cast<uint32_t>(b) << 16); }

inline uint16_t load_u16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

}  // namespace
}  // namespace edgeinf
