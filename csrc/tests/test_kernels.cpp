// C++ kernel checks, no Python: every compiled ISA path against the generic one and
// against known values, plus a mutation fuzz of the encoded-tensor parser/decoder.
// Built and run by .ci/arm-check natively (x86, also with ASan/UBSan) and for AArch64
// under qemu-user. Exit status 0 means every check passed.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "codec.h"
#include "confidence.h"
#include "cpu.h"
#include "half.h"
#include "lossless.h"
#include "preprocess.h"
#include "shuffle.h"

using namespace edgeinf;

static int g_fail = 0, g_checks = 0;
#define CHECK(cond, ...)                                              \
    do {                                                              \
        ++g_checks;                                                   \
        if (!(cond)) {                                                \
            ++g_fail;                                                 \
            std::printf("FAIL %s:%d: ", __FILE__, __LINE__);          \
            std::printf(__VA_ARGS__);                                 \
            std::printf("\n");                                        \
        }                                                             \
    } while (0)

static std::mt19937 rng(1234);

static std::vector<float> randn(size_t n, float scale, bool specials) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    if (specials && n > 8) {
        v[1] = INFINITY, v[2] = -INFINITY, v[3] = 1e-40f, v[4] = 65519.0f, v[5] = 65520.0f, v[6] = -0.0f;
    }
    return v;
}

static void known_values() {
    CHECK(f32_to_f16_scalar(1.0f) == 0x3C00, "f16(1)");
    CHECK(f32_to_f16_scalar(65504.0f) == 0x7BFF, "f16(65504)");
    CHECK(f32_to_f16_scalar(65520.0f) == 0x7C00, "f16(65520) -> inf");
    CHECK(f32_to_f16_scalar(5.9604645e-8f) == 0x0001, "f16 smallest subnormal");
    CHECK(f16_to_f32_scalar(0x3555) == 0.333251953125f, "f16 -> f32");
    CHECK(f32_to_bf16_scalar(1.0f) == 0x3F80, "bf16(1)");
    CHECK(f32_to_bf16_scalar(bits_f32(0x3F808000)) == 0x3F80, "bf16 tie to even");
    CHECK(f32_to_bf16_scalar(bits_f32(0x3F818000)) == 0x3F82, "bf16 tie to even up");
    // int8 per tensor of {-0.5, 0, 0.5, 1.5}: scale 2/255, zp 64 -> codes 0, 64, 128, 255
    const float x[4] = {-0.5f, 0.0f, 0.5f, 1.5f};
    const uint64_t dims[1] = {4};
    uint8_t buf[64];
    const size_t n = encoded_len(Codec::Int8, DType::F32, false, 1, dims, 0);
    float scratch[3];  // encode_scratch_floats: 3 per tensor
    CHECK(n == 52, "encoded_len %zu", n);  // 32 + 8 dims + 4 scale + 1 zp -> 48, + 4 codes
    CHECK(encode_tensor(Isa::Generic, x, DType::F32, Codec::Int8, false, 1, dims, 0, buf, n, scratch) == kOk, "encode");
    const uint8_t want[4] = {0, 64, 128, 255};
    CHECK(std::memcmp(buf + n - 4, want, 4) == 0, "codes %d %d %d %d", buf[48], buf[49], buf[50], buf[51]);
    CHECK(buf[44] == 64 && buf[45] == 0, "zero point byte %d", buf[44]);
    float p, m, e;
    const float z[2] = {0.0f, 0.0f};
    confidence(Isa::Generic, z, 1, 2, 2, &p, &m, &e);
    CHECK(std::fabs(p - 0.5f) < 1e-7f && m == 0.0f && std::fabs(e - std::log(2.0f)) < 1e-6f, "confidence {0,0}");
}

