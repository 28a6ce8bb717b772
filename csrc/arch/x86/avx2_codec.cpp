// AVX2 + F16C codec primitives; compiled with -mavx2 -mfma -mf16c and only called when
// cpu.cpp finds AVX2 and FMA. Results equal kCodecGeneric's bit for bit.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

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

bool minmax_avx2(const float* x, size_t n, float* lo, float* hi) {
    size_t i = 0;
    bool finite = true;
    if (n >= 32) {
        // NOTE: min(v, acc) returns acc when v is NaN: NaNs are skipped as in generic.
        __m256 l0 = _mm256_set1_ps(*lo), l1 = l0, h0 = _mm256_set1_ps(*hi), h1 = h0;
        __m256 bad = _mm256_setzero_ps();  // x - x: +0 when finite, NaN for NaN and +-inf
        for (; i + 16 <= n; i += 16) {
            __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
            l0 = _mm256_min_ps(a, l0), h0 = _mm256_max_ps(a, h0);
            l1 = _mm256_min_ps(b, l1), h1 = _mm256_max_ps(b, h1);
            bad = _mm256_or_ps(bad, _mm256_or_ps(_mm256_sub_ps(a, a), _mm256_sub_ps(b, b)));
        }
        *lo = hmin8(_mm256_min_ps(l0, l1));
        *hi = hmax8(_mm256_max_ps(h0, h1));
        finite = _mm256_testz_si256(_mm256_castps_si256(bad), _mm256_castps_si256(bad));
    }
    return kCodecGeneric.minmax(x + i, n - i, lo, hi) && finite;
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

template <bool NT>
inline void store8(float* p, __m256 v) {
    if (NT) _mm256_stream_ps(p, v);
    else _mm256_storeu_ps(p, v);
}

// 8 codes (low 8 bytes of an xmm or memory) -> 8 floats
template <bool NT>
inline void dequant8(__m128i codes, __m256i vz, __m256 vs, float* out) {
    store8<NT>(out, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(codes), vz)), vs));
}

template <bool NT>
size_t dequantize_loop(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out) {
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i vz = _mm256_set1_epi32(zp);
    size_t i = 0;
    for (; i + 32 <= n; i += 32)  // NOTE: 8-byte loads fold into vpmovzxbd: 4 uops per 8 floats
        for (int k = 0; k < 4; ++k)
            dequant8<NT>(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i + 8 * k)), vz, vs, out + i + 8 * k);
    return i;
}

// Elements before out + i is 32-byte aligned (streaming stores need it), or n if never.
size_t head_to_align(const float* out, size_t n) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(out);
    if (a % 4) return n;
    const size_t h = ((32 - a % 32) % 32) / 4;
    return h < n ? h : n;
}

void dequantize_avx2(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out) {
    size_t i = 0;
    if (n * 4 >= kStreamBytes && head_to_align(out, n) < n) {
        i = head_to_align(out, n);
        kCodecGeneric.dequantize(codes, i, zp, scale, out);
        i += dequantize_loop<true>(codes + i, n - i, zp, scale, out + i);
        _mm_sfence();
    } else {
        i = dequantize_loop<false>(codes, n, zp, scale, out);
    }
    kCodecGeneric.dequantize(codes + i, n - i, zp, scale, out + i);
}

// 8 codes in the low bits of each lane (q, zero point subtracted as int32) -> 8 floats
template <bool NT>
inline void dequant_lanes8(__m256i q, __m256i vz, __m256 vs, float* out) {
    store8<NT>(out, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, vz)), vs));
}

inline __m256i broadcast4(const uint8_t* p) {
    int32_t w;
    std::memcpy(&w, p, 4);
    return _mm256_set1_epi32(w);
}

// Whole groups of 32 codes (the first at a byte boundary); returns how many were done.
// NOTE: each lane takes its code from 4 broadcast bytes with a per-lane variable shift
// (vpsrlvd): no byte unpacking or widening shuffles, which bound the older loop on the
// shuffle ports. On a Zen 3, 1.2 MB out: int4 30.7 -> 25.5 us, int2 36.8 -> 23.9 us, at or
// under int8's 27 us (same floats: the ops per code are the same sub, convert, multiply).
// Haswell/Broadwell split vpsrlvd into 3 uops; Skylake and every Zen since 2 run it as one.
template <bool NT>
size_t dequantize_packed_loop(const uint8_t* src, size_t n, int bits, int32_t zp, float scale, float* out) {
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i vz = _mm256_set1_epi32(zp);
    size_t i = 0;
    if (bits == 4) {
        const __m256i sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), m = _mm256_set1_epi32(0x0F);
        for (; i + 32 <= n; i += 32)
            for (int k = 0; k < 4; ++k)
                dequant_lanes8<NT>(_mm256_and_si256(_mm256_srlv_epi32(broadcast4(src + i / 2 + 4 * k), sh), m), vz, vs,
                                   out + i + 8 * k);
    } else {
        const __m256i sh0 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), m = _mm256_set1_epi32(0x03);
        const __m256i sh1 = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
        for (; i + 32 <= n; i += 32)
            for (int k = 0; k < 2; ++k) {
                const __m256i b = broadcast4(src + i / 4 + 4 * k);
                dequant_lanes8<NT>(_mm256_and_si256(_mm256_srlv_epi32(b, sh0), m), vz, vs, out + i + 16 * k);
                dequant_lanes8<NT>(_mm256_and_si256(_mm256_srlv_epi32(b, sh1), m), vz, vs, out + i + 16 * k + 8);
            }
    }
    return i;
}

