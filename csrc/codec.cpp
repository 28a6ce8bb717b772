// Encoded-tensor drivers: header writing and hostile-input parsing, per-channel runs and
// bit packing. ISA-specific work goes through CodecOps (arch/*); this file is portable.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "codec.h"
#include "half.h"
#include "pack.h"

namespace edgeinf {

namespace {

constexpr uint8_t kMagic[4] = {'E', 'I', 'T', 'C'};

template <typename T>
T load_le(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));  // NOTE: little-endian hosts only (x86, ARM Linux)
    return v;
}
template <typename T>
void store_le(uint8_t* p, T v) { std::memcpy(p, &v, sizeof(T)); }

bool is_quantized(Codec c) { return c == Codec::Int8 || c == Codec::Int4 || c == Codec::Int2; }

int fail(char* err, size_t errlen, int status, const char* fmt, unsigned long long a = 0,
         unsigned long long b = 0) {
    if (err && errlen) std::snprintf(err, errlen, fmt, a, b);
    return status;
}

// Outer/channel/inner view of a C-order shape around axis.
void split_shape(int ndim, const uint64_t* dims, int axis, uint64_t* outer, uint64_t* ch,
                 uint64_t* inner) {
    *outer = 1, *ch = 1, *inner = 1;
    for (int i = 0; i < ndim; ++i) {
        if (i < axis) *outer *= dims[i];
        else if (i == axis) *ch = dims[i];
        else *inner *= dims[i];
    }
}

struct QParams {
    float scale, inv, lo, hi;
    int32_t zp;
};

QParams make_params(float lo, float hi, int bits) {
    const int qmax = (1 << bits) - 1;
    // NOTE: half the float range, so (q - zp) * scale cannot overflow on decode
    const float big = std::numeric_limits<float>::max() / 2;
    lo = lo < 0.0f ? (lo > -big ? lo : -big) : 0.0f;  // range always holds 0 (ReLU zeros exact)
    hi = hi > 0.0f ? (hi < big ? hi : big) : 0.0f;
    float scale = static_cast<float>((static_cast<double>(hi) - lo) / qmax);
    // NOTE: ranges under 1e-30 would make 1/scale overflow; they decode as zeros.
    if (!(scale >= 1e-30f)) scale = 1.0f;
    double z = std::nearbyint(-static_cast<double>(lo) / scale);
    int32_t zp = static_cast<int32_t>(z < 0 ? 0 : (z > qmax ? qmax : z));
    return {scale, 1.0f / scale, static_cast<float>(-zp), static_cast<float>(qmax - zp), zp};
}

// Writes m codes for elements e0.. of the packed stream: the ones sharing a byte with the
// previous run are OR-ed in (that run left their bits 0), the rest packed from a byte boundary.
void put_codes(const uint8_t* codes, size_t m, uint64_t e0, int bits, uint8_t* payload) {
    if (bits == 8) return (void)std::memcpy(payload + e0, codes, m);
    const uint64_t per = 8 / bits;
    size_t i = 0;
    for (; i < m && (e0 + i) % per != 0; ++i)
        payload[(e0 + i) / per] |= codes[i] << (((e0 + i) % per) * bits);
    if (i < m) pack_codes(codes + i, m - i, bits, payload + (e0 + i) / per);
}

// Reads m codes of elements e0.. of the packed stream, whatever their byte alignment.
void get_codes(const uint8_t* payload, uint64_t e0, size_t m, int bits, uint8_t* codes) {
    const uint64_t per = 8 / bits;
    const int mask = (1 << bits) - 1;
    size_t i = 0;
    for (; i < m && (e0 + i) % per != 0; ++i)
        codes[i] = (payload[(e0 + i) / per] >> (((e0 + i) % per) * bits)) & mask;
    if (i < m) unpack_codes(payload + (e0 + i) / per, m - i, bits, codes + i);
}

