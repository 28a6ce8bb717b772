// AVX2 + F16C codec primitives; compiled with -mavx2 -mfma -mf16c and only called when
// cpu.cpp finds AVX2 and FMA. Results equal kCodecGeneric's bit for bit.
#include <immintrin.h>

#include "codec.h"
#include "pack.h"
#include "half.h"

namespace edgeinf {
namespace {

float hmin8(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}
float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

void minmax_avx2(const float* x, size_t n, float* lo, float* hi) {
    size_t i = 0;
    if (n >= 32) {
        // NOTE: min(v, acc) returns acc when v is NaN: NaNs are skipped as in generic.
        __m256 l0 = _mm256_set1_ps(*lo), l1 = l0, h0 = _mm256_set1_ps(*hi), h1 = h0;
        for (; i + 16 <= n; i += 16) {
            __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
            l0 = _mm256_min_ps(a, l0), h0 = _mm256_max_ps(a, h0);
            l1 = _mm256_min_ps(b, l1), h1 = _mm256_max_ps(b, h1);
        }
        *lo = hmin8(_mm256_min_ps(l0, l1));
        *hi = hmax8(_mm256_max_ps(h0, h1));
    }
    kCodecGeneric.minmax(x + i, n - i, lo, hi);
}

inline __m256i quant8(const float* x, __m256 inv, __m256 lo, __m256 hi, __m256i zp) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);  // max(NaN, lo) = lo
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
}

struct QuantConst {
    __m256 inv, lo, hi;
    __m256i zp, perm;
    QuantConst(float i, float l, float h, int32_t z)
        : inv(_mm256_set1_ps(i)), lo(_mm256_set1_ps(l)), hi(_mm256_set1_ps(h)),
          zp(_mm256_set1_epi32(z)), perm(_mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)) {}
};

// 32 floats -> 32 code bytes in order
inline __m256i quant32(const float* x, const QuantConst& k) {
    __m256i a = quant8(x, k.inv, k.lo, k.hi, k.zp), b = quant8(x + 8, k.inv, k.lo, k.hi, k.zp);
    __m256i c = quant8(x + 16, k.inv, k.lo, k.hi, k.zp), d = quant8(x + 24, k.inv, k.lo, k.hi, k.zp);
    __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(bytes, k.perm);
}

void quantize_avx2(const float* x, size_t n, float inv_scale, float lo, float hi, int32_t zp,
                   uint8_t* codes) {
    const QuantConst k(inv_scale, lo, hi, zp);
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i), quant32(x + i, k));
    kCodecGeneric.quantize(x + i, n - i, inv_scale, lo, hi, zp, codes + i);
}

void quantize_packed_avx2(const float* x, size_t n, int bits, float inv, float lo, float hi,
                          int32_t zp, uint8_t* dst) {
    const QuantConst k(inv, lo, hi, zp);
    size_t i = 0;
    if (bits == 4) {
        const __m256i w = _mm256_set1_epi16(0x1001);  // bytes {1, 16}: c0 + 16 * c1
        for (; i + 32 <= n; i += 32) {
            __m256i p = _mm256_maddubs_epi16(quant32(x + i, k), w);
            p = _mm256_permute4x64_epi64(_mm256_packus_epi16(p, p), 0x08);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i / 2), _mm256_castsi256_si128(p));
        }
    } else {
        const __m256i w1 = _mm256_set1_epi16(0x0401), w2 = _mm256_set1_epi32(0x00100001);
        const __m256i pick = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
        for (; i + 32 <= n; i += 32) {
            __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(quant32(x + i, k), w1), w2);
            p = _mm256_packus_epi16(_mm256_packus_epi32(p, p), p);
            p = _mm256_permutevar8x32_epi32(p, pick);
            _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + i / 4), _mm256_castsi256_si128(p));
        }
    }
    if (i < n) quantize_packed_via(kCodecGeneric.quantize, x + i, n - i, bits, inv, lo, hi, zp, dst + i * bits / 8);
}

void dequantize_avx2(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out) {
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i vz = _mm256_set1_epi32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i));
        __m256i q0 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(b), vz);
        __m256i q1 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), vz);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(q0), vs));
        _mm256_storeu_ps(out + i + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(q1), vs));
    }
    kCodecGeneric.dequantize(codes + i, n - i, zp, scale, out + i);
}

inline void dequant16(__m128i codes, __m256i vz, __m256 vs, float* out) {
    __m256i q0 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(codes), vz);
    __m256i q1 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(codes, 8)), vz);
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_cvtepi32_ps(q0), vs));
    _mm256_storeu_ps(out + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(q1), vs));
}

void dequantize_packed_avx2(const uint8_t* src, size_t n, int bits, int32_t zp, float scale,
                            float* out) {
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i vz = _mm256_set1_epi32(zp);
    size_t i = 0;
    if (bits == 4) {
        const __m128i m = _mm_set1_epi8(0x0F);
        for (; i + 32 <= n; i += 32) {
            __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i / 2));
            __m128i lo = _mm_and_si128(b, m), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m);
            dequant16(_mm_unpacklo_epi8(lo, hi), vz, vs, out + i);
            dequant16(_mm_unpackhi_epi8(lo, hi), vz, vs, out + i + 16);
        }
    } else {
        const __m128i m = _mm_set1_epi8(0x03);
        for (; i + 32 <= n; i += 32) {
            __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i / 4));
            __m128i x0 = _mm_and_si128(b, m), x1 = _mm_and_si128(_mm_srli_epi16(b, 2), m);
            __m128i x2 = _mm_and_si128(_mm_srli_epi16(b, 4), m), x3 = _mm_and_si128(_mm_srli_epi16(b, 6), m);
            __m128i p01 = _mm_unpacklo_epi8(x0, x1), p23 = _mm_unpacklo_epi8(x2, x3);
            dequant16(_mm_unpacklo_epi16(p01, p23), vz, vs, out + i);
            dequant16(_mm_unpackhi_epi16(p01, p23), vz, vs, out + i + 16);
        }
    }
    if (i < n) dequantize_packed_via(kCodecGeneric.dequantize, src + i * bits / 8, n - i, bits, zp, scale, out + i);
}

void f32_to_f16_avx2(const float* x, size_t n, uint8_t* out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    kCodecGeneric.f32_to_f16(x + i, n - i, out + 2 * i);
}
void f16_to_f32_avx2(const uint8_t* in, size_t n, float* out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i))));
    kCodecGeneric.f16_to_f32(in + 2 * i, n - i, out + i);
}
void f32_to_bf16_avx2(const float* x, size_t n, uint8_t* out) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), q = _mm256_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        __m256i hi16 = _mm256_srli_epi32(u, 16);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(hi16, one))), 16);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
        r = _mm256_blendv_epi8(r, _mm256_or_si256(hi16, q), nan);
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i), _mm256_castsi256_si128(p));
    }
    kCodecGeneric.f32_to_bf16(x + i, n - i, out + 2 * i);
}
void bf16_to_f32_avx2(const uint8_t* in, size_t n, float* out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 2 * i)));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
    kCodecGeneric.bf16_to_f32(in + 2 * i, n - i, out + i);
}

}  // namespace

extern const CodecOps kCodecAVX2 = {minmax_avx2,     quantize_avx2,   dequantize_avx2, quantize_packed_avx2, dequantize_packed_avx2,
                                    f32_to_f16_avx2, f16_to_f32_avx2, f32_to_bf16_avx2,
                                    bf16_to_f32_avx2};

}  // namespace edgeinf
