// Tensor codec kernels: affine quantization and its inverse.
// Plain functions over pointers and sizes; no allocation, no Python. Each returns 0 on
// success or a negative error code (see errors below) so bindings can raise clearly.
#pragma once
#include <cstddef>
#include <cstdint>

namespace edgeinf {

enum KernelStatus : int {
    kOk = 0,
    kBadArgument = -1,   // a size, scale or bit width outside what the kernel accepts
    kOutOfBounds = -2,   // an index or length would leave the buffer
};

// q = clamp(round(x / scale) + zero_point, -128, 127), round half away from zero.
int quantize_int8_generic(const float* x, size_t n, float scale, int32_t zero_point,
                          int8_t* out, size_t out_len);
// x = (q - zero_point) * scale
int dequantize_int8_generic(const int8_t* q, size_t n, float scale, int32_t zero_point,
                            float* out, size_t out_len);

}  // namespace edgeinf