// Quantizes n values whose first is element e0 of the stream into the packed payload.
void quant_run(const CodecOps& ops, const float* x, size_t n, uint64_t e0, const QParams& p,
               int bits, uint8_t* payload) {
    if (bits == 8) {
        ops.quantize(x, n, p.inv, p.lo, p.hi, p.zp, payload + e0);
        return;
    }
    const uint64_t per = 8 / bits;
    size_t i = 0;
    uint8_t codes[1];
    for (; i < n && (e0 + i) % per != 0; ++i) {  // join the byte the previous run began
        ops.quantize(x + i, 1, p.inv, p.lo, p.hi, p.zp, codes);
        payload[(e0 + i) / per] |= codes[0] << (((e0 + i) % per) * bits);
    }
    if (i < n) ops.quantize_packed(x + i, n - i, bits, p.inv, p.lo, p.hi, p.zp, payload + (e0 + i) / per);
}

// Channel-last per-channel (inner == 1, e.g. NHWC with axis=-1): rows of ch values whose
// lane i has its own parameters. Narrow rows (ch < kPackChunk) go R at a time against
// parameter vectors tiled R times, so the SIMD loops see ~1024 lanes, not ch plus a tail.
struct Tile {
    uint64_t rows_per, lanes;  // rows per call, lanes per full call
};
Tile tile_of(uint64_t ch) {
    const uint64_t r = ch && ch < kPackChunk ? kPackChunk / ch : 1;
    return {r, r * ch};
}

bool minmax_rows(const CodecOps& ops, const float* x, uint64_t rows, uint64_t ch, float* lo, float* hi) {
    const Tile t = tile_of(ch);
    if (t.rows_per == 1) {
        bool finite = true;
        for (uint64_t r = 0; r < rows; ++r) finite &= ops.minmax_lanes(x + r * ch, ch, lo, hi);
        return finite;
    }
    float tlo[kPackChunk], thi[kPackChunk];
    for (uint64_t i = 0; i < t.lanes; ++i) tlo[i] = std::numeric_limits<float>::infinity(), thi[i] = -tlo[i];
    bool finite = true;
    for (uint64_t r = 0; r < rows; r += t.rows_per) {
        const uint64_t m = (rows - r < t.rows_per ? rows - r : t.rows_per) * ch;
        finite &= ops.minmax_lanes(x + r * ch, m, tlo, thi);
    }
    // NOTE: the tiles hold no NaN; only which signed zero wins can differ, and make_params
    // treats -0 and +0 alike
    for (uint64_t j = 0; j < t.rows_per; ++j)
        for (uint64_t k = 0; k < ch; ++k) {
            lo[k] = tlo[j * ch + k] < lo[k] ? tlo[j * ch + k] : lo[k];
            hi[k] = thi[j * ch + k] > hi[k] ? thi[j * ch + k] : hi[k];
        }
    return finite;
}

void quant_rows(const CodecOps& ops, const float* x, uint64_t rows, uint64_t ch, const float* inv,
                const uint8_t* zps, int bits, uint8_t* payload) {
    uint8_t codes[kPackChunk], tzp[kPackChunk];
    float tinv[kPackChunk];
    const int qmax = (1 << bits) - 1;
    const Tile t = tile_of(ch);
    const uint64_t step = t.rows_per == 1 ? kPackChunk : t.lanes;  // lanes per call
    if (t.rows_per > 1)
        for (uint64_t i = 0; i < t.lanes; ++i) tinv[i] = inv[i % ch], tzp[i] = zps[i % ch];
    const uint64_t row_lanes = t.rows_per == 1 ? ch : rows * ch;  // a "row" of the loop below
    for (uint64_t r = 0; r < (t.rows_per == 1 ? rows : 1); ++r)
        for (uint64_t j = 0; j < row_lanes; j += step) {
            const size_t m = row_lanes - j < step ? row_lanes - j : step;
            const uint64_t e0 = r * ch + j;
            const float* pi = t.rows_per == 1 ? inv + j : tinv;
            const uint8_t* pz = t.rows_per == 1 ? zps + j : tzp;
            if (bits == 8) {
                ops.quantize_lanes(x + e0, m, pi, pz, qmax, payload + e0);
                continue;
            }
            ops.quantize_lanes(x + e0, m, pi, pz, qmax, codes);
            put_codes(codes, m, e0, bits, payload);
        }
}

