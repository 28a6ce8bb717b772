// Tensor codec kernels: self-describing encoded tensors (raw, fp16, bf16, affine int8/4/2,
// per tensor or per channel, bit-packed) and the legacy int8 quantize pair.
// Plain functions over pointers and sizes; no allocation, no Python. Each returns 0 on
// success or a negative status (below) so bindings can raise clearly.
//
// Buffer layout (all integers little-endian; docs/codec.md has the same table):
//   off  size  field
//     0     4  magic "EITC"
//     4     1  version (kFormatVersion = 1)
//     5     1  codec: 0 raw, 1 fp16, 2 bf16, 3 int8, 4 int4, 5 int2
//     6     1  flags: bit 0 per-channel; bits 1-2 lossless stage (0 none, 1 lz4, 2 zstd);
//              bit 3 byte-shuffled planes (raw/fp16/bf16 with a stage only); bit 4 (with bit 3)
//              each plane that went through the stage bit-transposed before it ("bshuf"); other bits 0
//     7     1  dtype of the original tensor: 1 float32, 2 float16
//     8     1  ndim (0..8)
//     9     1  axis of the per-channel parameters (0..ndim-1), 0xFF when per-tensor
//    10     2  reserved, 0
//    12     4  nparams: 0 (raw/fp16/bf16), 1 (per-tensor) or shape[axis] (per-channel)
//    16     8  raw_len: payload bytes before the lossless stage
//    24     8  stored_len: payload bytes in this buffer (== raw_len without a stage)
//    32  8*nd  dims, uint64 each
//     .  4*np  scales, float32 (finite, > 0)
//     .  1*np  zero points, uint8 (0..2^bits-1)
//     .     .  zero padding up to a multiple of 8 bytes: header_len
//  header_len  stored_len  payload; the buffer ends exactly here
// Quantized value: q = clamp(rint(x / scale), -zp, qmax - zp) + zp (round half to even,
// NaN -> 0), x' = (q - zp) * scale. Packed little-endian within a byte: element i of a
// group goes to bits [i*bits, (i+1)*bits); the tensor is packed in C order as one stream.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu.h"

