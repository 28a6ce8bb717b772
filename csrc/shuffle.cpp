// Portable byte shuffle; the SIMD tables in arch/ must produce the same bytes
// (csrc/tests/test_kernels.cpp checks it).
#include "shuffle.h"

#include <cstring>

namespace edgeinf {

void shuffle_tail(const uint8_t* in, size_t i0, size_t n, int size, uint8_t* out) {
    for (size_t i = i0; i < n; ++i)
        for (int b = 0; b < size; ++b) out[b * n + i] = in[i * size + b];
}

void unshuffle_tail(const uint8_t* const* planes, size_t i0, size_t n, int size, uint8_t* out) {
    for (size_t i = i0; i < n; ++i)
        for (int b = 0; b < size; ++b) out[i * size + b] = planes[b][i];
}

void bitplanes_tail(const uint8_t* in, size_t j0, size_t n, uint8_t* out) {
    const size_t groups = n / 8;
    for (size_t j = j0; j < groups; ++j) {
        uint64_t x;
        std::memcpy(&x, in + 8 * j, 8);  // byte i of the group in bits 8i..8i+7 (little-endian)
        for (int k = 0; k < 8; ++k) {
            // bit 8i + k of x to bit 56 + i: the products of the 8 bits never overlap (no carries)
            const uint64_t y = (x >> k) & 0x0101010101010101ULL;
            out[k * groups + j] = static_cast<uint8_t>((y * 0x0102040810204080ULL) >> 56);
        }
    }
    if (n > 8 * groups) std::memcpy(out + 8 * groups, in + 8 * groups, n - 8 * groups);  // (n = 0: in may be null)
}

void unbitplanes_tail(const uint8_t* in, size_t j0, size_t n, uint8_t* out) {
    const size_t groups = n / 8;
    for (size_t j = j0; j < groups; ++j) {
        // the 8 plane bytes of this group as one word: an 8x8 bit matrix, whose transpose
        // (the forward step's own multiply) is the group's 8 bytes
        uint64_t y = 0;
        for (int k = 0; k < 8; ++k) y |= static_cast<uint64_t>(in[k * groups + j]) << (8 * k);
        for (int i = 0; i < 8; ++i)
            out[8 * j + i] = static_cast<uint8_t>(((((y >> i) & 0x0101010101010101ULL) * 0x0102040810204080ULL) >> 56));
    }
    if (n > 8 * groups) std::memcpy(out + 8 * groups, in + 8 * groups, n - 8 * groups);  // (n = 0: in may be null)
}

bool has_repeats(const uint8_t* p, size_t n) {
    if (n < 8) return true;  // too short to judge: let the stage try
    uint16_t last[4096];
    std::memset(last, 0xFF, sizeof last);
    size_t matched = 0, misses = 0;
    for (size_t i = 0; i + 4 <= n;) {
        uint32_t v;
        std::memcpy(&v, p + i, 4);
        const uint32_t h = (v * 2654435761u) >> 20;
        const uint16_t c = last[h];
        last[h] = static_cast<uint16_t>(i);
        uint32_t w;
        if (c != 0xFFFF && (std::memcpy(&w, p + c, 4), w == v)) {
            size_t len = 4;
            while (i + len < n && p[c + len] == p[i + len]) ++len;
            matched += len;
            i += len;
            misses = 0;
        } else {
            i += 1 + (misses++ >> 5);  // lz4's own skip: the longer nothing matches, the faster it looks
        }
    }
    return matched * 8 >= n;
}

namespace {
void shuffle_generic(const uint8_t* in, size_t n, int size, uint8_t* out) { shuffle_tail(in, 0, n, size, out); }
void unshuffle_generic(const uint8_t* const* planes, size_t n, int size, uint8_t* out) { unshuffle_tail(planes, 0, n, size, out); }

void bitplanes_generic(const uint8_t* in, size_t n, uint8_t* out) { bitplanes_tail(in, 0, n, out); }
void unbitplanes_generic(const uint8_t* in, size_t n, uint8_t* out) { unbitplanes_tail(in, 0, n, out); }
}  // namespace

const ShuffleOps kShuffleGeneric = {shuffle_generic, unshuffle_generic, bitplanes_generic, unbitplanes_generic};

}  // namespace edgeinf