// Channel-last per-lane kernels against generic, on a row of n lanes (x may hold NaN/inf).
static void lanes_paths(const CodecOps& g, const CodecOps& s, Isa isa, const std::vector<float>& x, size_t n) {
    // NOTE: one spare element each, so n = 0 never hands memcmp a null pointer
    std::vector<float> lo1(n + 1, INFINITY), hi1(n + 1, -INFINITY), lo2 = lo1, hi2 = hi1, inv(n + 1);
    std::vector<uint8_t> zp(n + 1), sc(4 * n + 4);
    for (size_t i = 0; i < n; ++i) {
        zp[i] = static_cast<uint8_t>(rng() % 16), inv[i] = 0.5f + static_cast<float>(i % 7);
        const float s_ = 1.0f / inv[i];
        std::memcpy(&sc[4 * i], &s_, 4);
    }
    const bool f1 = g.minmax_lanes(x.data(), n, lo1.data(), hi1.data());
    const bool f2 = s.minmax_lanes(x.data(), n, lo2.data(), hi2.data());
    CHECK(f1 == f2 && f1 == (n <= 8), "%s minmax_lanes finite flag n=%zu", isa_name(isa), n);
    CHECK(std::memcmp(lo1.data(), lo2.data(), 4 * n) == 0 && std::memcmp(hi1.data(), hi2.data(), 4 * n) == 0,
          "%s minmax_lanes n=%zu", isa_name(isa), n);
    std::vector<uint8_t> c1(n + 1), c2(n + 1);
    g.quantize_lanes(x.data(), n, inv.data(), zp.data(), 15, c1.data());
    s.quantize_lanes(x.data(), n, inv.data(), zp.data(), 15, c2.data());
    CHECK(c1 == c2, "%s quantize_lanes n=%zu", isa_name(isa), n);
    std::vector<float> d1(n + 1), d2(n + 1);
    g.dequantize_lanes(c1.data(), n, zp.data(), sc.data() , d1.data());
    s.dequantize_lanes(c1.data(), n, zp.data(), sc.data(), d2.data());
    CHECK(std::memcmp(d1.data(), d2.data(), 4 * n) == 0, "%s dequantize_lanes n=%zu", isa_name(isa), n);
}

static void shuffle_paths(Isa isa) {
    const ShuffleOps& g = kShuffleGeneric;
    const ShuffleOps& s = shuffle_ops(isa);
    for (int size : {2, 4})
        for (size_t n : {0, 1, 15, 16, 17, 31, 32, 33, 100, 1027}) {
            std::vector<uint8_t> in(n * size), a(n * size), b(n * size), back(n * size);
            for (auto& v : in) v = static_cast<uint8_t>(rng());
            g.shuffle(in.data(), n, size, a.data());
            s.shuffle(in.data(), n, size, b.data());
            CHECK(a == b, "%s shuffle size %d n=%zu", isa_name(isa), size, n);
            bool planes = true;
            for (size_t i = 0; i < n; ++i)
                for (int k = 0; k < size; ++k) planes &= a[k * n + i] == in[i * size + k];
            CHECK(planes, "shuffle size %d n=%zu: plane layout", size, n);
            const uint8_t* pp[4];
            plane_ptrs(a.data(), n, size, pp);
            s.unshuffle(pp, n, size, back.data());
            CHECK(back == in, "%s unshuffle size %d n=%zu", isa_name(isa), size, n);
            // planes apart, in reverse memory order (as lz4/zstd leave them in a staged decode)
            std::vector<std::vector<uint8_t>> apart(size);
            for (int k = 0; k < size; ++k) {
                apart[size - 1 - k].assign(a.begin() + k * n, a.begin() + (k + 1) * n);
                pp[k] = apart[size - 1 - k].data();
            }
            std::fill(back.begin(), back.end(), 0);
            s.unshuffle(pp, n, size, back.data());
            CHECK(back == in, "%s unshuffle of separate planes size %d n=%zu", isa_name(isa), size, n);
        }
    for (size_t n : {0, 1, 7, 8, 9, 31, 32, 33, 40, 63, 64, 100, 1027, 4096}) {
        std::vector<uint8_t> in(n), a(n), b(n), back(n);
        for (auto& v : in) v = static_cast<uint8_t>(rng());
        g.bitplanes(in.data(), n, a.data());
        s.bitplanes(in.data(), n, b.data());
        CHECK(a == b, "%s bitplanes n=%zu", isa_name(isa), n);
        const size_t groups = n / 8;
        bool layout = true;
        for (size_t e = 0; e < 8 * groups; ++e)
            for (int k = 0; k < 8; ++k)
                layout &= ((a[k * groups + e / 8] >> (e % 8)) & 1) == ((in[e] >> k) & 1);
        for (size_t e = 8 * groups; e < n; ++e) layout &= a[e] == in[e];
        CHECK(layout, "bitplanes n=%zu: plane layout", n);
        s.unbitplanes(a.data(), n, back.data());
        CHECK(back == in, "%s unbitplanes n=%zu", isa_name(isa), n);
        g.unbitplanes(a.data(), n, back.data());
        CHECK(back == in, "generic unbitplanes n=%zu", n);
    }
}

