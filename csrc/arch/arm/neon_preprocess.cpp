// NEON (AArch64) preprocessing ops: one padded pixel per float32x4; vld4/vst3 do the
// channel (de)interleaving for the stores.
#include <arm_neon.h>

#include "preprocess.h"

namespace edgeinf {
namespace {

void hresize_neon(const uint8_t* row, const int32_t* xofs, const int16_t* coef, int dw,
                  int n_fast, bool swap, float* out) {
    static const uint8_t kSwap[8] = {2, 1, 0, 5, 4, 3, 6, 7};
    const uint8x8_t idx = vld1_u8(kSwap);
    int x = 0;
    for (; x < n_fast; ++x) {
        uint8x8_t b = vld1_u8(row + xofs[x]);
        if (swap) b = vtbl1_u8(b, idx);
        const uint16x8_t w = vmovl_u8(b);  // p0c0 p0c1 p0c2 p1c0 p1c1 p1c2 . .
        const float32x4_t p0 = vcvtq_f32_u32(vmovl_u16(vget_low_u16(w)));
        const float32x4_t p1 = vcvtq_f32_u32(vmovl_u16(vext_u16(vget_low_u16(w), vget_high_u16(w), 3)));
        const float a0 = coef[8 * x], a1 = coef[8 * x + 1];
        float32x4_t h = vaddq_f32(vmulq_n_f32(p0, a0), vmulq_n_f32(p1, a1));  // exact: integers
        vst1q_f32(out + 4 * x, vsetq_lane_f32(0.0f, h, 3));
    }
    for (; x < dw; ++x) {
        const uint8_t* p = row + xofs[x];
        const int a0 = coef[8 * x], a1 = coef[8 * x + 1];
        for (int c = 0; c < 3; ++c) {
            const int ci = swap ? 2 - c : c;
            out[4 * x + c] = static_cast<float>(p[ci] * a0 + (a1 ? p[3 + ci] : 0) * a1);
        }
        out[4 * x + 3] = 0.0f;
    }
}

void vblend_neon(const float* h0, const float* h1, float w0, float w1, const float* s4,
                 const float* b4, int dw, float* out) {
    const float32x4_t s = vld1q_f32(s4), b = vld1q_f32(b4);
    for (int x = 0; x < dw; ++x) {
        // NOTE: separate multiply and add (no vfma) to match the generic rounding
        float32x4_t v = vaddq_f32(vmulq_n_f32(vld1q_f32(h0 + 4 * x), w0), vmulq_n_f32(vld1q_f32(h1 + 4 * x), w1));
        vst1q_f32(out + 4 * x, vaddq_f32(vmulq_f32(v, s), b));
    }
}

void store_f32_neon(const float* row4, int dw, bool nchw, float* dst, size_t plane) {
    int x = 0;
    for (; x + 4 <= dw; x += 4) {
        float32x4x4_t v = vld4q_f32(row4 + 4 * x);  // v.val[c] = channel c of 4 pixels
        if (nchw) {
            vst1q_f32(dst + x, v.val[0]);
            vst1q_f32(dst + plane + x, v.val[1]);
            vst1q_f32(dst + 2 * plane + x, v.val[2]);
        } else {
            float32x4x3_t t = {{v.val[0], v.val[1], v.val[2]}};
            vst3q_f32(dst + 3 * x, t);
        }
    }
    for (; x < dw; ++x)
        for (int c = 0; c < 3; ++c) {
            if (nchw) dst[c * plane + x] = row4[4 * x + c];
            else dst[3 * x + c] = row4[4 * x + c];
        }
}

}  // namespace

extern const PreprocessOps kPreprocessNEON = {hresize_neon, vblend_neon, store_f32_neon};

}  // namespace edgeinf
