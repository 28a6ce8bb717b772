// Preprocessing driver: OpenCV-compatible coefficient tables, a two-row cache of
// horizontally resized source rows, and per-row emission. ISA work goes through
// PreprocessOps; this file and the generic ops are portable.
#include "preprocess.h"

#include <cmath>
#include <cstring>

namespace edgeinf {

namespace {

constexpr int kCoefBits = 11;  // OpenCV's INTER_RESIZE_COEF_BITS
constexpr float kCoefScale = 1 << kCoefBits;

int16_t coef_round(float v) { return static_cast<int16_t>(std::nearbyint(v * kCoefScale)); }

void hresize_generic(const uint8_t* row, const int32_t* xofs, const int16_t* coef, int dw,
                     int, bool swap, float* out) {
    for (int x = 0; x < dw; ++x) {
        const uint8_t* p = row + xofs[x];
        const int a0 = coef[8 * x], a1 = coef[8 * x + 1];
        for (int c = 0; c < 3; ++c) {
            const int ci = swap ? 2 - c : c;
            // a1 is 0 wherever p + 3 would leave the row (clamped edges)
            const int p1 = a1 ? p[3 + ci] : 0;
            out[4 * x + c] = static_cast<float>(p[ci] * a0 + p1 * a1);
        }
        out[4 * x + 3] = 0.0f;
    }
}

void vblend_generic(const float* h0, const float* h1, float w0, float w1, const float* s,
                    const float* b, int dw, float* out) {
    for (int x = 0; x < dw; ++x)
        for (int c = 0; c < 4; ++c)
            out[4 * x + c] = (h0[4 * x + c] * w0 + h1[4 * x + c] * w1) * s[c] + b[c];
}

void store_f32_generic(const float* row4, int dw, bool nchw, float* dst, size_t plane) {
    for (int x = 0; x < dw; ++x)
        for (int c = 0; c < 3; ++c) {
            if (nchw) dst[c * plane + x] = row4[4 * x + c];
            else dst[3 * x + c] = row4[4 * x + c];
        }
}

template <typename T>
void store_int(const float* row4, int dw, bool nchw, T* dst, size_t plane, float lo, float hi) {
    for (int x = 0; x < dw; ++x)
        for (int c = 0; c < 3; ++c) {
            float v = row4[4 * x + c];
            v = v > lo ? (v < hi ? v : hi) : lo;
            const T q = static_cast<T>(std::nearbyint(v));
            if (nchw) dst[c * plane + x] = q;
            else dst[3 * x + c] = q;
        }
}

struct Layout {  // where workspace pieces live
    int32_t* xofs;
    int16_t* coef;
    float* rows[2];
    float* line;
};

size_t align64(size_t n) { return (n + 63) & ~static_cast<size_t>(63); }

Layout carve(const PreprocessArgs& a, void* ws) {
    const size_t dw = static_cast<size_t>(a.roi_w);
    uint8_t* p = static_cast<uint8_t*>(ws);
    Layout l;
    l.xofs = reinterpret_cast<int32_t*>(p), p += align64(dw * 4);
    l.coef = reinterpret_cast<int16_t*>(p), p += align64(dw * 16);
    for (float*& r : l.rows) r = reinterpret_cast<float*>(p), p += align64(dw * 16 + 32);
    l.line = reinterpret_cast<float*>(p);
    return l;
}

// Same arithmetic as OpenCV's resize: fx = (dx + 0.5) * scale - 0.5, floor, clamp.
int fill_xtab(const PreprocessArgs& a, const Layout& l) {
    const double scale = 1.0 / (static_cast<double>(a.roi_w) / a.src_w);
    int n_fast = 0;
    for (int dx = 0; dx < a.roi_w; ++dx) {
        float fx = static_cast<float>((dx + 0.5) * scale - 0.5);
        int sx = static_cast<int>(std::floor(fx));
        fx -= sx;
        if (sx < 0) sx = 0, fx = 0.0f;
        if (sx >= a.src_w - 1) sx = a.src_w - 1, fx = 0.0f;
        const int16_t a0 = coef_round(1.0f - fx), a1 = fx == 0.0f ? 0 : coef_round(fx);
        l.xofs[dx] = 3 * sx;
        const int16_t c[8] = {a0, a1, a0, a1, a0, a1, 0, 0};
        std::memcpy(l.coef + 8 * dx, c, sizeof c);
        if (3 * sx + 8 <= 3 * a.src_w) n_fast = dx + 1;  // xofs grows: a prefix is safe
    }
    return n_fast;
}

void fill_pad_rows(const PreprocessArgs& a, void* out, int y0, int y1, int x0, int x1) {
    const size_t plane = static_cast<size_t>(a.out_h) * a.out_w;
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x)
            for (int c = 0; c < 3; ++c) {
                const size_t i = a.nchw ? c * plane + static_cast<size_t>(y) * a.out_w + x
                                        : (static_cast<size_t>(y) * a.out_w + x) * 3 + c;
                if (a.out_type == OutType::F32) static_cast<float*>(out)[i] = a.pad[c];
                else if (a.out_type == OutType::U8) static_cast<uint8_t*>(out)[i] = static_cast<uint8_t>(a.pad[c]);
                else static_cast<int8_t*>(out)[i] = static_cast<int8_t>(a.pad[c]);
            }
}

}  // namespace