void dequant_rows(const CodecOps& ops, const uint8_t* payload, uint64_t rows, uint64_t ch,
                  const uint8_t* scales, const uint8_t* zps, int bits, float* out) {
    uint8_t codes[kPackChunk], tzp[kPackChunk], tsc[4 * kPackChunk];
    const Tile t = tile_of(ch);
    const uint64_t step = t.rows_per == 1 ? kPackChunk : t.lanes;
    if (t.rows_per > 1)
        for (uint64_t i = 0; i < t.lanes; ++i) tzp[i] = zps[i % ch], std::memcpy(tsc + 4 * i, scales + 4 * (i % ch), 4);
    const uint64_t row_lanes = t.rows_per == 1 ? ch : rows * ch;
    for (uint64_t r = 0; r < (t.rows_per == 1 ? rows : 1); ++r)
        for (uint64_t j = 0; j < row_lanes; j += step) {
            const size_t m = row_lanes - j < step ? row_lanes - j : step;
            const uint64_t e0 = r * ch + j;
            const uint8_t* c = payload + e0;
            if (bits != 8) get_codes(payload, e0, m, bits, codes), c = codes;
            ops.dequantize_lanes(c, m, t.rows_per == 1 ? zps + j : tzp, t.rows_per == 1 ? scales + 4 * j : tsc, out + e0);
        }
}

void dequant_run(const CodecOps& ops, const uint8_t* payload, size_t n, uint64_t e0,
                 float scale, int32_t zp, int bits, float* out) {
    if (bits == 8) {
        ops.dequantize(payload + e0, n, zp, scale, out);
        return;
    }
    const uint64_t per = 8 / bits;
    const int mask = (1 << bits) - 1;
    size_t i = 0;
    uint8_t codes[1];
    for (; i < n && (e0 + i) % per != 0; ++i) {
        codes[0] = (payload[(e0 + i) / per] >> (((e0 + i) % per) * bits)) & mask;
        ops.dequantize(codes, 1, zp, scale, out + i);
    }
    if (i < n) ops.dequantize_packed(payload + (e0 + i) / per, n - i, bits, zp, scale, out + i);
}

}  // namespace

int codec_bits(Codec c) {
    switch (c) {
        case Codec::Raw: return 32;
        case Codec::F16: case Codec::BF16: return 16;
        case Codec::Int8: return 8;
        case Codec::Int4: return 4;
        case Codec::Int2: return 2;
    }
    return 0;
}

uint64_t codec_payload_len(Codec c, DType dtype, uint64_t numel) {
    if (c == Codec::Raw) return numel * (dtype == DType::F16 ? 2 : 4);
    const uint64_t bits = static_cast<uint64_t>(codec_bits(c));
    return (numel / 8) * bits + ((numel % 8) * bits + 7) / 8;  // no overflow for numel < 2^61
}

size_t codec_header_len(int ndim, uint32_t nparams) {
    const size_t n = kFixedHeader + 8 * static_cast<size_t>(ndim) + 5 * static_cast<size_t>(nparams);
    return (n + 7) & ~static_cast<size_t>(7);
}

size_t encoded_len(Codec c, DType dtype, bool per_channel, int ndim, const uint64_t* dims,
                   int axis) {
    uint64_t numel = 1;
    for (int i = 0; i < ndim; ++i) numel *= dims[i];
    const uint32_t np = !is_quantized(c) ? 0 : per_channel ? static_cast<uint32_t>(dims[axis]) : 1;
    return codec_header_len(ndim, np) + codec_payload_len(c, dtype, numel);
}

int shuffle_elem_size(const TensorHeader& h) {
    return h.codec == Codec::Raw && h.dtype == DType::F32 ? 4 : 2;
}

size_t encode_scratch_floats(bool per_channel, int ndim, const uint64_t* dims, int axis) {
    return 3 * static_cast<size_t>(per_channel && axis >= 0 && axis < ndim ? dims[axis] : 1);
}

