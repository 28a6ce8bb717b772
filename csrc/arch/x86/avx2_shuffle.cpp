// AVX2 byte shuffle (4- and 2-byte elements); compiled with -mavx2, called when cpu.cpp
// finds AVX2. Same bytes as kShuffleGeneric. 4 bytes: 32 elements = four 4x4 byte
// transposes per 128-bit lane (pshufb), then a dword transpose across the four registers.
#include <immintrin.h>

#include <cstring>

#include "shuffle.h"

namespace edgeinf {
namespace {

// NOTE: constants live inside the functions: a namespace-scope __m256i would run AVX code
// at load time, before dispatch, and fault on CPUs without it.
__m256i lane_mask4() {  // per lane: byte b of elements 0..3 together (an involution)
    return _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}

void shuffle4(const uint8_t* in, size_t n, uint8_t* out) {
    const __m256i m = lane_mask4(), kPerm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const uint8_t* p = in + 4 * i;
        __m256i r0 = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), m);
        __m256i r1 = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), m);
        __m256i r2 = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64)), m);
        __m256i r3 = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 96)), m);
        __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
        __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
        const __m256i planes[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                                   _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
        for (int b = 0; b < 4; ++b)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * n + i), _mm256_permutevar8x32_epi32(planes[b], kPerm));
    }
    shuffle_tail(in, i, n, 4, out);
}

void unshuffle4(const uint8_t* const* in, size_t n, uint8_t* out) {
    const __m256i m = lane_mask4(), kPermInv = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i u[4];
        for (int b = 0; b < 4; ++b)
            u[b] = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in[b] + i)), kPermInv);
        const __m256i t0 = _mm256_unpacklo_epi64(u[0], u[1]), t2 = _mm256_unpackhi_epi64(u[0], u[1]);
        const __m256i t1 = _mm256_unpacklo_epi64(u[2], u[3]), t3 = _mm256_unpackhi_epi64(u[2], u[3]);
        const __m256i v0 = _mm256_unpacklo_epi32(t0, t1), v1 = _mm256_unpackhi_epi32(t0, t1);
        const __m256i v2 = _mm256_unpacklo_epi32(t2, t3), v3 = _mm256_unpackhi_epi32(t2, t3);
        const __m256i r[4] = {_mm256_unpacklo_epi32(v0, v1), _mm256_unpackhi_epi32(v0, v1),
                              _mm256_unpacklo_epi32(v2, v3), _mm256_unpackhi_epi32(v2, v3)};
        for (int k = 0; k < 4; ++k)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4 * i + 32 * k), _mm256_shuffle_epi8(r[k], m));
    }
    unshuffle_tail(in, i, n, 4, out);
}

void shuffle2(const uint8_t* in, size_t n, uint8_t* out) {
    const __m256i m = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                       0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i v = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 2 * i)), m);
        v = _mm256_permute4x64_epi64(v, 0xD8);  // qwords 0, 2, 1, 3: plane 0 low, plane 1 high
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(v));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + n + i), _mm256_extracti128_si256(v, 1));
    }
    shuffle_tail(in, i, n, 2, out);
}

void unshuffle2(const uint8_t* const* in, size_t n, uint8_t* out) {
    const __m256i m = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
                                       0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in[0] + i));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in[1] + i));
        __m256i v = _mm256_permute4x64_epi64(_mm256_set_m128i(b, a), 0xD8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * i), _mm256_shuffle_epi8(v, m));
    }
    unshuffle_tail(in, i, n, 2, out);
}

void shuffle_avx2(const uint8_t* in, size_t n, int size, uint8_t* out) {
    if (size == 4) return shuffle4(in, n, out);
    if (size == 2) return shuffle2(in, n, out);
    shuffle_tail(in, 0, n, size, out);
}
void unshuffle_avx2(const uint8_t* const* in, size_t n, int size, uint8_t* out) {
    if (size == 4) return unshuffle4(in, n, out);
    if (size == 2) return unshuffle2(in, n, out);
    unshuffle_tail(in, 0, n, size, out);
}

// Bit planes, 32 bytes a step: a movemask per bit (after shifting it to each byte's top)
// gives plane k's 4 bytes for those 32.
void bitplanes_avx2(const uint8_t* in, size_t n, uint8_t* out) {
    const size_t groups = n / 8;
    size_t j = 0;
    for (; j + 4 <= groups; j += 4) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 8 * j));
        for (int k = 0; k < 8; ++k) {
            // NOTE: a 16-bit shift: each byte's top bit after it is its own bit k (s <= 7)
            const uint32_t m = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_slli_epi16(v, 7 - k)));
            std::memcpy(out + k * groups + j, &m, 4);
        }
    }
    bitplanes_tail(in, j, n, out);
}

// The inverse, 32 bytes a step: plane k's 4 bytes broadcast, each output byte i picks the
// byte holding its bit (i / 8), tests bit i % 8, and ORs in 1 << k where it is set.
void unbitplanes_avx2(const uint8_t* in, size_t n, uint8_t* out) {
    const size_t groups = n / 8;
    const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128,
                                         1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
    size_t j = 0;
    for (; j + 4 <= groups; j += 4) {
        __m256i acc = _mm256_setzero_si256();
        for (int k = 0; k < 8; ++k) {
            uint32_t w;
            std::memcpy(&w, in + k * groups + j, 4);
            const __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(w)), pick);
            const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
            acc = _mm256_or_si256(acc, _mm256_and_si256(set, _mm256_set1_epi8(static_cast<char>(1 << k))));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * j), acc);
    }
    unbitplanes_tail(in, j, n, out);
}

}  // namespace

extern const ShuffleOps kShuffleAVX2 = {shuffle_avx2, unshuffle_avx2, bitplanes_avx2, unbitplanes_avx2};

}  // namespace edgeinf