static void codec_paths(Isa isa) {
    const CodecOps& g = codec_ops(Isa::Generic);
    const CodecOps& s = codec_ops(isa);
    for (size_t n : {0, 1, 7, 31, 33, 100, 1000, 4099}) {
        std::vector<float> x = randn(n, 3.0f, true);
        if (n > 10) x[9] = NAN;
        float l1 = INFINITY, h1 = -INFINITY, l2 = INFINITY, h2 = -INFINITY;
        const bool f1 = g.minmax(x.data(), n, &l1, &h1);
        const bool f2 = s.minmax(x.data(), n, &l2, &h2);
        CHECK(l1 == l2 && h1 == h2 && f1 == f2 && f1 == (n <= 8), "%s minmax n=%zu", isa_name(isa), n);
        lanes_paths(g, s, isa, x, n);
        std::vector<uint8_t> c1(n + 1), c2(n + 1);
        g.quantize(x.data(), n, 37.5f, -100.0f, 155.0f, 100, c1.data());
        s.quantize(x.data(), n, 37.5f, -100.0f, 155.0f, 100, c2.data());
        CHECK(c1 == c2, "%s quantize n=%zu", isa_name(isa), n);
        std::vector<float> d1(n + 1), d2(n + 1);
        g.dequantize(c1.data(), n, 100, 0.0267f, d1.data());
        s.dequantize(c1.data(), n, 100, 0.0267f, d2.data());
        CHECK(std::memcmp(d1.data(), d2.data(), 4 * n) == 0, "%s dequantize n=%zu", isa_name(isa), n);
        if (n > 10) x[9] = 1.0f;  // fp16 NaN payloads may differ between paths
        std::vector<uint8_t> h16a(2 * n + 2), h16b(2 * n + 2);
        g.f32_to_f16(x.data(), n, h16a.data());
        s.f32_to_f16(x.data(), n, h16b.data());
        CHECK(h16a == h16b, "%s f32->f16 n=%zu", isa_name(isa), n);
        g.f16_to_f32(h16a.data(), n, d1.data());
        s.f16_to_f32(h16a.data(), n, d2.data());
        CHECK(std::memcmp(d1.data(), d2.data(), 4 * n) == 0, "%s f16->f32 n=%zu", isa_name(isa), n);
        g.f32_to_bf16(x.data(), n, h16a.data());
        s.f32_to_bf16(x.data(), n, h16b.data());
        CHECK(h16a == h16b, "%s f32->bf16 n=%zu", isa_name(isa), n);
        g.bf16_to_f32(h16a.data(), n, d1.data());
        s.bf16_to_f32(h16a.data(), n, d2.data());
        CHECK(std::memcmp(d1.data(), d2.data(), 4 * n) == 0, "%s bf16->f32 n=%zu", isa_name(isa), n);
    }
    // whole tensors, per-channel on every axis, every quantized codec: identical bytes
    const uint64_t dims[3] = {3, 37, 11};
    std::vector<float> x = randn(3 * 37 * 11, 2.0f, false);
    std::vector<float> scratch(3 * 64);
    for (Codec c : {Codec::F16, Codec::BF16, Codec::Int8, Codec::Int4, Codec::Int2})
        for (int axis = -1; axis < 3; ++axis) {
            const bool pc = axis >= 0;
            if (pc && (c == Codec::F16 || c == Codec::BF16)) continue;
            const size_t n = encoded_len(c, DType::F32, pc, 3, dims, axis);
            std::vector<uint8_t> a(n), b(n);
            encode_tensor(Isa::Generic, x.data(), DType::F32, c, pc, 3, dims, axis, a.data(), n, scratch.data());
            encode_tensor(isa, x.data(), DType::F32, c, pc, 3, dims, axis, b.data(), n, scratch.data());
            CHECK(a == b, "%s encode codec %d axis %d", isa_name(isa), int(c), axis);
            TensorHeader h{};
            const CodecLimits lim{1u << 20, 8, 1u << 24};
            CHECK(parse_header(b.data(), n, lim, &h, nullptr, 0) == kOk, "parse own output");
            std::vector<float> y1(x.size()), y2(x.size());
            decode_payload(Isa::Generic, h, b.data() + h.header_len, h.raw_len, y1.data(), 4 * y1.size());
            decode_payload(isa, h, b.data() + h.header_len, h.raw_len, y2.data(), 4 * y2.size());
            CHECK(y1 == y2, "%s decode codec %d axis %d", isa_name(isa), int(c), axis);
            float err = 0.0f;
            for (size_t i = 0; i < x.size(); ++i) err = std::fmax(err, std::fabs(y1[i] - x[i]));
            CHECK(err < (c == Codec::Int2 ? 3.0f : c == Codec::Int4 ? 0.6f : 0.05f), "round-trip error %g", err);
        }
}

