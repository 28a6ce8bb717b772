// NEON (AArch64) codec primitives. vminnm/vmaxnm return the number when one operand is NaN,
// which is the NaN rule of the generic code; vcvtn rounds half to even like nearbyint.
#include <arm_neon.h>

#include <cstring>

#include "codec.h"
#include "pack.h"

namespace edgeinf {
namespace {

bool minmax_neon(const float* x, size_t n, float* lo, float* hi) {
    size_t i = 0;
    bool finite = true;
    if (n >= 16) {
        float32x4_t l0 = vdupq_n_f32(*lo), l1 = l0, h0 = vdupq_n_f32(*hi), h1 = h0;
        uint32x4_t bad = vdupq_n_u32(0);  // x - x: +0 when finite, NaN for NaN and +-inf
        for (; i + 8 <= n; i += 8) {
            float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
            l0 = vminnmq_f32(a, l0), h0 = vmaxnmq_f32(a, h0);
            l1 = vminnmq_f32(b, l1), h1 = vmaxnmq_f32(b, h1);
            bad = vorrq_u32(bad, vorrq_u32(vreinterpretq_u32_f32(vsubq_f32(a, a)), vreinterpretq_u32_f32(vsubq_f32(b, b))));
        }
        *lo = vminnmvq_f32(vminnmq_f32(l0, l1));
        *hi = vmaxnmvq_f32(vmaxnmq_f32(h0, h1));
        finite = vmaxvq_u32(bad) == 0;
    }
    return kCodecGeneric.minmax(x + i, n - i, lo, hi) && finite;
}

bool minmax_lanes_neon(const float* x, size_t n, float* lo, float* hi) {
    uint32x4_t bad = vdupq_n_u32(0);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t a = vld1q_f32(x + i);
        vst1q_f32(lo + i, vminnmq_f32(a, vld1q_f32(lo + i)));
        vst1q_f32(hi + i, vmaxnmq_f32(a, vld1q_f32(hi + i)));
        bad = vorrq_u32(bad, vreinterpretq_u32_f32(vsubq_f32(a, a)));
    }
    return kCodecGeneric.minmax_lanes(x + i, n - i, lo + i, hi + i) && vmaxvq_u32(bad) == 0;
}

inline uint32x4_t widen4(const uint8_t* p) {  // 4 bytes -> 4 u32 lanes
    uint32_t w;
    std::memcpy(&w, p, 4);
    return vmovl_u16(vget_low_u16(vmovl_u8(vcreate_u8(w))));
}

void quantize_lanes_neon(const float* x, size_t n, const float* inv, const uint8_t* zp, int qmax,
                         uint8_t* codes) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int32x4_t z = vreinterpretq_s32_u32(widen4(zp + i));
        const float32x4_t lo = vnegq_f32(vcvtq_f32_s32(z)), hi = vcvtq_f32_s32(vsubq_s32(vdupq_n_s32(qmax), z));
        float32x4_t v = vmulq_f32(vld1q_f32(x + i), vld1q_f32(inv + i));
        v = vminnmq_f32(vmaxnmq_f32(v, lo), hi);  // maxnm(NaN, lo) = lo
        const int32x4_t q = vaddq_s32(vcvtnq_s32_f32(v), z);
        const uint8x8_t b = vmovn_u16(vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(q)), vdup_n_u16(0)));
        const uint32_t w = vget_lane_u32(vreinterpret_u32_u8(b), 0);
        std::memcpy(codes + i, &w, 4);
    }
    kCodecGeneric.quantize_lanes(x + i, n - i, inv + i, zp + i, qmax, codes + i);
}

void dequantize_lanes_neon(const uint8_t* codes, size_t n, const uint8_t* zp, const uint8_t* scale,
                           float* out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int32x4_t q = vsubq_s32(vreinterpretq_s32_u32(widen4(codes + i)), vreinterpretq_s32_u32(widen4(zp + i)));
        const float32x4_t s = vreinterpretq_f32_u8(vld1q_u8(scale + 4 * i));
        vst1q_f32(out + i, vmulq_f32(vcvtq_f32_s32(q), s));
    }
    kCodecGeneric.dequantize_lanes(codes + i, n - i, zp + i, scale + 4 * i, out + i);
}

