// AVX-512 (F + BW + VL) codec primitives; compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx2 -mfma -mf16c and only called when cpu.cpp finds those and an OS that saves the
// zmm state. Results equal kCodecGeneric's bit for bit. The decoders are store-bound: one
// 64-byte store per 16 floats (a whole cache line) is where this path gains on AVX2.
#include <immintrin.h>

#include <cstdint>

#include "codec.h"
#include "pack.h"

namespace edgeinf {

extern const CodecOps kCodecAVX2;

namespace {

bool minmax_avx512(const float* x, size_t n, float* lo, float* hi) {
    size_t i = 0;
    bool finite = true;
    if (n >= 64) {
        // NOTE: min(v, acc) returns acc when v is NaN: NaNs are skipped as in generic.
        __m512 l0 = _mm512_set1_ps(*lo), l1 = l0, h0 = _mm512_set1_ps(*hi), h1 = h0;
        __m512i bad = _mm512_setzero_si512();  // x - x: +0 when finite, NaN for NaN and +-inf
        for (; i + 32 <= n; i += 32) {
            __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
            l0 = _mm512_min_ps(a, l0), h0 = _mm512_max_ps(a, h0);
            l1 = _mm512_min_ps(b, l1), h1 = _mm512_max_ps(b, h1);
            bad = _mm512_or_si512(bad, _mm512_or_si512(_mm512_castps_si512(_mm512_sub_ps(a, a)),
                                                       _mm512_castps_si512(_mm512_sub_ps(b, b))));
        }
        // NOTE: lanes hold no NaN (skipped above), so the reduction order cannot matter
        *lo = _mm512_reduce_min_ps(_mm512_min_ps(l0, l1));
        *hi = _mm512_reduce_max_ps(_mm512_max_ps(h0, h1));
        finite = _mm512_test_epi32_mask(bad, bad) == 0;
    }
    return kCodecGeneric.minmax(x + i, n - i, lo, hi) && finite;
}

struct Q16 {
    __m512 inv, lo, hi;
    __m512i zp;
    Q16(float i, float l, float h, int32_t z)
        : inv(_mm512_set1_ps(i)), lo(_mm512_set1_ps(l)), hi(_mm512_set1_ps(h)), zp(_mm512_set1_epi32(z)) {}
};

// 16 floats -> 16 code bytes
inline __m128i quant16(const float* x, const Q16& k) {
    __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x), k.inv);
    v = _mm512_min_ps(_mm512_max_ps(v, k.lo), k.hi);  // max(NaN, lo) = lo
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), k.zp));
}

void quantize_avx512(const float* x, size_t n, float inv_scale, float lo, float hi, int32_t zp,
                     uint8_t* codes) {
    const Q16 k(inv_scale, lo, hi, zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), quant16(x + i, k));
    kCodecGeneric.quantize(x + i, n - i, inv_scale, lo, hi, zp, codes + i);
}

void quantize_packed_avx512(const float* x, size_t n, int bits, float inv, float lo, float hi,
                            int32_t zp, uint8_t* dst) {
    const Q16 k(inv, lo, hi, zp);
    size_t i = 0;
    if (bits == 4) {
        const __m128i w = _mm_set1_epi16(0x1001);  // bytes {1, 16}: c0 + 16 * c1
        for (; i + 16 <= n; i += 16) {
            const __m128i p = _mm_maddubs_epi16(quant16(x + i, k), w);
            _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + i / 2), _mm_packus_epi16(p, p));
        }
    } else {
        const __m128i w1 = _mm_set1_epi16(0x0401), w2 = _mm_set1_epi32(0x00100001);
        for (; i + 16 <= n; i += 16) {
            __m128i p = _mm_madd_epi16(_mm_maddubs_epi16(quant16(x + i, k), w1), w2);
            p = _mm_packus_epi16(_mm_packus_epi32(p, p), p);
            store_u32(dst + i / 4, static_cast<uint32_t>(_mm_cvtsi128_si32(p)));
        }
    }
    if (i < n) quantize_packed_via(kCodecGeneric.quantize, x + i, n - i, bits, inv, lo, hi, zp, dst + i * bits / 8);
}