const PreprocessOps kPreprocessGeneric = {hresize_generic, vblend_generic, store_f32_generic};

size_t preprocess_workspace_bytes(const PreprocessArgs& a) {
    const size_t dw = a.roi_w > 0 ? static_cast<size_t>(a.roi_w) : 0;
    return align64(dw * 4) + align64(dw * 16) + 3 * align64(dw * 16 + 32) + 64;
}

int preprocess(Isa isa, const PreprocessArgs& a, void* out, void* ws, size_t ws_len) {
    if (a.src_h < 1 || a.src_w < 1 || a.src_stride < 3 * static_cast<size_t>(a.src_w) ||
        a.roi_h < 1 || a.roi_w < 1 || a.roi_y < 0 || a.roi_x < 0 ||
        a.roi_y + a.roi_h > a.out_h || a.roi_x + a.roi_w > a.out_w)
        return -1;
    if (ws_len < preprocess_workspace_bytes(a)) return -2;
    const PreprocessOps& ops = preprocess_ops(isa);
    const Layout l = carve(a, ws);
    const int n_fast = fill_xtab(a, l);
    // pad: rows above and below the roi, then columns beside it
    fill_pad_rows(a, out, 0, a.roi_y, 0, a.out_w);
    fill_pad_rows(a, out, a.roi_y + a.roi_h, a.out_h, 0, a.out_w);
    fill_pad_rows(a, out, a.roi_y, a.roi_y + a.roi_h, 0, a.roi_x);
    fill_pad_rows(a, out, a.roi_y, a.roi_y + a.roi_h, a.roi_x + a.roi_w, a.out_w);

    const float norm = 1.0f / (kCoefScale * kCoefScale);
    const float s4[8] = {a.scale[0] * norm, a.scale[1] * norm, a.scale[2] * norm, 0.0f,
                         a.scale[0] * norm, a.scale[1] * norm, a.scale[2] * norm, 0.0f};
    const float b4[8] = {a.bias[0], a.bias[1], a.bias[2], 0.0f, a.bias[0], a.bias[1], a.bias[2], 0.0f};
    const double scale_y = 1.0 / (static_cast<double>(a.roi_h) / a.src_h);
    const size_t plane = static_cast<size_t>(a.out_h) * a.out_w;
    int cached[2] = {-1, -1};
    for (int dy = 0; dy < a.roi_h; ++dy) {
        float fy = static_cast<float>((dy + 0.5) * scale_y - 0.5);
        const int sy = static_cast<int>(std::floor(fy));
        fy -= sy;
        const int r0 = sy < 0 ? 0 : (sy >= a.src_h ? a.src_h - 1 : sy);
        const int r1 = sy + 1 < 0 ? 0 : (sy + 1 >= a.src_h ? a.src_h - 1 : sy + 1);
        const float w0 = coef_round(1.0f - fy), w1 = coef_round(fy);
        auto load = [&](int r, int slot) {
            ops.hresize(a.src + static_cast<size_t>(r) * a.src_stride, l.xofs, l.coef, a.roi_w,
                        n_fast, a.swap_rb, l.rows[slot]);
            cached[slot] = r;
        };
        int s0 = cached[0] == r0 ? 0 : cached[1] == r0 ? 1 : -1;
        if (s0 < 0) load(r0, s0 = cached[0] == r1 ? 1 : 0);
        int s1 = cached[0] == r1 ? 0 : cached[1] == r1 ? 1 : -1;
        if (s1 < 0) load(r1, s1 = s0 ^ 1);
        const float* h[2] = {l.rows[s0], l.rows[s1]};
        const size_t y = static_cast<size_t>(a.roi_y + dy);
        const size_t off = a.nchw ? y * a.out_w + a.roi_x : (y * a.out_w + a.roi_x) * 3;
        ops.vblend(h[0], h[1], w0, w1, s4, b4, a.roi_w, l.line);
        if (a.out_type == OutType::F32) {
            ops.store_f32(l.line, a.roi_w, a.nchw, static_cast<float*>(out) + off, plane);
        } else {
            if (a.out_type == OutType::U8)
                store_int<uint8_t>(l.line, a.roi_w, a.nchw, static_cast<uint8_t*>(out) + off, plane, 0.0f, 255.0f);
            else
                store_int<int8_t>(l.line, a.roi_w, a.nchw, static_cast<int8_t*>(out) + off, plane, -128.0f, 127.0f);
        }
    }
    return 0;
}

}  // namespace edgeinf
