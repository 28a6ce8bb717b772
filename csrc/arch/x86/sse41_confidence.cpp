// SSE4.1 exit confidence: 4 lanes, no FMA; same exp polynomial as the AVX2 path.
#include <smmintrin.h>

#include <cfloat>

#include "confidence.h"

namespace edgeinf {
namespace {

inline __m128 sanitize4(__m128 v) {
    return _mm_min_ps(_mm_max_ps(v, _mm_set1_ps(-FLT_MAX)), _mm_set1_ps(FLT_MAX));
}

inline __m128 madd(__m128 a, __m128 b, __m128 c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }

inline __m128 exp4(__m128 x) {  // x in [-87, 0]
    __m128 fx = _mm_round_ps(_mm_mul_ps(x, _mm_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm_sub_ps(x, _mm_mul_ps(fx, _mm_set1_ps(0.693359375f)));
    x = _mm_sub_ps(x, _mm_mul_ps(fx, _mm_set1_ps(-2.12194440e-4f)));
    __m128 y = _mm_set1_ps(1.9875691500E-4f);
    y = madd(y, x, _mm_set1_ps(1.3981999507E-3f));
    y = madd(y, x, _mm_set1_ps(8.3334519073E-3f));
    y = madd(y, x, _mm_set1_ps(4.1665795894E-2f));
    y = madd(y, x, _mm_set1_ps(1.6666665459E-1f));
    y = madd(y, x, _mm_set1_ps(5.0000001201E-1f));
    y = madd(y, _mm_mul_ps(x, x), _mm_add_ps(x, _mm_set1_ps(1.0f)));
    __m128i e = _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(fx), _mm_set1_epi32(127)), 23);
    return _mm_mul_ps(y, _mm_castsi128_ps(e));
}

void top2_sse41(const float* z, size_t n, float* m1, float* m2) {
    size_t i = 0;
    if (n >= 8) {
        __m128 a = _mm_set1_ps(*m1), b = _mm_set1_ps(*m2);
        for (; i + 4 <= n; i += 4) {
            __m128 v = sanitize4(_mm_loadu_ps(z + i));
            b = _mm_max_ps(b, _mm_min_ps(v, a));
            a = _mm_max_ps(a, v);
        }
        alignas(16) float la[4], lb[4];
        _mm_store_ps(la, a), _mm_store_ps(lb, b);
        merge_top2_lanes(la, lb, 4, m1, m2);
    }
    kConfidenceGeneric.top2(z + i, n - i, m1, m2);
}

void expsum_sse41(const float* z, size_t n, float m, float* s, float* sd) {
    size_t i = 0;
    const __m128 vm = _mm_set1_ps(m), lo = _mm_set1_ps(kMinLogitDiff);
    __m128 s0 = _mm_setzero_ps(), s1 = s0, d0 = s0, d1 = s0;
    for (; i + 8 <= n; i += 8) {
        __m128 a = _mm_max_ps(_mm_sub_ps(sanitize4(_mm_loadu_ps(z + i)), vm), lo);
        __m128 b = _mm_max_ps(_mm_sub_ps(sanitize4(_mm_loadu_ps(z + i + 4)), vm), lo);
        __m128 ea = exp4(a), eb = exp4(b);
        s0 = _mm_add_ps(s0, ea), s1 = _mm_add_ps(s1, eb);
        d0 = madd(ea, a, d0), d1 = madd(eb, b, d1);
    }
    alignas(16) float ls[4], ld[4];
    _mm_store_ps(ls, _mm_add_ps(s0, s1)), _mm_store_ps(ld, _mm_add_ps(d0, d1));
    *s += (ls[0] + ls[1]) + (ls[2] + ls[3]);
    *sd += (ld[0] + ld[1]) + (ld[2] + ld[3]);
    kConfidenceGeneric.expsum(z + i, n - i, m, s, sd);
}

}  // namespace

extern const ConfidenceOps kConfidenceSSE41 = {top2_sse41, expsum_sse41};

}  // namespace edgeinf
