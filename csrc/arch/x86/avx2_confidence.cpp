// AVX2 + FMA exit confidence: top-2 and exp sums, Cephes-style exp (rel. error ~2e-7).
#include <immintrin.h>

#include <cfloat>

#include "confidence.h"

namespace edgeinf {
namespace {

inline __m256 sanitize8(__m256 v) {
    // max(v, lowest) maps NaN to lowest (second operand is returned on NaN)
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-FLT_MAX)), _mm256_set1_ps(FLT_MAX));
}

inline __m256 exp8(__m256 x) {  // x in [-87, 0]
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

void top2_avx2(const float* z, size_t n, float* m1, float* m2) {
    size_t i = 0;
    if (n >= 16) {
        __m256 a = _mm256_set1_ps(*m1), b = _mm256_set1_ps(*m2);
        for (; i + 8 <= n; i += 8) {
            __m256 v = sanitize8(_mm256_loadu_ps(z + i));
            b = _mm256_max_ps(b, _mm256_min_ps(v, a));
            a = _mm256_max_ps(a, v);
        }
        alignas(32) float la[8], lb[8];
        _mm256_store_ps(la, a), _mm256_store_ps(lb, b);
        merge_top2_lanes(la, lb, 8, m1, m2);
    }
    kConfidenceGeneric.top2(z + i, n - i, m1, m2);
}

void expsum_avx2(const float* z, size_t n, float m, float* s, float* sd) {
    size_t i = 0;
    const __m256 vm = _mm256_set1_ps(m), lo = _mm256_set1_ps(kMinLogitDiff);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, d0 = s0, d1 = s0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_max_ps(_mm256_sub_ps(sanitize8(_mm256_loadu_ps(z + i)), vm), lo);
        __m256 b = _mm256_max_ps(_mm256_sub_ps(sanitize8(_mm256_loadu_ps(z + i + 8)), vm), lo);
        __m256 ea = exp8(a), eb = exp8(b);
        s0 = _mm256_add_ps(s0, ea), s1 = _mm256_add_ps(s1, eb);
        d0 = _mm256_fmadd_ps(ea, a, d0), d1 = _mm256_fmadd_ps(eb, b, d1);
    }
    alignas(32) float ls[8], ld[8];
    _mm256_store_ps(ls, _mm256_add_ps(s0, s1)), _mm256_store_ps(ld, _mm256_add_ps(d0, d1));
    float acc = 0.0f, accd = 0.0f;
    for (int k = 0; k < 8; ++k) acc += ls[k], accd += ld[k];
    *s += acc, *sd += accd;
    kConfidenceGeneric.expsum(z + i, n - i, m, s, sd);
}

}  // namespace

extern const ConfidenceOps kConfidenceAVX2 = {top2_avx2, expsum_avx2};

}  // namespace edgeinf
