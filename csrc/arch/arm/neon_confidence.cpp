// NEON (AArch64) exit confidence; same exp polynomial as the x86 paths.
#include <arm_neon.h>

#include <cfloat>

#include "confidence.h"

namespace edgeinf {
namespace {

inline float32x4_t sanitize4(float32x4_t v) {
    // vmaxnm(NaN, lowest) = lowest
    return vminnmq_f32(vmaxnmq_f32(v, vdupq_n_f32(-FLT_MAX)), vdupq_n_f32(FLT_MAX));
}

inline float32x4_t exp4(float32x4_t x) {  // x in [-87, 0]
    float32x4_t fx = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    x = vfmsq_f32(x, fx, vdupq_n_f32(0.693359375f));
    x = vfmsq_f32(x, fx, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t y = vdupq_n_f32(1.9875691500E-4f);
    y = vfmaq_f32(vdupq_n_f32(1.3981999507E-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(8.3334519073E-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(4.1665795894E-2f), y, x);
    y = vfmaq_f32(vdupq_n_f32(1.6666665459E-1f), y, x);
    y = vfmaq_f32(vdupq_n_f32(5.0000001201E-1f), y, x);
    y = vfmaq_f32(vaddq_f32(x, vdupq_n_f32(1.0f)), y, vmulq_f32(x, x));
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(fx), vdupq_n_s32(127)), 23);
    return vmulq_f32(y, vreinterpretq_f32_s32(e));
}

void top2_neon(const float* z, size_t n, float* m1, float* m2) {
    size_t i = 0;
    if (n >= 8) {
        float32x4_t a = vdupq_n_f32(*m1), b = vdupq_n_f32(*m2);
        for (; i + 4 <= n; i += 4) {
            float32x4_t v = sanitize4(vld1q_f32(z + i));
            b = vmaxq_f32(b, vminq_f32(v, a));
            a = vmaxq_f32(a, v);
        }
        float la[4], lb[4];
        vst1q_f32(la, a), vst1q_f32(lb, b);
        merge_top2_lanes(la, lb, 4, m1, m2);
    }
    kConfidenceGeneric.top2(z + i, n - i, m1, m2);
}

void expsum_neon(const float* z, size_t n, float m, float* s, float* sd) {
    size_t i = 0;
    const float32x4_t vm = vdupq_n_f32(m), lo = vdupq_n_f32(kMinLogitDiff);
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, d0 = s0, d1 = s0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t a = vmaxq_f32(vsubq_f32(sanitize4(vld1q_f32(z + i)), vm), lo);
        float32x4_t b = vmaxq_f32(vsubq_f32(sanitize4(vld1q_f32(z + i + 4)), vm), lo);
        float32x4_t ea = exp4(a), eb = exp4(b);
        s0 = vaddq_f32(s0, ea), s1 = vaddq_f32(s1, eb);
        d0 = vfmaq_f32(d0, ea, a), d1 = vfmaq_f32(d1, eb, b);
    }
    *s += vaddvq_f32(vaddq_f32(s0, s1));
    *sd += vaddvq_f32(vaddq_f32(d0, d1));
    kConfidenceGeneric.expsum(z + i, n - i, m, s, sd);
}

}  // namespace

extern const ConfidenceOps kConfidenceNEON = {top2_neon, expsum_neon};

}  // namespace edgeinf