int parse_header(const uint8_t* buf, size_t len, const CodecLimits& lim, TensorHeader* h,
                 char* err, size_t errlen) {
    if (len < kFixedHeader)
        return fail(err, errlen, kCorrupt, "buffer of %llu bytes is shorter than the %llu-byte header", len, kFixedHeader);
    if (std::memcmp(buf, kMagic, 4) != 0)
        return fail(err, errlen, kCorrupt, "bad magic (not an edgeinf encoded tensor)");
    if (buf[4] != kFormatVersion)
        return fail(err, errlen, kCorrupt, "unsupported format version %llu (this build reads %llu)", buf[4], kFormatVersion);
    if (buf[5] > static_cast<uint8_t>(Codec::Int2))
        return fail(err, errlen, kCorrupt, "unknown codec id %llu", buf[5]);
    h->codec = static_cast<Codec>(buf[5]);
    const uint8_t flags = buf[6];
    h->per_channel = flags & kFlagPerChannel;
    h->stage = (flags & kStageMask) >> kStageShift;
    h->shuffle = flags & kFlagShuffle;
    h->bitplanes = flags & kFlagBitPlanes;
    if ((flags & ~(kFlagPerChannel | kStageMask | kFlagShuffle | kFlagBitPlanes)) || h->stage == 3)
        return fail(err, errlen, kCorrupt, "unknown flags 0x%llx", flags);
    if (h->bitplanes && !h->shuffle)
        return fail(err, errlen, kCorrupt, "bit-plane flag without the shuffle flag");
    if (h->shuffle && (h->stage == 0 || is_quantized(h->codec)))
        return fail(err, errlen, kCorrupt, "shuffle flag needs a lossless stage and a raw/fp16/bf16 codec");
    if (buf[7] != static_cast<uint8_t>(DType::F32) && buf[7] != static_cast<uint8_t>(DType::F16))
        return fail(err, errlen, kCorrupt, "unknown dtype id %llu", buf[7]);
    h->dtype = static_cast<DType>(buf[7]);
    h->ndim = buf[8];
    if (h->ndim > kMaxNdim || static_cast<uint32_t>(h->ndim) > lim.max_ndim)
        return fail(err, errlen, kOverLimit, "ndim %llu over the limit %llu", h->ndim, lim.max_ndim < kMaxNdim ? lim.max_ndim : kMaxNdim);
    if (buf[10] || buf[11]) return fail(err, errlen, kCorrupt, "reserved bytes are not zero");
    if (h->per_channel && (!is_quantized(h->codec) || buf[9] >= h->ndim))
        return fail(err, errlen, kCorrupt, "per-channel axis %llu invalid for this codec and ndim %llu", buf[9], h->ndim);
    if (!h->per_channel && buf[9] != 0xFF)
        return fail(err, errlen, kCorrupt, "axis byte must be 0xFF for per-tensor codecs");
    h->axis = h->per_channel ? buf[9] : -1;
    h->nparams = load_le<uint32_t>(buf + 12);
    h->raw_len = load_le<uint64_t>(buf + 16);
    h->stored_len = load_le<uint64_t>(buf + 24);
    if (len < kFixedHeader + 8ull * h->ndim)
        return fail(err, errlen, kCorrupt, "truncated: %llu bytes cannot hold %llu dims", len, h->ndim);
    uint64_t numel = 1;
    for (int i = 0; i < h->ndim; ++i) {
        const uint64_t d = load_le<uint64_t>(buf + kFixedHeader + 8 * i);
        if (d > lim.max_elements || (d && numel > lim.max_elements / d))
            return fail(err, errlen, kOverLimit, "shape has more elements than the limit %llu (dim %llu)", lim.max_elements, i);
        h->dims[i] = d;
        numel *= d;
    }
    h->numel = numel;
    const uint32_t want_np = !is_quantized(h->codec) ? 0 : h->per_channel ? static_cast<uint32_t>(h->dims[h->axis]) : 1;
    if (h->nparams != want_np)
        return fail(err, errlen, kCorrupt, "nparams %llu, expected %llu", h->nparams, want_np);
    h->header_len = codec_header_len(h->ndim, h->nparams);  // nparams <= max_elements: no overflow
    if (len < h->header_len)
        return fail(err, errlen, kCorrupt, "truncated: %llu bytes, header needs %llu", len, h->header_len);
    h->scales = buf + kFixedHeader + 8 * h->ndim;
    h->zps = h->scales + 4 * static_cast<size_t>(h->nparams);
    for (const uint8_t* p = h->zps + h->nparams; p < buf + h->header_len; ++p)
        if (*p) return fail(err, errlen, kCorrupt, "header padding is not zero");
    const int qmax = is_quantized(h->codec) ? (1 << codec_bits(h->codec)) - 1 : 0;
    for (uint32_t i = 0; i < h->nparams; ++i) {
        const float s = load_le<float>(h->scales + 4 * i);
        if (!(std::isfinite(s) && s > 0.0f))
            return fail(err, errlen, kCorrupt, "scale %llu is not finite and > 0", i);
        if (h->zps[i] > qmax)
            return fail(err, errlen, kCorrupt, "zero point %llu over %llu", h->zps[i], qmax);
    }
    const uint64_t want_raw = codec_payload_len(h->codec, h->dtype, numel);
    if (h->raw_len != want_raw)
        return fail(err, errlen, kCorrupt, "raw payload length %llu, shape needs %llu", h->raw_len, want_raw);
    if (h->raw_len > lim.max_bytes)
        return fail(err, errlen, kOverLimit, "payload of %llu bytes over the limit %llu", h->raw_len, lim.max_bytes);
    if (h->stage == 0 && h->stored_len != h->raw_len)
        return fail(err, errlen, kCorrupt, "stored length %llu != raw length %llu without a lossless stage", h->stored_len, h->raw_len);
    if (h->stored_len != len - h->header_len)
        return fail(err, errlen, kCorrupt, "buffer holds %llu payload bytes, header says %llu (truncated or trailing bytes)", len - h->header_len, h->stored_len);
    return kOk;
}