// NHWC-like tensors (channels innermost, odd counts so packed rows start mid-byte) through
// the per-lane path: identical bytes and values to generic; NaN/inf refused on every path.
static void channel_last(Isa isa) {
    for (uint64_t ch : {1, 3, 17, 40, 1100}) {
        const uint64_t dims[4] = {1, 5, 3, ch};
        const size_t numel = 15 * ch;
        std::vector<float> x = randn(numel, 2.0f, false), scratch(3 * ch);
        for (Codec c : {Codec::Int8, Codec::Int4, Codec::Int2}) {
            const size_t n = encoded_len(c, DType::F32, true, 4, dims, 3);
            std::vector<uint8_t> a(n), b(n);
            CHECK(encode_tensor(Isa::Generic, x.data(), DType::F32, c, true, 4, dims, 3, a.data(), n, scratch.data()) == kOk, "encode");
            CHECK(encode_tensor(isa, x.data(), DType::F32, c, true, 4, dims, 3, b.data(), n, scratch.data()) == kOk, "encode");
            CHECK(a == b, "%s channel-last encode codec %d ch %llu", isa_name(isa), int(c), (unsigned long long)ch);
            TensorHeader h{};
            const CodecLimits lim{1u << 20, 8, 1u << 24};
            CHECK(parse_header(b.data(), n, lim, &h, nullptr, 0) == kOk, "parse");
            std::vector<float> y1(numel), y2(numel);
            decode_payload(Isa::Generic, h, b.data() + h.header_len, h.raw_len, y1.data(), 4 * numel);
            decode_payload(isa, h, b.data() + h.header_len, h.raw_len, y2.data(), 4 * numel);
            CHECK(y1 == y2, "%s channel-last decode codec %d ch %llu", isa_name(isa), int(c), (unsigned long long)ch);
            // same values as the per-run path would give: check one element by hand
            const size_t e = numel - 1;
            float s_;
            std::memcpy(&s_, h.scales + 4 * (e % ch), 4);
            CHECK(std::fabs(y1[e] - x[e]) <= s_ * 0.5001f, "channel-last error %g", std::fabs(y1[e] - x[e]));
            for (float bad : {NAN, INFINITY, -INFINITY}) {
                std::vector<float> xb = x;
                xb[numel / 2] = bad;
                CHECK(encode_tensor(isa, xb.data(), DType::F32, c, true, 4, dims, 3, b.data(), n, scratch.data()) == kNonFinite,
                      "%s channel-last non-finite refused", isa_name(isa));
                CHECK(encode_tensor(isa, xb.data(), DType::F32, c, false, 4, dims, -1, b.data(),
                                    encoded_len(c, DType::F32, false, 4, dims, -1), scratch.data()) == kNonFinite,
                      "%s per-tensor non-finite refused", isa_name(isa));
            }
        }
    }
}