// Codes to decode before out is 32-byte aligned for streaming stores, or SIZE_MAX when
// that head would not end on a byte boundary of the packed codes (numpy's 16-byte aligned
// arrays always can).
size_t packed_head(const float* out, int bits, size_t align) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(out);
    if (a % 4) return SIZE_MAX;
    const size_t h = ((align - a % align) % align) / 4;
    return (h * bits) % 8 == 0 ? h : SIZE_MAX;
}

void dequantize_packed_avx2(const uint8_t* src, size_t n, int bits, int32_t zp, float scale,
                            float* out) {
    size_t i = 0;
    const size_t head = packed_head(out, bits, 32);
    if (n * 4 >= kStreamBytes && head < n) {
        dequantize_packed_via(kCodecGeneric.dequantize, src, head, bits, zp, scale, out);
        i = head + dequantize_packed_loop<true>(src + head * bits / 8, n - head, bits, zp, scale, out + head);
        _mm_sfence();
    } else {
        i = dequantize_packed_loop<false>(src, n, bits, zp, scale, out);
    }
    if (i < n) dequantize_packed_via(kCodecGeneric.dequantize, src + i * bits / 8, n - i, bits, zp, scale, out + i);
}

bool minmax_lanes_avx2(const float* x, size_t n, float* lo, float* hi) {
    __m256 bad = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(lo + i, _mm256_min_ps(a, _mm256_loadu_ps(lo + i)));
        _mm256_storeu_ps(hi + i, _mm256_max_ps(a, _mm256_loadu_ps(hi + i)));
        bad = _mm256_or_ps(bad, _mm256_sub_ps(a, a));
    }
    const bool finite = _mm256_testz_si256(_mm256_castps_si256(bad), _mm256_castps_si256(bad));
    return kCodecGeneric.minmax_lanes(x + i, n - i, lo + i, hi + i) && finite;
}

inline __m256i quant_lanes8(const float* x, const float* inv, const uint8_t* zp, __m256i qmax) {
    const __m256i z = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(zp)));
    const __m256 lo = _mm256_xor_ps(_mm256_cvtepi32_ps(z), _mm256_set1_ps(-0.0f));  // -zp exactly
    const __m256 hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(qmax, z));
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(inv));
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);  // max(NaN, lo) = lo
    return _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
}

void quantize_lanes_avx2(const float* x, size_t n, const float* inv, const uint8_t* zp, int qmax,
                         uint8_t* codes) {
    const __m256i q = _mm256_set1_epi32(qmax), perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = quant_lanes8(x + i, inv + i, zp + i, q), b = quant_lanes8(x + i + 8, inv + i + 8, zp + i + 8, q);
        __m256i c = quant_lanes8(x + i + 16, inv + i + 16, zp + i + 16, q);
        __m256i d = quant_lanes8(x + i + 24, inv + i + 24, zp + i + 24, q);
        __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i), _mm256_permutevar8x32_epi32(bytes, perm));
    }
    kCodecGeneric.quantize_lanes(x + i, n - i, inv + i, zp + i, qmax, codes + i);
}

void dequantize_lanes_avx2(const uint8_t* codes, size_t n, const uint8_t* zp, const uint8_t* scale,
                           float* out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + i)));
        const __m256i z = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(zp + i)));
        const __m256 s = _mm256_loadu_ps(reinterpret_cast<const float*>(scale + 4 * i));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, z)), s));
    }
    kCodecGeneric.dequantize_lanes(codes + i, n - i, zp + i, scale + 4 * i, out + i);
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
                                    bf16_to_f32_avx2, minmax_lanes_avx2, quantize_lanes_avx2,
                                    dequantize_lanes_avx2};

}  // namespace edgeinf