size_t write_header(DType dtype, Codec c, bool per_channel, int ndim, const uint64_t* dims, int axis,
                    uint8_t* out) {
    uint64_t numel = 1;
    for (int i = 0; i < ndim; ++i) numel *= dims[i];
    const uint32_t np = !is_quantized(c) ? 0 : per_channel ? static_cast<uint32_t>(dims[axis]) : 1;
    const size_t hl = codec_header_len(ndim, np);
    const uint64_t pl = codec_payload_len(c, dtype, numel);
    std::memset(out, 0, hl);
    std::memcpy(out, kMagic, 4);
    out[4] = kFormatVersion;
    out[5] = static_cast<uint8_t>(c);
    out[6] = per_channel ? kFlagPerChannel : 0;
    out[7] = static_cast<uint8_t>(dtype);
    out[8] = static_cast<uint8_t>(ndim);
    out[9] = per_channel ? static_cast<uint8_t>(axis) : 0xFF;
    store_le<uint32_t>(out + 12, np);
    store_le<uint64_t>(out + 16, pl);
    store_le<uint64_t>(out + 24, pl);
    for (int i = 0; i < ndim; ++i) store_le<uint64_t>(out + kFixedHeader + 8 * i, dims[i]);
    return hl;
}

int encode_tensor(Isa isa, const void* xv, DType dtype, Codec c, bool per_channel, int ndim,
                  const uint64_t* dims, int axis, uint8_t* out, size_t out_len, float* scratch) {
    if (ndim < 0 || ndim > kMaxNdim) return kBadArgument;
    if (per_channel && (!is_quantized(c) || axis < 0 || axis >= ndim)) return kBadArgument;
    // x is float16 only for raw/fp16 of a float16 tensor; otherwise float32 (the caller
    // widened a float16 tensor, whose dtype the header still records).
    const size_t need = encoded_len(c, dtype, per_channel, ndim, dims, axis);
    if (out_len != need) return kOutOfBounds;
    uint64_t numel = 1;
    for (int i = 0; i < ndim; ++i) numel *= dims[i];
    const uint32_t np = !is_quantized(c) ? 0 : per_channel ? static_cast<uint32_t>(dims[axis]) : 1;
    const size_t hl = codec_header_len(ndim, np);
    const uint64_t pl = codec_payload_len(c, dtype, numel);
    write_header(dtype, c, per_channel, ndim, dims, axis, out);
    uint8_t* payload = out + hl;
    const CodecOps& ops = codec_ops(isa);
    if (c == Codec::Raw || (c == Codec::F16 && dtype == DType::F16)) {
        if (pl) std::memcpy(payload, xv, pl);
        if (c == Codec::F16) out[5] = static_cast<uint8_t>(Codec::Raw);  // identical bytes
        return kOk;
    }
    const float* x = static_cast<const float*>(xv);
    if (c == Codec::F16) return ops.f32_to_f16(x, numel, payload), kOk;
    if (c == Codec::BF16) return ops.f32_to_bf16(x, numel, payload), kOk;
    const int bits = codec_bits(c);
    uint64_t outer = 1, ch = 1, inner = numel;
    if (per_channel) split_shape(ndim, dims, axis, &outer, &ch, &inner);
    const bool lanes = per_channel && inner == 1;
    float* lo = scratch;
    float* hi = scratch + ch;
    for (uint64_t k = 0; k < ch; ++k) lo[k] = std::numeric_limits<float>::infinity(), hi[k] = -lo[k];
    bool finite = true;
    if (lanes) finite = minmax_rows(ops, x, outer, ch, lo, hi);
    else
        for (uint64_t o = 0; o < outer; ++o)
            for (uint64_t k = 0; k < ch; ++k) finite &= ops.minmax(x + (o * ch + k) * inner, inner, &lo[k], &hi[k]);
    if (!finite) return kNonFinite;
    uint8_t* sc = out + kFixedHeader + 8 * ndim;
    float* inv = scratch + 2 * ch;
    for (uint64_t k = 0; k < ch; ++k) {
        const QParams p = make_params(lo[k], hi[k], bits);
        store_le<float>(sc + 4 * k, p.scale);
        sc[4 * np + k] = static_cast<uint8_t>(p.zp);
        lo[k] = p.scale;  // reuse scratch: scale and zero point per channel
        hi[k] = static_cast<float>(p.zp);
        inv[k] = p.inv;
    }
    if (lanes) return quant_rows(ops, x, outer, ch, inv, sc + 4 * np, bits, payload), kOk;
    for (uint64_t o = 0; o < outer; ++o)
        for (uint64_t k = 0; k < ch; ++k) {
            QParams q;
            q.scale = lo[k], q.inv = inv[k], q.zp = static_cast<int32_t>(hi[k]);
            q.lo = -hi[k], q.hi = static_cast<float>((1 << bits) - 1) - hi[k];
            const uint64_t e0 = (o * ch + k) * inner;
            quant_run(ops, x + e0, inner, e0, q, bits, payload);
        }
    return kOk;
}