inline int32x4_t quant4(const float* x, float32x4_t inv, float32x4_t lo, float32x4_t hi, int32x4_t zp) {
    float32x4_t v = vminnmq_f32(vmaxnmq_f32(vmulq_f32(vld1q_f32(x), inv), lo), hi);
    return vaddq_s32(vcvtnq_s32_f32(v), zp);
}

void quantize_neon(const float* x, size_t n, float inv_scale, float lo, float hi, int32_t zp,
                   uint8_t* codes) {
    const float32x4_t vi = vdupq_n_f32(inv_scale), vl = vdupq_n_f32(lo), vh = vdupq_n_f32(hi);
    const int32x4_t vz = vdupq_n_s32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        int16x8_t ab = vcombine_s16(vmovn_s32(quant4(x + i, vi, vl, vh, vz)),
                                    vmovn_s32(quant4(x + i + 4, vi, vl, vh, vz)));
        int16x8_t cd = vcombine_s16(vmovn_s32(quant4(x + i + 8, vi, vl, vh, vz)),
                                    vmovn_s32(quant4(x + i + 12, vi, vl, vh, vz)));
        vst1q_u8(codes + i, vcombine_u8(vqmovun_s16(ab), vqmovun_s16(cd)));
    }
    kCodecGeneric.quantize(x + i, n - i, inv_scale, lo, hi, zp, codes + i);
}

void dequantize_neon(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out) {
    const int32x4_t vz = vdupq_n_s32(zp);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t w = vmovl_u8(vld1_u8(codes + i));
        int32x4_t a = vsubq_s32(vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))), vz);
        int32x4_t b = vsubq_s32(vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(w))), vz);
        vst1q_f32(out + i, vmulq_n_f32(vcvtq_f32_s32(a), scale));
        vst1q_f32(out + i + 4, vmulq_n_f32(vcvtq_f32_s32(b), scale));
    }
    kCodecGeneric.dequantize(codes + i, n - i, zp, scale, out + i);
}

void f32_to_f16_neon(const float* x, size_t n, uint8_t* out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1_u16(reinterpret_cast<uint16_t*>(out + 2 * i), vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    kCodecGeneric.f32_to_f16(x + i, n - i, out + 2 * i);
}
void f16_to_f32_neon(const uint8_t* in, size_t n, float* out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(out + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(in + 2 * i)))));
    kCodecGeneric.f16_to_f32(in + 2 * i, n - i, out + i);
}
void f32_to_bf16_neon(const float* x, size_t n, uint8_t* out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32x4_t u = vreinterpretq_u32_f32(vld1q_f32(x + i));
        uint32x4_t hi16 = vshrq_n_u32(u, 16);
        uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), vandq_u32(hi16, vdupq_n_u32(1)))), 16);
        uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
        r = vbslq_u32(nan, vorrq_u32(hi16, vdupq_n_u32(0x40)), r);
        vst1_u16(reinterpret_cast<uint16_t*>(out + 2 * i), vmovn_u32(r));
    }
    kCodecGeneric.f32_to_bf16(x + i, n - i, out + 2 * i);
}
void bf16_to_f32_neon(const uint8_t* in, size_t n, float* out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32x4_t w = vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(in + 2 * i)), 16);
        vst1q_f32(out + i, vreinterpretq_f32_u32(w));
    }
    kCodecGeneric.bf16_to_f32(in + 2 * i, n - i, out + i);
}

void quantize_packed_neon(const float* x, size_t n, int bits, float inv, float lo, float hi,
                         int32_t zp, uint8_t* dst) {
    quantize_packed_via(quantize_neon, x, n, bits, inv, lo, hi, zp, dst);
}
void dequantize_packed_neon(const uint8_t* src, size_t n, int bits, int32_t zp, float scale, float* out) {
    dequantize_packed_via(dequantize_neon, src, n, bits, zp, scale, out);
}

}  // namespace

extern const CodecOps kCodecNEON = {minmax_neon,     quantize_neon,   dequantize_neon, quantize_packed_neon, dequantize_packed_neon,
                                    f32_to_f16_neon, f16_to_f32_neon, f32_to_bf16_neon,
                                    bf16_to_f32_neon, minmax_lanes_neon, quantize_lanes_neon,
                                   dequantize_lanes_neon};

}  // namespace edgeinf
