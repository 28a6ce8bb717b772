// Fused image preprocessing: uint8 HWC (3 channels, any row stride) -> bilinear resize
// (OpenCV INTER_LINEAR geometry: half-pixel centres, 11-bit fixed-point weights) ->
// per-channel affine (mean/std folded into scale/bias, optional R/B swap) -> NCHW or NHWC,
// float32 or saturated uint8/int8. Each output element is written once. Letterbox: the
// resized image fills a sub-rectangle (roi) and the rest gets a per-channel pad value.
// Plain functions; the caller supplies the workspace (preprocess_workspace_bytes).
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu.h"

namespace edgeinf {

enum class OutType : int { F32 = 0, U8 = 1, I8 = 2 };

struct PreprocessArgs {
    const uint8_t* src;
    int src_h, src_w;
    size_t src_stride;          // bytes between rows (>= 3 * src_w); pixels are 3 bytes
    int out_h, out_w;           // whole output image
    int roi_y, roi_x, roi_h, roi_w;  // where the resized image lands; the rest is pad
    bool nchw;
    OutType out_type;
    bool swap_rb;               // output channel c reads input channel 2 - c
    float scale[3], bias[3];    // per output channel: out = pixel * scale + bias
    float pad[3];               // output value of the pad region, per output channel
};

size_t preprocess_workspace_bytes(const PreprocessArgs& a);
// out: out_h * out_w * 3 elements of out_type.
int preprocess(Isa isa, const PreprocessArgs& a, void* out, void* workspace, size_t ws_len);

struct PreprocessOps {
    // One source row -> dw padded pixels {c0, c1, c2, 0}: p[x0] * a0 + p[x0 + 3] * a1
    // (integers as floats). coef holds 8 int16 per pixel {a0, a1, a0, a1, a0, a1, 0, 0};
    // only the first n_fast pixels may read 8 bytes at xofs (the rest use 3 bytes).
    void (*hresize)(const uint8_t* row, const int32_t* xofs, const int16_t* coef, int dw,
                    int n_fast, bool swap, float* out);
    // out[x] = (h0[x] * w0 + h1[x] * w1) * scale4 + bias4, on padded pixels
    void (*vblend)(const float* h0, const float* h1, float w0, float w1, const float* scale4,
                   const float* bias4, int dw, float* out);
    // Padded row of dw pixels -> float32 NCHW planes (plane_stride apart) or NHWC.
    void (*store_f32)(const float* row4, int dw, bool nchw, float* dst, size_t plane_stride);
};
extern const PreprocessOps kPreprocessGeneric;
const PreprocessOps& preprocess_ops(Isa isa);

}  // namespace edgeinf