template <bool NT>
inline void dequant16(__m128i codes, __m512i vz, __m512 vs, float* out) {
    const __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(codes), vz)), vs);
    if (NT) _mm512_stream_ps(out, v);
    else _mm512_storeu_ps(out, v);
}

template <bool NT>
size_t dequantize_loop(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out) {
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512i vz = _mm512_set1_epi32(zp);
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 4; ++k)
            dequant16<NT>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i + 16 * k)), vz, vs, out + i + 16 * k);
    return i;
}

void dequantize_avx512(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out) {
    size_t i = 0;
    const uintptr_t a = reinterpret_cast<uintptr_t>(out);
    if (n * 4 >= kStreamBytes && a % 4 == 0) {  // streaming stores need 64-byte alignment
        i = ((64 - a % 64) % 64) / 4;
        kCodecGeneric.dequantize(codes, i, zp, scale, out);
        i += dequantize_loop<true>(codes + i, n - i, zp, scale, out + i);
        _mm_sfence();
    } else {
        i = dequantize_loop<false>(codes, n, zp, scale, out);
    }
    kCodecGeneric.dequantize(codes + i, n - i, zp, scale, out + i);
}

template <bool NT>
size_t dequantize_packed_loop(const uint8_t* src, size_t n, int bits, int32_t zp, float scale, float* out) {
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512i vz = _mm512_set1_epi32(zp);
    size_t i = 0;
    if (bits == 4) {
        const __m256i m = _mm256_set1_epi8(0x0F);
        for (; i + 64 <= n; i += 64) {
            const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i / 2));
            const __m256i lo = _mm256_and_si256(b, m), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m);
            // per 128-bit lane: unpacklo = codes 0-15 (lane 0) / 32-47 (lane 1), unpackhi the next 16
            const __m256i ul = _mm256_unpacklo_epi8(lo, hi), uh = _mm256_unpackhi_epi8(lo, hi);
            dequant16<NT>(_mm256_castsi256_si128(ul), vz, vs, out + i);
            dequant16<NT>(_mm256_castsi256_si128(uh), vz, vs, out + i + 16);
            dequant16<NT>(_mm256_extracti128_si256(ul, 1), vz, vs, out + i + 32);
            dequant16<NT>(_mm256_extracti128_si256(uh, 1), vz, vs, out + i + 48);
        }
    } else {
        const __m128i m = _mm_set1_epi8(0x03);
        for (; i + 64 <= n; i += 64) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i / 4));
            const __m128i x0 = _mm_and_si128(b, m), x1 = _mm_and_si128(_mm_srli_epi16(b, 2), m);
            const __m128i x2 = _mm_and_si128(_mm_srli_epi16(b, 4), m), x3 = _mm_and_si128(_mm_srli_epi16(b, 6), m);
            const __m128i a01 = _mm_unpacklo_epi8(x0, x1), a23 = _mm_unpacklo_epi8(x2, x3);
            const __m128i b01 = _mm_unpackhi_epi8(x0, x1), b23 = _mm_unpackhi_epi8(x2, x3);
            dequant16<NT>(_mm_unpacklo_epi16(a01, a23), vz, vs, out + i);
            dequant16<NT>(_mm_unpackhi_epi16(a01, a23), vz, vs, out + i + 16);
            dequant16<NT>(_mm_unpacklo_epi16(b01, b23), vz, vs, out + i + 32);
            dequant16<NT>(_mm_unpackhi_epi16(b01, b23), vz, vs, out + i + 48);
        }
    }
    return i;
}

// Codes to decode before out is 64-byte aligned for streaming stores, or SIZE_MAX when
// that head would not end on a byte boundary of the packed codes (numpy's 16-byte aligned
// arrays always can).
size_t packed_head(const float* out, int bits, size_t align) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(out);
    if (a % 4) return SIZE_MAX;
    const size_t h = ((align - a % align) % align) / 4;
    return (h * bits) % 8 == 0 ? h : SIZE_MAX;
}