int decode_payload(Isa isa, const TensorHeader& h, const uint8_t* payload, size_t payload_len,
                   void* outv, size_t out_len) {
    if (payload_len != h.raw_len) return kOutOfBounds;
    const bool f16_out = h.codec == Codec::Raw && h.dtype == DType::F16;
    if (out_len != h.numel * (f16_out ? 2 : 4)) return kOutOfBounds;
    const CodecOps& ops = codec_ops(isa);
    float* out = static_cast<float*>(outv);
    switch (h.codec) {
        case Codec::Raw: if (payload_len) std::memcpy(outv, payload, payload_len); return kOk;
        case Codec::F16: ops.f16_to_f32(payload, h.numel, out); return kOk;
        case Codec::BF16: ops.bf16_to_f32(payload, h.numel, out); return kOk;
        default: break;
    }
    const int bits = codec_bits(h.codec);
    uint64_t outer = 1, ch = 1, inner = h.numel;
    if (h.per_channel) split_shape(h.ndim, h.dims, h.axis, &outer, &ch, &inner);
    if (h.per_channel && inner == 1)
        return dequant_rows(ops, payload, outer, ch, h.scales, h.zps, bits, out), kOk;
    for (uint64_t o = 0; o < outer; ++o)
        for (uint64_t k = 0; k < ch; ++k) {
            const uint64_t e0 = (o * ch + k) * inner;
            dequant_run(ops, payload, inner, e0, load_le<float>(h.scales + 4 * k), h.zps[k], bits, out + e0);
        }
    return kOk;
}

}  // namespace edgeinf
