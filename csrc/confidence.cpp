// Exit confidence from two passes per row: top-2 (max, runner-up), then exp sums.
//   p1 = 1/s, p2 = exp(m2 - m1)/s, entropy = log(s) - sd/s  (d = z - m1 <= 0)
#include "confidence.h"

#include <cfloat>
#include <cmath>

namespace edgeinf {

namespace {

inline float sanitize(float z) { return z > -FLT_MAX ? (z < FLT_MAX ? z : FLT_MAX) : -FLT_MAX; }

void top2_generic(const float* z, size_t n, float* m1, float* m2) {
    float a = *m1, b = *m2;
    for (size_t i = 0; i < n; ++i) {
        const float v = sanitize(z[i]);
        const float lo = v < a ? v : a;
        b = lo > b ? lo : b;
        a = v > a ? v : a;
    }
    *m1 = a, *m2 = b;
}

void expsum_generic(const float* z, size_t n, float m, float* s, float* sd) {
    float acc = 0.0f, accd = 0.0f;
    for (size_t i = 0; i < n; ++i) {
        float d = sanitize(z[i]) - m;
        d = d > kMinLogitDiff ? d : kMinLogitDiff;
        const float e = std::exp(d);
        acc += e;
        accd += e * d;
    }
    *s += acc, *sd += accd;
}

}  // namespace

const ConfidenceOps kConfidenceGeneric = {top2_generic, expsum_generic};

int confidence(Isa isa, const float* logits, size_t rows, size_t cols, size_t row_stride,
               float* max_prob, float* margin, float* entropy) {
    if (cols == 0 || row_stride < cols) return -1;
    const ConfidenceOps& ops = confidence_ops(isa);
    for (size_t r = 0; r < rows; ++r) {
        const float* z = logits + r * row_stride;
        float m1 = -FLT_MAX, m2 = -FLT_MAX, s = 0.0f, sd = 0.0f;
        ops.top2(z, cols, &m1, &m2);
        ops.expsum(z, cols, m1, &s, &sd);
        // cols == 1: the runner-up is "-inf", i.e. probability 0
        const float d2 = cols > 1 ? m2 - m1 : kMinLogitDiff;
        max_prob[r] = 1.0f / s;
        margin[r] = (1.0f - std::exp(d2 > kMinLogitDiff ? d2 : kMinLogitDiff)) / s;
        const float h = std::log(s) - sd / s;
        entropy[r] = h > 0.0f ? h : 0.0f;
    }
    return 0;
}

}  // namespace edgeinf