namespace edgeinf {

enum KernelStatus : int {
    kOk = 0,
    kBadArgument = -1,   // a size, scale or bit width outside what the kernel accepts
    kOutOfBounds = -2,   // an index or length would leave the buffer
    kCorrupt = -3,       // an encoded buffer is malformed (message says how)
    kOverLimit = -4,     // an encoded buffer asks for more than the configured limits
    kNonFinite = -5,     // a quantized codec was given NaN or +-inf (refused, never zeroed)
};

// q = clamp(round(x / scale) + zero_point, -128, 127), round half away from zero.
int quantize_int8_generic(const float* x, size_t n, float scale, int32_t zero_point,
                          int8_t* out, size_t out_len);
// x = (q - zero_point) * scale
int dequantize_int8_generic(const int8_t* q, size_t n, float scale, int32_t zero_point,
                            float* out, size_t out_len);

// ---- encoded tensors ----------------------------------------------------------------
constexpr uint8_t kFormatVersion = 1;
constexpr size_t kFixedHeader = 32;
constexpr int kMaxNdim = 8;
enum class Codec : uint8_t { Raw = 0, F16 = 1, BF16 = 2, Int8 = 3, Int4 = 4, Int2 = 5 };
enum class DType : uint8_t { F32 = 1, F16 = 2 };
enum : uint8_t { kFlagPerChannel = 1, kStageShift = 1, kStageMask = 6, kFlagShuffle = 8, kFlagBitPlanes = 16 };

struct CodecLimits {
    uint64_t max_elements;
    uint32_t max_ndim;
    uint64_t max_bytes;  // payload bytes before the lossless stage
};

struct TensorHeader {
    Codec codec;
    DType dtype;
    bool per_channel;
    int stage;            // 0 none, 1 lz4, 2 zstd
    bool shuffle;         // payload stored as byte planes (each through the stage)
    bool bitplanes;       // with shuffle: each compressed plane bit-transposed first (Python undoes it)
    int ndim;
    int axis;             // -1 when per-tensor
    uint64_t dims[kMaxNdim];
    uint64_t numel;
    uint32_t nparams;
    uint64_t raw_len, stored_len;
    size_t header_len;
    const uint8_t* scales;  // nparams float32, unaligned
    const uint8_t* zps;     // nparams uint8
};

int codec_bits(Codec c);  // 32, 16, 16, 8, 4, 2
// Payload bytes of numel elements (before the lossless stage).
uint64_t codec_payload_len(Codec c, DType dtype, uint64_t numel);
size_t codec_header_len(int ndim, uint32_t nparams);

// Bytes per element of the payload a shuffle stage splits into planes (4 raw float32,
// 2 raw float16 / fp16 / bf16).
int shuffle_elem_size(const TensorHeader& h);

// Validates everything in the header against len and limits; on failure writes a message
// to err (errlen bytes). With payload_len_override (!= UINT64_MAX) the payload is given
// separately (after the lossless stage) and must be raw_len bytes.
int parse_header(const uint8_t* buf, size_t len, const CodecLimits& limits, TensorHeader* h,
                 char* err, size_t errlen);

// Writes header + payload for x (shape dims[0..ndim), contiguous) into out (out_len from
// encoded_len). scratch holds encode_scratch_floats(...) floats. Quantized codecs return
// kNonFinite (and leave out unspecified) when x holds NaN or +-inf.
size_t encoded_len(Codec c, DType dtype, bool per_channel, int ndim, const uint64_t* dims,
                   int axis);
size_t encode_scratch_floats(bool per_channel, int ndim, const uint64_t* dims, int axis);
// The header encode_tensor writes (scales and zero points left zero: the quantizers fill
// them), its payload lengths those of the whole buffer; returns its length
// (codec_header_len). For raw, the payload is the tensor's own bytes.
size_t write_header(DType dtype, Codec c, bool per_channel, int ndim, const uint64_t* dims, int axis,
                    uint8_t* out);
int encode_tensor(Isa isa, const void* x, DType dtype, Codec c, bool per_channel, int ndim,
                  const uint64_t* dims, int axis, uint8_t* out, size_t out_len, float* scratch);
// Decodes the payload (raw_len bytes, lossless stage already undone) described by h into
// out: float32, or float16 when h.dtype is F16 and the codec is raw. out_len in bytes.
int decode_payload(Isa isa, const TensorHeader& h, const uint8_t* payload, size_t payload_len,
                   void* out, size_t out_len);

// ---- per-ISA primitives (arch/*) ----------------------------------------------------
struct CodecOps {
    // lo/hi updated in place; NaN ignored. Returns false if any x[i] is NaN or +-inf.
    bool (*minmax)(const float* x, size_t n, float* lo, float* hi);
    // codes[i] = clamp(rint(x[i] * inv_scale), lo, hi) + zp, NaN -> lo + zp
    void (*quantize)(const float* x, size_t n, float inv_scale, float lo, float hi, int32_t zp,
                     uint8_t* codes);
    // out[i] = float(codes[i] - zp) * scale
    void (*dequantize)(const uint8_t* codes, size_t n, int32_t zp, float scale, float* out);
    // quantize + bit-pack (bits 4 or 2) n values into dst, the first at a byte boundary
    void (*quantize_packed)(const float* x, size_t n, int bits, float inv_scale, float lo,
                            float hi, int32_t zp, uint8_t* dst);
    // unpack (bits 4 or 2) + dequantize n codes, the first at a byte boundary of src
    void (*dequantize_packed)(const uint8_t* src, size_t n, int bits, int32_t zp, float scale,
                              float* out);
    void (*f32_to_f16)(const float* x, size_t n, uint8_t* out);   // out unaligned
    void (*f16_to_f32)(const uint8_t* in, size_t n, float* out);  // in unaligned
    void (*f32_to_bf16)(const float* x, size_t n, uint8_t* out);
    void (*bf16_to_f32)(const uint8_t* in, size_t n, float* out);
    // Channel-last (per-lane) forms for per-channel codecs whose channels are the innermost
    // axis: lane i of a row has its own parameters. lo[i]/hi[i] as minmax (returns false on
    // NaN/inf); codes[i] = clamp(rint(x[i] * inv[i]), -zp[i], qmax - zp[i]) + zp[i];
    // out[i] = float(codes[i] - zp[i]) * scale[i], scale read unaligned (header bytes).
    bool (*minmax_lanes)(const float* x, size_t n, float* lo, float* hi);
    void (*quantize_lanes)(const float* x, size_t n, const float* inv, const uint8_t* zp, int qmax,
                           uint8_t* codes);
    void (*dequantize_lanes)(const uint8_t* codes, size_t n, const uint8_t* zp, const uint8_t* scale,
                             float* out);
};
extern const CodecOps kCodecGeneric;
// The table for isa, or the generic one when that ISA is not compiled in (arch fallback).
const CodecOps& codec_ops(Isa isa);

// Outputs of at least this many bytes are written with non-temporal (streaming) stores by
// the x86 decoders: measured on a Zen 4 EPYC, streaming halves the time of a 32 MB decode
// and doubles that of a 1.2 MB one (which stays in cache for its reader).
constexpr size_t kStreamBytes = size_t(16) << 20;

}  // namespace edgeinf
