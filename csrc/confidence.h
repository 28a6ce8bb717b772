// Exit-confidence kernels: per row of N x C logits, the max softmax probability, the
// top-1 minus top-2 probability margin and the entropy (nats), numerically stable.
// Logits are sanitized first: +inf -> FLT_MAX, -inf and NaN -> -FLT_MAX, so a row of all
// -inf is uniform and a single +inf takes all the mass. Plain functions, no allocation.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu.h"

namespace edgeinf {

// Logit differences below this are clamped: exp(-87) is still a normal float.
constexpr float kMinLogitDiff = -87.0f;

struct ConfidenceOps {
    // Largest and second largest (duplicates count) sanitized logits of a row.
    void (*top2)(const float* z, size_t n, float* m1, float* m2);
    // s = sum(exp(d)), sd = sum(exp(d) * d) with d = max(sanitize(z) - m, kMinLogitDiff).
    void (*expsum)(const float* z, size_t n, float m, float* s, float* sd);
};
extern const ConfidenceOps kConfidenceGeneric;

// Top-2 of the union of per-lane (largest, runner-up) pairs, as the SIMD top2 kernels leave
// them: lane k holds la[k] >= lb[k]. Shared so every ISA merges lanes the same way.
// NOTE: internal linkage on purpose: this function is compiled into TUs built with different
// -m flags (generic, -msse4.1, -mavx2, -mavx512*); an ordinary inline function is one symbol,
// and the linker kept the AVX-512 copy for every caller: SIGILL in int4 encode on a CPU
// without AVX-512 (found on a Zen 2 EPYC). Each TU now keeps the copy built with its flags.
namespace {
inline void merge_top2_lanes(const float* la, const float* lb, int lanes, float* m1, float* m2) {
    float x1 = la[0], x2 = lb[0];
    for (int k = 1; k < lanes; ++k) {
        const float lo = la[k] < x1 ? la[k] : x1;
        x2 = x2 > lb[k] ? x2 : lb[k];
        x2 = x2 > lo ? x2 : lo;
        x1 = la[k] > x1 ? la[k] : x1;
    }
    *m1 = x1, *m2 = x2;
}
}  // namespace
const ConfidenceOps& confidence_ops(Isa isa);

// logits: rows x cols float32, row_stride elements between rows. Outputs: rows floats each.
int confidence(Isa isa, const float* logits, size_t rows, size_t cols, size_t row_stride,
               float* max_prob, float* margin, float* entropy);

}  // namespace edgeinf
