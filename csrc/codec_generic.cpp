// Portable codec primitives (and the legacy int8 pair). The SIMD tables in arch/ must
// agree with these bit for bit; csrc/tests/test_kernels.cpp checks it.
#include <cmath>
#include <cstring>

#include "codec.h"
#include "pack.h"
#include "half.h"

namespace edgeinf {

static inline bool valid_scale(float scale) { return std::isfinite(scale) && scale > 0.0f; }

int quantize_int8_generic(const float* x, size_t n, float scale, int32_t zero_point,
                          int8_t* out, size_t out_len) {
    if (!valid_scale(scale) || zero_point < -128 || zero_point > 127) return kBadArgument;
    if (out_len < n) return kOutOfBounds;
    const float inv = 1.0f / scale;
    for (size_t i = 0; i < n; ++i) {
        float v = std::round(x[i] * inv) + static_cast<float>(zero_point);
        // NaN compares false both ways and lands on zero_point rather than UB in the cast.
        if (!(v >= -128.0f)) v = std::isnan(v) ? static_cast<float>(zero_point) : -128.0f;
        if (v > 127.0f) v = 127.0f;
        out[i] = static_cast<int8_t>(v);
    }
    return kOk;
}

int dequantize_int8_generic(const int8_t* q, size_t n, float scale, int32_t zero_point,
                            float* out, size_t out_len) {
    if (!valid_scale(scale) || zero_point < -128 || zero_point > 127) return kBadArgument;
    if (out_len < n) return kOutOfBounds;
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(q[i] - zero_point) * scale;
    return kOk;
}

namespace {

bool minmax_generic(const float* x, size_t n, float* lo, float* hi) {
    float a = *lo, b = *hi;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
        // NOTE: written so NaN compares false and is skipped, like SIMD min/max(x, acc).
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
        bad |= f32_bits(x[i] - x[i]);  // +0 for finite x, NaN for NaN and +-inf
    }
    *lo = a;
    *hi = b;
    return bad == 0;
}

bool minmax_lanes_generic(const float* x, size_t n, float* lo, float* hi) {
    uint32_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
        lo[i] = x[i] < lo[i] ? x[i] : lo[i];
        hi[i] = x[i] > hi[i] ? x[i] : hi[i];
        bad |= f32_bits(x[i] - x[i]);
    }
    return bad == 0;
}

void quantize_lanes_generic(const float* x, size_t n, const float* inv, const uint8_t* zp, int qmax,
                            uint8_t* codes) {
    for (size_t i = 0; i < n; ++i) {
        const float lo = -static_cast<float>(zp[i]), hi = static_cast<float>(qmax - zp[i]);
        float v = x[i] * inv[i];
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        codes[i] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(v)) + zp[i]);
    }
}

void dequantize_lanes_generic(const uint8_t* codes, size_t n, const uint8_t* zp, const uint8_t* scale,
                              float* out) {
    for (size_t i = 0; i < n; ++i) {
        float s;
        std::memcpy(&s, scale + 4 * i, 4);
        out[i] = static_cast<float>(codes[i] - zp[i]) * s;
    }
}

void quantize_generic(const float* x, size_t n, float inv_scale, float lo, float hi, int32_t zp,
                      uint8_t* codes) {
    for (size_t i = 0; i < n; ++i) {
        float v = x[i] * inv_scale;
        v = v > lo ? v : lo;  // NaN -> lo, as maxps(v, lo) does
        v = v < hi ? v : hi;
        codes[i] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(v)) + zp);
    }
}

void dequantize_generic(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out) {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(codes[i] - zp) * scale;
}

void f32_to_f16_generic(const float* x, size_t n, uint8_t* out) {
    for (size_t i = 0; i < n; ++i) store_u16(out + 2 * i, f32_to_f16_scalar(x[i]));
}
void f16_to_f32_generic(const uint8_t* in, size_t n, float* out) {
    for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32_scalar(load_u16(in + 2 * i));
}
void f32_to_bf16_generic(const float* x, size_t n, uint8_t* out) {
    for (size_t i = 0; i < n; ++i) store_u16(out + 2 * i, f32_to_bf16_scalar(x[i]));
}
void bf16_to_f32_generic(const uint8_t* in, size_t n, float* out) {
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32_scalar(load_u16(in + 2 * i));
}

void quantize_packed_generic(const float* x, size_t n, int bits, float inv, float lo, float hi,
                         int32_t zp, uint8_t* dst) {
    quantize_packed_via(quantize_generic, x, n, bits, inv, lo, hi, zp, dst);
}
void dequantize_packed_generic(const uint8_t* src, size_t n, int bits, int32_t zp, float scale, float* out) {
    dequantize_packed_via(dequantize_generic, src, n, bits, zp, scale, out);
}

}  // namespace

const CodecOps kCodecGeneric = {minmax_generic,     quantize_generic,   dequantize_generic, quantize_packed_generic, dequantize_packed_generic,
                                f32_to_f16_generic, f16_to_f32_generic, f32_to_bf16_generic,
                                bf16_to_f32_generic, minmax_lanes_generic, quantize_lanes_generic,
                                dequantize_lanes_generic};

}  // namespace edgeinf