static void confidence_paths(Isa isa) {
    for (size_t cols : {1, 2, 5, 16, 33, 1000}) {
        std::vector<float> z = randn(4 * cols, 4.0f, false);
        if (cols > 8) z[3] = INFINITY, z[cols + 1] = -INFINITY, z[2 * cols + 2] = NAN;
        float p1[4], m1[4], e1[4], p2[4], m2[4], e2[4];
        confidence(Isa::Generic, z.data(), 4, cols, cols, p1, m1, e1);
        confidence(isa, z.data(), 4, cols, cols, p2, m2, e2);
        for (int r = 0; r < 4; ++r)
            CHECK(std::fabs(p1[r] - p2[r]) < 1e-5f && std::fabs(m1[r] - m2[r]) < 1e-5f &&
                      std::fabs(e1[r] - e2[r]) < 2e-5f && std::isfinite(e2[r]),
                  "%s confidence cols=%zu row %d: %g %g / %g %g / %g %g", isa_name(isa), cols, r,
                  p1[r], p2[r], m1[r], m2[r], e1[r], e2[r]);
    }
}

static void preprocess_paths(Isa isa) {
    const int H = 37, W = 53;
    std::vector<uint8_t> img(H * (W * 3 + 5));
    for (auto& v : img) v = static_cast<uint8_t>(rng() & 0xFF);
    for (bool nchw : {true, false})
        for (bool swap : {false, true})
            for (auto sz : {std::pair<int, int>{16, 24}, {80, 60}, {37, 53}, {1, 1}}) {
                PreprocessArgs a{};
                a.src = img.data(), a.src_h = H, a.src_w = W, a.src_stride = W * 3 + 5;
                a.out_h = sz.first + 4, a.out_w = sz.second + 2;
                a.roi_y = 2, a.roi_x = 1, a.roi_h = sz.first, a.roi_w = sz.second;
                a.nchw = nchw, a.out_type = OutType::F32, a.swap_rb = swap;
                for (int c = 0; c < 3; ++c) a.scale[c] = 1.0f / (255.0f * (0.2f + 0.01f * c)), a.bias[c] = -2.0f + c, a.pad[c] = 9.0f;
                const size_t n = 3 * static_cast<size_t>(a.out_h) * a.out_w;
                std::vector<float> o1(n + 1, -1.0f), o2(n + 1, -1.0f);
                std::vector<uint8_t> ws(preprocess_workspace_bytes(a));
                CHECK(preprocess(Isa::Generic, a, o1.data(), ws.data(), ws.size()) == 0, "preprocess generic");
                CHECK(preprocess(isa, a, o2.data(), ws.data(), ws.size()) == 0, "preprocess isa");
                float err = 0.0f;
                for (size_t i = 0; i < n; ++i) err = std::fmax(err, std::fabs(o1[i] - o2[i]));
                CHECK(err < 1e-4f && o2[n] == -1.0f, "%s preprocess %dx%d nchw=%d: err %g", isa_name(isa), sz.first, sz.second, nchw, err);
            }
    // constant image: every output equals value * scale + bias
    std::vector<uint8_t> flat(10 * 10 * 3, 100);
    PreprocessArgs a{};
    a.src = flat.data(), a.src_h = 10, a.src_w = 10, a.src_stride = 30;
    a.out_h = a.roi_h = 7, a.out_w = a.roi_w = 13, a.nchw = true, a.out_type = OutType::F32;
    for (int c = 0; c < 3; ++c) a.scale[c] = 0.5f, a.bias[c] = c;
    std::vector<float> o(3 * 7 * 13);
    std::vector<uint8_t> ws(preprocess_workspace_bytes(a));
    preprocess(isa, a, o.data(), ws.data(), ws.size());
    CHECK(std::fabs(o[0] - 50.0f) < 1e-3f && std::fabs(o[3 * 7 * 13 - 1] - 52.0f) < 1e-3f, "constant image %g", o[0]);
}

