// NEON byte shuffle: vld4/vld2 de-interleave 16 elements into planes in one instruction.
#include <arm_neon.h>

#include "shuffle.h"

namespace edgeinf {
namespace {

void shuffle_neon(const uint8_t* in, size_t n, int size, uint8_t* out) {
    size_t i = 0;
    if (size == 4) {
        for (; i + 16 <= n; i += 16) {
            const uint8x16x4_t v = vld4q_u8(in + 4 * i);
            for (int b = 0; b < 4; ++b) vst1q_u8(out + b * n + i, v.val[b]);
        }
    } else if (size == 2) {
        for (; i + 16 <= n; i += 16) {
            const uint8x16x2_t v = vld2q_u8(in + 2 * i);
            vst1q_u8(out + i, v.val[0]);
            vst1q_u8(out + n + i, v.val[1]);
        }
    }
    shuffle_tail(in, i, n, size, out);
}

void unshuffle_neon(const uint8_t* const* in, size_t n, int size, uint8_t* out) {
    size_t i = 0;
    if (size == 4) {
        for (; i + 16 <= n; i += 16) {
            uint8x16x4_t v;
            for (int b = 0; b < 4; ++b) v.val[b] = vld1q_u8(in[b] + i);
            vst4q_u8(out + 4 * i, v);
        }
    } else if (size == 2) {
        for (; i + 16 <= n; i += 16) {
            uint8x16x2_t v;
            v.val[0] = vld1q_u8(in[0] + i);
            v.val[1] = vld1q_u8(in[1] + i);
            vst2q_u8(out + 2 * i, v);
        }
    }
    unshuffle_tail(in, i, n, size, out);
}

void bitplanes_neon(const uint8_t* in, size_t n, uint8_t* out) { bitplanes_tail(in, 0, n, out); }
void unbitplanes_neon(const uint8_t* in, size_t n, uint8_t* out) { unbitplanes_tail(in, 0, n, out); }

}  // namespace

// NOTE: bit planes are the portable code here (NEON has no movemask; the multiply trick is
// a few cycles per byte on a Cortex-A72): unmeasured on ARM hardware
extern const ShuffleOps kShuffleNEON = {shuffle_neon, unshuffle_neon, bitplanes_neon, unbitplanes_neon};

}  // namespace edgeinf