void dequantize_packed_avx512(const uint8_t* src, size_t n, int bits, int32_t zp, float scale,
                              float* out) {
    size_t i = 0;
    const size_t head = packed_head(out, bits, 64);
    if (n * 4 >= kStreamBytes && head < n) {
        dequantize_packed_via(kCodecGeneric.dequantize, src, head, bits, zp, scale, out);
        i = head + dequantize_packed_loop<true>(src + head * bits / 8, n - head, bits, zp, scale, out + head);
        _mm_sfence();
    } else {
        i = dequantize_packed_loop<false>(src, n, bits, zp, scale, out);
    }
    if (i < n) dequantize_packed_via(kCodecGeneric.dequantize, src + i * bits / 8, n - i, bits, zp, scale, out + i);
}

void f32_to_f16_avx512(const float* x, size_t n, uint8_t* out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    kCodecGeneric.f32_to_f16(x + i, n - i, out + 2 * i);
}
void f16_to_f32_avx512(const uint8_t* in, size_t n, float* out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 2 * i))));
    kCodecGeneric.f16_to_f32(in + 2 * i, n - i, out + i);
}
// NOTE: bfloat16 is integer shuffling AVX2 already does at load/store speed.
void f32_to_bf16_avx512(const float* x, size_t n, uint8_t* out) { kCodecAVX2.f32_to_bf16(x, n, out); }
void bf16_to_f32_avx512(const uint8_t* in, size_t n, float* out) { kCodecAVX2.bf16_to_f32(in, n, out); }

bool minmax_lanes_avx512(const float* x, size_t n, float* lo, float* hi) {
    __m512i bad = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 a = _mm512_loadu_ps(x + i);
        _mm512_storeu_ps(lo + i, _mm512_min_ps(a, _mm512_loadu_ps(lo + i)));
        _mm512_storeu_ps(hi + i, _mm512_max_ps(a, _mm512_loadu_ps(hi + i)));
        bad = _mm512_or_si512(bad, _mm512_castps_si512(_mm512_sub_ps(a, a)));
    }
    const bool finite = _mm512_test_epi32_mask(bad, bad) == 0;
    return kCodecGeneric.minmax_lanes(x + i, n - i, lo + i, hi + i) && finite;
}

void quantize_lanes_avx512(const float* x, size_t n, const float* inv, const uint8_t* zp, int qmax,
                           uint8_t* codes) {
    const __m512i q = _mm512_set1_epi32(qmax);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(zp + i)));
        const __m512 lo = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_cvtepi32_ps(z)),
                                                                _mm512_set1_epi32(INT32_MIN)));  // -zp exactly
        const __m512 hi = _mm512_cvtepi32_ps(_mm512_sub_epi32(q, z));
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(inv + i));
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i),
                         _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), z)));
    }
    kCodecGeneric.quantize_lanes(x + i, n - i, inv + i, zp + i, qmax, codes + i);
}

void dequantize_lanes_avx512(const uint8_t* codes, size_t n, const uint8_t* zp, const uint8_t* scale,
                             float* out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i)));
        const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(zp + i)));
        const __m512 s = _mm512_loadu_ps(reinterpret_cast<const float*>(scale + 4 * i));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c, z)), s));
    }
    kCodecGeneric.dequantize_lanes(codes + i, n - i, zp + i, scale + 4 * i, out + i);
}

}  // namespace

extern const CodecOps kCodecAVX512 = {minmax_avx512,     quantize_avx512,     dequantize_avx512,
                                      quantize_packed_avx512, dequantize_packed_avx512,
                                      f32_to_f16_avx512, f16_to_f32_avx512,   f32_to_bf16_avx512,
                                      bf16_to_f32_avx512, minmax_lanes_avx512, quantize_lanes_avx512,
                                      dequantize_lanes_avx512};

}  // namespace edgeinf
