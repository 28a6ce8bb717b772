// SSE4.1 codec primitives (no F16C: float16 goes through the generic code).
#include <smmintrin.h>

#include "codec.h"
#include "pack.h"

namespace edgeinf {
namespace {

bool minmax_sse41(const float* x, size_t n, float* lo, float* hi) {
    size_t i = 0;
    bool finite = true;
    if (n >= 16) {
        __m128 l0 = _mm_set1_ps(*lo), l1 = l0, h0 = _mm_set1_ps(*hi), h1 = h0;
        __m128 bad = _mm_setzero_ps();  // x - x: +0 when finite, NaN for NaN and +-inf
        for (; i + 8 <= n; i += 8) {
            __m128 a = _mm_loadu_ps(x + i), b = _mm_loadu_ps(x + i + 4);
            l0 = _mm_min_ps(a, l0), h0 = _mm_max_ps(a, h0);  // NaN in a keeps the acc
            l1 = _mm_min_ps(b, l1), h1 = _mm_max_ps(b, h1);
            bad = _mm_or_ps(bad, _mm_or_ps(_mm_sub_ps(a, a), _mm_sub_ps(b, b)));
        }
        finite = _mm_testz_si128(_mm_castps_si128(bad), _mm_castps_si128(bad));
        __m128 l = _mm_min_ps(l0, l1), h = _mm_max_ps(h0, h1);
        l = _mm_min_ps(l, _mm_movehl_ps(l, l)), h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        *lo = _mm_cvtss_f32(_mm_min_ss(l, _mm_shuffle_ps(l, l, 1)));
        *hi = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
    }
    return kCodecGeneric.minmax(x + i, n - i, lo, hi) && finite;
}

inline __m128i quant4(const float* x, __m128 inv, __m128 lo, __m128 hi, __m128i zp) {
    __m128 v = _mm_min_ps(_mm_max_ps(_mm_mul_ps(_mm_loadu_ps(x), inv), lo), hi);
    return _mm_add_epi32(_mm_cvtps_epi32(v), zp);
}

void quantize_sse41(const float* x, size_t n, float inv_scale, float lo, float hi, int32_t zp,
                    uint8_t* codes) {
    const __m128 vi = _mm_set1_ps(inv_scale), vl = _mm_set1_ps(lo), vh = _mm_set1_ps(hi);
    const __m128i vz = _mm_set1_epi32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i a = quant4(x + i, vi, vl, vh, vz), b = quant4(x + i + 4, vi, vl, vh, vz);
        __m128i c = quant4(x + i + 8, vi, vl, vh, vz), d = quant4(x + i + 12, vi, vl, vh, vz);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i),
                         _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d)));
    }
    kCodecGeneric.quantize(x + i, n - i, inv_scale, lo, hi, zp, codes + i);
}

void dequantize_sse41(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out) {
    const __m128 vs = _mm_set1_ps(scale);
    const __m128i vz = _mm_set1_epi32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i));
        for (int k = 0; k < 4; ++k) {
            __m128i q = _mm_sub_epi32(_mm_cvtepu8_epi32(b), vz);
            _mm_storeu_ps(out + i + 4 * k, _mm_mul_ps(_mm_cvtepi32_ps(q), vs));
            b = _mm_srli_si128(b, 4);
        }
    }
    kCodecGeneric.dequantize(codes + i, n - i, zp, scale, out + i);
}

void f32_to_bf16_sse41(const float* x, size_t n, uint8_t* out) {
    const __m128i abs_mask = _mm_set1_epi32(0x7fffffff), inf = _mm_set1_epi32(0x7f800000);
    const __m128i one = _mm_set1_epi32(1), bias = _mm_set1_epi32(0x7fff), q = _mm_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128i u = _mm_castps_si128(_mm_loadu_ps(x + i));
        __m128i hi16 = _mm_srli_epi32(u, 16);
        __m128i r = _mm_srli_epi32(_mm_add_epi32(u, _mm_add_epi32(bias, _mm_and_si128(hi16, one))), 16);
        __m128i nan = _mm_cmpgt_epi32(_mm_and_si128(u, abs_mask), inf);
        r = _mm_blendv_epi8(r, _mm_or_si128(hi16, q), nan);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 2 * i), _mm_packus_epi32(r, r));
    }
    kCodecGeneric.f32_to_bf16(x + i, n - i, out + 2 * i);
}
void bf16_to_f32_sse41(const uint8_t* in, size_t n, float* out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128i w = _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + 2 * i)));
        _mm_storeu_ps(out + i, _mm_castsi128_ps(_mm_slli_epi32(w, 16)));
    }
    kCodecGeneric.bf16_to_f32(in + 2 * i, n - i, out + i);
}

// NOTE: wrappers, not kCodecGeneric's pointers, so the table is constant-initialized.
void f32_to_f16_sse41(const float* x, size_t n, uint8_t* out) { kCodecGeneric.f32_to_f16(x, n, out); }
void f16_to_f32_sse41(const uint8_t* in, size_t n, float* out) { kCodecGeneric.f16_to_f32(in, n, out); }

// NOTE: channel-last lanes run the generic loops on SSE4.1-only CPUs (few left).
bool minmax_lanes_sse41(const float* x, size_t n, float* lo, float* hi) { return kCodecGeneric.minmax_lanes(x, n, lo, hi); }
void quantize_lanes_sse41(const float* x, size_t n, const float* inv, const uint8_t* zp, int qmax, uint8_t* codes) {
    kCodecGeneric.quantize_lanes(x, n, inv, zp, qmax, codes);
}
void dequantize_lanes_sse41(const uint8_t* codes, size_t n, const uint8_t* zp, const uint8_t* scale, float* out) {
    kCodecGeneric.dequantize_lanes(codes, n, zp, scale, out);
}

void quantize_packed_sse41(const float* x, size_t n, int bits, float inv, float lo, float hi,
                         int32_t zp, uint8_t* dst) {
    quantize_packed_via(quantize_sse41, x, n, bits, inv, lo, hi, zp, dst);
}
void dequantize_packed_sse41(const uint8_t* src, size_t n, int bits, int32_t zp, float scale, float* out) {
    dequantize_packed_via(dequantize_sse41, src, n, bits, zp, scale, out);
}

}  // namespace

extern const CodecOps kCodecSSE41 = {minmax_sse41,      quantize_sse41,    dequantize_sse41, quantize_packed_sse41, dequantize_packed_sse41,
                                     f32_to_f16_sse41,  f16_to_f32_sse41,  f32_to_bf16_sse41,
                                     bf16_to_f32_sse41, minmax_lanes_sse41, quantize_lanes_sse41,
                                     dequantize_lanes_sse41};

}  // namespace edgeinf
