#include <cmath>

#include "codec.h"

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

}  // namespace edgeinf