static void parser_fuzz(int cases) {
    const uint64_t dims[3] = {2, 3, 5};
    std::vector<float> x = randn(30, 1.0f, false), scratch(16), out(1 << 12);
    std::vector<std::vector<uint8_t>> seeds;
    for (Codec c : {Codec::Raw, Codec::F16, Codec::Int8, Codec::Int4, Codec::Int2})
        for (int axis : {-1, 1}) {
            const bool pc = axis >= 0 && c >= Codec::Int8;
            const size_t n = encoded_len(c, DType::F32, pc, 3, dims, axis);
            std::vector<uint8_t> b(n);
            encode_tensor(Isa::Generic, x.data(), DType::F32, c, pc, 3, dims, axis, b.data(), n, scratch.data());
            seeds.push_back(b);
        }
    const CodecLimits lim{1u << 10, 8, 1u << 14};
    int ok = 0, bad = 0;
    char err[256];
    for (int i = 0; i < cases; ++i) {
        std::vector<uint8_t> b = seeds[rng() % seeds.size()];
        for (int k = 0, m = 1 + rng() % 4; k < m; ++k) {
            switch (rng() % 4) {
                case 0: if (!b.empty()) b[rng() % b.size()] ^= 1 << (rng() % 8); break;
                case 1: if (!b.empty()) b[rng() % std::min<size_t>(b.size(), 64)] = static_cast<uint8_t>(rng()); break;
                case 2: b.resize(rng() % (b.size() + 1)); break;
                default: b.resize(b.size() + 1 + rng() % 8, static_cast<uint8_t>(rng())); break;
            }
        }
        // copy into an exact-size heap block so ASan sees any read past the end
        std::vector<uint8_t> exact(b.begin(), b.end());
        TensorHeader h{};
        if (parse_header(exact.data(), exact.size(), lim, &h, err, sizeof err) != kOk) { ++bad; continue; }
        const bool f16 = h.codec == Codec::Raw && h.dtype == DType::F16;
        const size_t out_len = h.numel * (f16 ? 2 : 4);
        CHECK(out_len <= 4 * out.size(), "limits let %zu bytes through", out_len);
        std::vector<float> dst(h.numel + 1);
        CHECK(decode_payload(Isa::Generic, h, exact.data() + h.header_len, exact.size() - h.header_len,
                             dst.data(), out_len) == kOk || h.stage != 0, "decode of a parsed buffer failed");
        ++ok;
    }
    std::printf("parser fuzz: %d cases, %d parsed, %d rejected\n", cases, ok, bad);
}

// Float-like payloads (sign/exponent planes with repeats, mantissa noise) of n elements.
static std::vector<uint8_t> float_payload(size_t n, int size) {
    std::vector<uint8_t> b(n * size);
    std::vector<float> x = randn(n, 1.0f, false);
    for (size_t i = 0; i < n; ++i) {
        uint8_t e[4];
        std::memcpy(e, &x[i], 4);
        for (int k = 0; k < size; ++k) b[i * size + k] = e[4 - size + k];
        if (i % 3 == 0) b[i * size] = static_cast<uint8_t>(i % 5);  // a plane lz4 shrinks
    }
    return b;
}

