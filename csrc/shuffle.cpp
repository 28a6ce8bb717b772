// Portable byte shuffle; the SIMD tables in arch/ must produce the same bytes
// (csrc/tests/test_kernels.cpp checks it).
#include "shuffle.h"

namespace edgeinf {

void shuffle_tail(const uint8_t* in, size_t i0, size_t n, int size, uint8_t* out) {
    for (size_t i = i0; i < n; ++i)
        for (int b = 0; b < size; ++b) out[b * n + i] = in[i * size + b];
}

void unshuffle_tail(const uint8_t* in, size_t i0, size_t n, int size, uint8_t* out) {
    for (size_t i = i0; i < n; ++i)
        for (int b = 0; b < size; ++b) out[i * size + b] = in[b * n + i];
}

namespace {
void shuffle_generic(const uint8_t* in, size_t n, int size, uint8_t* out) { shuffle_tail(in, 0, n, size, out); }
void unshuffle_generic(const uint8_t* in, size_t n, int size, uint8_t* out) { unshuffle_tail(in, 0, n, size, out); }
}  // namespace

const ShuffleOps kShuffleGeneric = {shuffle_generic, unshuffle_generic};

}  // namespace edgeinf
