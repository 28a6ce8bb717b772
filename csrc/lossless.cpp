#include "lossless.h"

#include <climits>
#include <cstring>

#include "shuffle.h"
#define LZ4LIB_VISIBILITY  // hidden, as in csrc/lz4.cpp
#include "third_party/lz4/lz4.h"

namespace edgeinf {

namespace {
constexpr size_t kMaxPlane = LZ4_MAX_INPUT_SIZE;
inline void put32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint32_t get32(const uint8_t* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
           (static_cast<uint32_t>(p[3]) << 24);
}
}  // namespace

size_t lz4_pack_planes(Isa isa, const uint8_t* payload, size_t len, int size, bool bitplanes, size_t sample,
                       uint8_t* scratch, uint8_t* dst) {
    const ShuffleOps& sh = shuffle_ops(isa);
    const size_t n = len / size;
    uint8_t* planes = scratch;      // size * n: the byte planes
    uint8_t* tplane = scratch + len;  // n: one plane bit-transposed
    sh.shuffle(payload, n, size, planes);
    uint8_t* out = dst + 4 * size;
    LZ4_stream_t stream;
    for (int k = 0; k < size; ++k) {
        const uint8_t* plane = planes + k * n;
        size_t stored = n;
        // NOTE: noise is judged on a sample and stored untried (a float's low mantissa planes:
        // lz4 would spend ~5 us each on 30 KB to gain nothing)
        const bool tried = n > 0 && !(n >= 4 * sample && !has_repeats(plane, sample));
        if (tried && n <= kMaxPlane) {
            const uint8_t* src = plane;
            if (bitplanes) {
                sh.bitplanes(plane, n, tplane);
                src = tplane;
            }
            // NOTE: a fresh stream and room for the worst case, as python-lz4's block.compress:
            // the reference's bytes. LZ4_compress_fast hashes 4 bytes, not 5, below 64 KB (2.5%
            // larger on a float32 exponent plane), and a capacity under the bound changes the
            // last literals (2 bytes smaller, but not the reference)
            LZ4_initStream(&stream, sizeof stream);  // zeroed as the reference's (a fast reset is not)
            const int c = LZ4_compress_fast_continue(&stream, reinterpret_cast<const char*>(src),
                                                     reinterpret_cast<char*>(out), static_cast<int>(n),
                                                     LZ4_compressBound(static_cast<int>(n)), 1);
            if (c > 0 && static_cast<size_t>(c) < n) stored = static_cast<size_t>(c);
        }
        if (stored == n && n) std::memcpy(out, plane, n);
        put32(dst + 4 * k, static_cast<uint32_t>(stored));
        out += stored;
    }
    return static_cast<size_t>(out - dst);
}

const char* lz4_unpack_planes(Isa isa, const uint8_t* comp, size_t clen, int size, size_t n, bool bitplanes,
                              uint8_t* scratch, uint8_t* tmp, const uint8_t** planes) {
    const size_t head = 4 * static_cast<size_t>(size);
    if (clen < head) return "shuffled payload too short for its plane lengths";
    size_t total = head;
    for (int k = 0; k < size; ++k) {
        const size_t len = get32(comp + 4 * k);
        if (len > n) return "plane length over the plane size";
        total += len;
    }
    if (total != clen) return "plane lengths do not sum to the payload";
    if (n > static_cast<size_t>(INT_MAX)) return "plane too large for lz4";
    const ShuffleOps& sh = shuffle_ops(isa);
    const uint8_t* p = comp + head;
    for (int k = 0; k < size; ++k) {
        const size_t len = get32(comp + 4 * k);
        if (len == n) {
            planes[k] = p;  // stored as it is: read in place
        } else {
            uint8_t* plane = scratch + k * n;
            uint8_t* into = bitplanes ? tmp : plane;
            const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(p), reinterpret_cast<char*>(into),
                                                static_cast<int>(len), static_cast<int>(n));
            if (got < 0 || static_cast<size_t>(got) != n) return "corrupt lz4 plane";
            if (bitplanes) sh.unbitplanes(tmp, n, plane);
            planes[k] = plane;
        }
        p += len;
    }
    return nullptr;
}

size_t lz4_pack_bound(size_t len, int size) {
    const size_t n = len / size;
    // one plane may overrun its n bytes while lz4 writes it (then it is stored instead)
    const size_t over = n > 0 && n <= kMaxPlane ? LZ4_COMPRESSBOUND(n) - n : 0;
    return 4 * static_cast<size_t>(size) + len + over;
}

size_t lz4_block_bound(size_t n) { return n <= kMaxPlane ? LZ4_COMPRESSBOUND(n) : 0; }

size_t lz4_block_compress(const uint8_t* src, size_t n, uint8_t* dst) {
    if (n > kMaxPlane) return 0;
    LZ4_stream_t stream;
    LZ4_initStream(&stream, sizeof stream);
    const int c = LZ4_compress_fast_continue(&stream, reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst),
                                             static_cast<int>(n), LZ4_compressBound(static_cast<int>(n)), 1);
    return c > 0 ? static_cast<size_t>(c) : 0;
}

const char* lz4_block_decompress(const uint8_t* src, size_t len, uint8_t* dst, size_t n) {
    if (len > static_cast<size_t>(INT_MAX) || n > static_cast<size_t>(INT_MAX)) return "lz4 block too large";
    if (n == 0) return nullptr;  // an empty tensor: nothing to inflate, whatever follows (as codec._inflate)
    const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst),
                                        static_cast<int>(len), static_cast<int>(n));
    return got >= 0 && static_cast<size_t>(got) == n ? nullptr : "corrupt lz4 payload (or not the expected size)";
}

int lz4_library_version() { return LZ4_versionNumber(); }

}  // namespace edgeinf