// lz4_pack_planes/lz4_unpack_planes: every path writes the generic path's bytes, unpacks them
// back to the payload, and never reads or writes out of bounds on a mutated payload.
static void lz4_planes_paths(Isa isa, int fuzz_cases) {
    for (int size : {2, 4})
        for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(100), size_t(5000), size_t(40000)})
            for (bool bits : {false, true}) {
                const std::vector<uint8_t> in = float_payload(n, size);
                const size_t len = in.size();
                std::vector<uint8_t> scratch(len + n), a(lz4_pack_bound(len, size)), b(a.size());
                const size_t na = lz4_pack_planes(Isa::Generic, in.data(), len, size, bits, 4096, scratch.data(), a.data());
                const size_t nb = lz4_pack_planes(isa, in.data(), len, size, bits, 4096, scratch.data(), b.data());
                CHECK(na == nb && std::memcmp(a.data(), b.data(), na) == 0, "%s lz4 pack size=%d n=%zu", isa_name(isa), size, n);
                CHECK(na <= 4 * size_t(size) + len, "lz4 pack wrote %zu > %zu", na, 4 * size_t(size) + len);
                std::vector<uint8_t> exact(a.begin(), a.begin() + na), planes_buf(len), tmp(n + 1), back(len);
                const uint8_t* planes[4] = {};
                const char* bad = lz4_unpack_planes(isa, exact.data(), na, size, n, bits, planes_buf.data(), tmp.data(), planes);
                CHECK(bad == nullptr, "%s lz4 unpack: %s", isa_name(isa), bad ? bad : "");
                if (bad) continue;
                shuffle_ops(isa).unshuffle(planes, n, size, back.data());
                CHECK(back == in, "%s lz4 round trip size=%d n=%zu bits=%d", isa_name(isa), size, n, bits);
            }
    // mutated payloads: an error or some planes, never a read or write out of bounds (ASan)
    const size_t n = 3000;
    const std::vector<uint8_t> in = float_payload(n, 4);
    std::vector<uint8_t> scratch(in.size() + n), seed(lz4_pack_bound(in.size(), 4));
    seed.resize(lz4_pack_planes(isa, in.data(), in.size(), 4, true, 512, scratch.data(), seed.data()));
    int refused = 0;
    for (int i = 0; i < fuzz_cases / 10; ++i) {
        std::vector<uint8_t> b = seed;
        for (int k = 0, m = 1 + rng() % 4; k < m; ++k) {
            switch (rng() % 3) {
                case 0: if (!b.empty()) b[rng() % b.size()] ^= 1 << (rng() % 8); break;
                case 1: if (!b.empty()) b[rng() % std::min<size_t>(b.size(), 24)] = static_cast<uint8_t>(rng()); break;
                default: b.resize(rng() % (b.size() + 1)); break;
            }
        }
        std::vector<uint8_t> exact(b.begin(), b.end()), planes_buf(4 * n), tmp(n);
        const uint8_t* planes[4] = {};
        if (lz4_unpack_planes(isa, exact.data(), exact.size(), 4, n, true, planes_buf.data(), tmp.data(), planes)) {
            ++refused;
            continue;
        }
        std::vector<uint8_t> back(4 * n);
        shuffle_ops(isa).unshuffle(planes, n, 4, back.data());  // every plane pointer is readable for n bytes
    }
    // one plain block: round trip, and mutated blocks inflate to exactly n bytes or are refused
    std::vector<uint8_t> block(lz4_block_bound(in.size())), back(in.size());
    block.resize(lz4_block_compress(in.data(), in.size(), block.data()));
    CHECK(!block.empty() && block.size() <= lz4_block_bound(in.size()), "lz4 block of %zu bytes: %zu", in.size(),
          block.size());
    CHECK(lz4_block_decompress(block.data(), block.size(), back.data(), back.size()) == nullptr && back == in,
          "lz4 block round trip");
    CHECK(lz4_block_decompress(block.data(), block.size(), back.data(), back.size() - 1) != nullptr,
          "lz4 block into one byte less is refused");
    for (int i = 0; i < fuzz_cases / 10; ++i) {
        std::vector<uint8_t> b = block;
        b[rng() % b.size()] ^= 1 << (rng() % 8);
        if (rng() % 2) b.resize(rng() % (b.size() + 1));
        std::vector<uint8_t> exact(b.begin(), b.end()), dst(in.size());
        if (exact.empty()) continue;
        lz4_block_decompress(exact.data(), exact.size(), dst.data(), dst.size());
    }
    if (fuzz_cases) std::printf("lz4 planes fuzz (%s): %d cases, %d refused\n", isa_name(isa), fuzz_cases / 10, refused);
}

int main(int argc, char** argv) {
    const int fuzz_cases = argc > 1 ? std::atoi(argv[1]) : 20000;
    known_values();
    std::printf("best isa: %s\n", isa_name(best_isa()));
    for (Isa isa : kAllIsas) {
        if (isa == Isa::Generic || !isa_runs(isa)) continue;
        codec_paths(isa);
        channel_last(isa);
        shuffle_paths(isa);
        confidence_paths(isa);
        preprocess_paths(isa);
        lz4_planes_paths(isa, 0);
        std::printf("checked %s against generic\n", isa_name(isa));
    }
    parser_fuzz(fuzz_cases);
    lz4_planes_paths(best_isa(), fuzz_cases);
    std::printf("%d checks, %d failed\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
