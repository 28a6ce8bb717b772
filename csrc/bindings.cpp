// The only file that knows about Python. Each binding checks dtype, contiguity and sizes,
// takes raw pointers, then releases the GIL in a sub-scope that makes no Python calls
// (pybind11 #4748: no call_guard with array_t arguments).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "codec.h"
#include "confidence.h"
#include "cpu.h"
#include "lossless.h"
#include "preprocess.h"
#include "shuffle.h"
#include "wire.h"

namespace py = pybind11;
using namespace edgeinf;

namespace {

struct FormatError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct NonFiniteError : std::domain_error {
    using std::domain_error::domain_error;
};

Isa g_best = Isa::Generic;  // chosen once at import

void check_status(int status, const char* what) {
    if (status == kOk) return;
    if (status == kBadArgument)
        throw std::invalid_argument(std::string(what) + ": invalid argument (scale must be finite and > 0, zero_point in [-128, 127])");
    if (status == kOutOfBounds)
        throw std::out_of_range(std::string(what) + ": output buffer too small");
    if (status == kNonFinite)
        throw NonFiniteError(std::string(what) + ": quantized codecs need finite values (x holds NaN or inf)");
    throw std::runtime_error(std::string(what) + ": kernel error " + std::to_string(status));
}

Isa pick_isa(const std::string& name) {
    if (name.empty()) return g_best;
    std::string avail;
    for (Isa i : kAllIsas) {
        if (!isa_runs(i)) continue;
        if (name == isa_name(i)) return i;
        avail += (avail.empty() ? "" : ", ") + std::string(isa_name(i));
    }
    throw std::invalid_argument("isa '" + name + "' is not available here; available: " + avail);
}

// Same element type in native byte order. NOTE: not dtype identity (`is`): equal dtype
// objects such as np.dtype("<f4") are distinct objects.
bool same_dtype(const py::dtype& a, const py::dtype& b) {
    return a.num() == b.num() && a.byteorder() != '>' && a.byteorder() != '!';
}

template <typename T>
const T* c_contig_ptr(const py::array& a, const char* name) {
    if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + " must be C-contiguous (use np.ascontiguousarray)");
    return static_cast<const T*>(a.data());
}

py::array_t<int8_t> quantize_int8(py::array_t<float, py::array::forcecast> x, float scale,
                                  int zero_point) {
    const float* src = c_contig_ptr<float>(x, "x");
    py::array_t<int8_t> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    int8_t* dst = out.mutable_data();
    size_t n = static_cast<size_t>(x.size());
    int st;
    {
        py::gil_scoped_release nogil;
        st = quantize_int8_generic(src, n, scale, zero_point, dst, n);
    }
    check_status(st, "quantize_int8");
    return out;
}

py::array_t<float> dequantize_int8(py::array_t<int8_t, py::array::forcecast> q, float scale,
                                   int zero_point) {
    const int8_t* src = c_contig_ptr<int8_t>(q, "q");
    py::array_t<float> out(std::vector<py::ssize_t>(q.shape(), q.shape() + q.ndim()));
    float* dst = out.mutable_data();
    size_t n = static_cast<size_t>(q.size());
    int st;
    {
        py::gil_scoped_release nogil;
        st = dequantize_int8_generic(src, n, scale, zero_point, dst, n);
    }
    check_status(st, "dequantize_int8");
    return out;
}

// ---- codec ----
py::bytes encode_lz4(Isa isa, const void* src, DType dt, Codec c, bool per_channel, int ndim, const uint64_t* dims,
                     int axis, bool shuffle, bool bitplanes, size_t sample);

py::bytes encode(const py::array& x, int codec, bool per_channel, int axis, int dtype_tag,
                 const std::string& isa_name_, bool header_only, int stage, bool shuffle, bool bitplanes,
                 size_t sample) {
    const Isa isa = pick_isa(isa_name_);
    const bool f16 = same_dtype(x.dtype(), py::dtype("float16"));
    if (!f16 && !same_dtype(x.dtype(), py::dtype::of<float>()))
        throw std::invalid_argument("x must be float32 or float16, got " + std::string(py::str(x.dtype())));
    if (codec < 0 || codec > static_cast<int>(Codec::Int2) || (dtype_tag != 1 && dtype_tag != 2))
        throw std::invalid_argument("unknown codec or dtype id");
    const Codec c = static_cast<Codec>(codec);
    if (f16 != (dtype_tag == 2 && (c == Codec::Raw || c == Codec::F16)))
        throw std::invalid_argument("x dtype does not match the codec (float16 only for raw/fp16 of float16)");
    const void* src = c_contig_ptr<uint8_t>(x, "x");
    if (x.ndim() > kMaxNdim) throw std::invalid_argument("x has more than 8 dims");
    uint64_t dims[kMaxNdim];
    for (int i = 0; i < x.ndim(); ++i) dims[i] = static_cast<uint64_t>(x.shape(i));
    if (per_channel && (axis < 0 || axis >= x.ndim())) throw std::invalid_argument("axis out of range");
    const DType dt = static_cast<DType>(dtype_tag);
    if (stage != 0 && stage != 1) throw std::invalid_argument("stage must be 0 (none) or 1 (lz4) here");
    if (shuffle && (stage != 1 || (c != Codec::Raw && c != Codec::F16 && c != Codec::BF16)))
        throw std::invalid_argument("shuffle is for raw/fp16/bf16 with the lz4 stage");
    if (bitplanes && !shuffle) throw std::invalid_argument("bitplanes needs shuffle");
    if (sample == 0 || sample > 65535) throw std::invalid_argument("sample must be 1..65535 bytes");
    if (stage == 1) {
        if (header_only) throw std::invalid_argument("header_only has no stage");
        return encode_lz4(isa, src, dt, c, per_channel, static_cast<int>(x.ndim()), dims, axis, shuffle, bitplanes,
                          sample);
    }
    if (header_only) {  // the shuffle stages read a raw payload from x itself: no copy of it here
        if (c != Codec::Raw || per_channel) throw std::invalid_argument("header_only is for the raw codec");
        uint8_t head[kFixedHeader + 8 * kMaxNdim];
        const size_t hl = write_header(dt, c, false, static_cast<int>(x.ndim()), dims, -1, head);
        return py::bytes(reinterpret_cast<const char*>(head), hl);
    }
    const size_t n = encoded_len(c, dt, per_channel, static_cast<int>(x.ndim()), dims, axis);
    std::vector<float> scratch(encode_scratch_floats(per_channel, static_cast<int>(x.ndim()), dims, axis));
    PyObject* obj = PyBytes_FromStringAndSize(nullptr, static_cast<py::ssize_t>(n));
    if (!obj) throw py::error_already_set();
    py::bytes out = py::reinterpret_steal<py::bytes>(obj);
    uint8_t* dst = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(obj));
    int st;
    {
        py::gil_scoped_release nogil;
        st = encode_tensor(isa, src, dt, c, per_channel, static_cast<int>(x.ndim()), dims, axis, dst, n, scratch.data());
    }
    check_status(st, "encode");
    return out;
}

// A staged buffer: head (hl bytes, byte 6 OR-ed with flags) then what pack(dst) writes there
// (at most bound bytes, GIL released), its length stored at offset 24; the bytes object is
// allocated at the bound and shrunk in place (realloc), so the output is never copied again.
template <class Pack>
py::bytes staged_bytes(const uint8_t* head, size_t hl, uint8_t flags, size_t bound, Pack pack) {
    PyObject* obj = PyBytes_FromStringAndSize(nullptr, static_cast<py::ssize_t>(hl + bound));
    if (!obj) throw py::error_already_set();
    uint8_t* dst = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(obj));
    size_t packed;
    {
        py::gil_scoped_release nogil;
        std::memcpy(dst, head, hl);
        dst[6] |= flags;
        packed = pack(dst + hl);
        for (int i = 0; i < 8; ++i) dst[24 + i] = static_cast<uint8_t>(static_cast<uint64_t>(packed) >> (8 * i));
    }
    if (!packed) {
        Py_DECREF(obj);
        throw std::runtime_error("lz4 failed");  // cannot happen with a bound-sized output
    }
    if (_PyBytes_Resize(&obj, static_cast<py::ssize_t>(hl + packed)) < 0) throw py::error_already_set();
    return py::reinterpret_steal<py::bytes>(obj);
}

// encode with the lz4 stage in the same call (codec.encode's common case): header, payload
// (x's own bytes for raw, else quantized into a scratch buffer) and lz4 (one block, or the
// shuffled planes) straight into the result. The bytes of encode + codec._compress.
py::bytes encode_lz4(Isa isa, const void* src, DType dt, Codec c, bool per_channel, int ndim, const uint64_t* dims,
                     int axis, bool shuffle, bool bitplanes, size_t sample) {
    uint64_t numel = 1;
    for (int i = 0; i < ndim; ++i) numel *= dims[i];
    const size_t plen = codec_payload_len(c, dt, numel);
    const size_t n = encoded_len(c, dt, per_channel, ndim, dims, axis);
    const size_t hl = n - plen;
    std::unique_ptr<uint8_t[]> staged;  // header + payload of a non-raw codec
    uint8_t head[kFixedHeader + 8 * kMaxNdim];
    const uint8_t* hsrc = head;
    const uint8_t* payload = static_cast<const uint8_t*>(src);
    if (c == Codec::Raw) {
        write_header(dt, c, false, ndim, dims, -1, head);
    } else {
        std::vector<float> scratch(encode_scratch_floats(per_channel, ndim, dims, axis));
        staged.reset(new uint8_t[n]);
        int st;
        {
            py::gil_scoped_release nogil;
            st = encode_tensor(isa, src, dt, c, per_channel, ndim, dims, axis, staged.get(), n, scratch.data());
        }
        check_status(st, "encode");
        hsrc = staged.get();
        payload = staged.get() + hl;
    }
    const int es = c == Codec::Raw && dt == DType::F32 ? 4 : 2;
    if (!shuffle && plen && !lz4_block_bound(plen)) throw std::invalid_argument("x is larger than one lz4 block takes");
    const uint8_t flags = static_cast<uint8_t>((1 << kStageShift) | (shuffle ? kFlagShuffle : 0) |
                                               (bitplanes ? kFlagBitPlanes : 0));
    if (!shuffle)
        return staged_bytes(hsrc, hl, flags, lz4_block_bound(plen) + 1,
                            [&](uint8_t* out) { return lz4_block_compress(payload, plen, out); });
    return staged_bytes(hsrc, hl, flags, lz4_pack_bound(plen, es), [&](uint8_t* out) {
        std::unique_ptr<uint8_t[]> scratch(new uint8_t[plen + plen / es]);  // uninitialized: see lz4_shuffled_py
        return lz4_pack_planes(isa, payload, plen, es, bitplanes, sample, scratch.get(), out);
    });
}

struct View {
    const uint8_t* ptr;
    size_t len;
};

View byte_view(const py::buffer_info& info, const char* name) {
    if (info.ndim > 1 || (info.ndim == 1 && info.strides[0] != info.itemsize))
        throw std::invalid_argument(std::string(name) + " must be a contiguous bytes-like object");
    return {static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size * info.itemsize)};
}

TensorHeader parse(const View& v, uint64_t max_elements, uint32_t max_ndim, uint64_t max_bytes) {
    TensorHeader h{};
    char err[256] = {0};
    const CodecLimits lim{max_elements, max_ndim, max_bytes};
    if (parse_header(v.ptr, v.len, lim, &h, err, sizeof err) != kOk) throw FormatError(err);
    return h;
}

py::tuple header_info(const py::buffer& buf, uint64_t max_elements, uint32_t max_ndim,
                      uint64_t max_bytes) {
    const py::buffer_info info = buf.request();
    const TensorHeader h = parse(byte_view(info, "buf"), max_elements, max_ndim, max_bytes);
    py::tuple shape(h.ndim);
    for (int i = 0; i < h.ndim; ++i) shape[i] = py::int_(h.dims[i]);
    return py::make_tuple(static_cast<int>(h.codec), h.stage, static_cast<int>(h.dtype), shape,
                          h.header_len, h.raw_len, h.per_channel, h.axis, h.shuffle, h.bitplanes);
}

py::array decode(const py::buffer& buf, const py::object& out_obj, uint64_t max_elements,
                 uint32_t max_ndim, uint64_t max_bytes, const py::object& payload_obj,
                 const std::string& isa_name_) {
    const Isa isa = pick_isa(isa_name_);
    const py::buffer_info info = buf.request();
    const View v = byte_view(info, "buf");
    const TensorHeader h = parse(v, max_elements, max_ndim, max_bytes);
    View payload{v.ptr + h.header_len, v.len - h.header_len};
    const int es = shuffle_elem_size(h);
    const uint8_t* planes[4] = {};
    std::vector<py::buffer_info> pinfo;  // holds the payload's buffers until the kernel is done
    std::unique_ptr<uint8_t[]> scratch;  // inflated lz4 planes or payload
    View lz4_block{nullptr, 0};          // a raw tensor's lz4 block, inflated into out
    if (py::isinstance<py::list>(payload_obj) || py::isinstance<py::tuple>(payload_obj)) {
        // a shuffled payload's planes, each where the lossless stage left it (no join)
        const py::sequence seq = payload_obj.cast<py::sequence>();
        if (!h.shuffle || seq.size() != static_cast<size_t>(es))
            throw FormatError("payload planes: " + std::to_string(seq.size()) + " given, the header says " +
                              (h.shuffle ? std::to_string(es) : std::string("none (not shuffled)")));
        payload.len = 0;
        for (int b = 0; b < es; ++b) {
            pinfo.push_back(seq[b].cast<py::buffer>().request());
            const View pv = byte_view(pinfo.back(), "payload plane");
            if (pv.len != h.raw_len / es)
                throw FormatError("payload plane holds " + std::to_string(pv.len) + " bytes, header says " +
                                  std::to_string(h.raw_len / es));
            planes[b] = pv.ptr;
            payload.len += pv.len;
        }
    } else if (!payload_obj.is_none()) {
        pinfo.push_back(payload_obj.cast<py::buffer>().request());
        payload = byte_view(pinfo.back(), "payload");
    } else if (h.stage == 1 && h.shuffle) {
        // shuffled lz4: the planes are inflated here, in this one call (docs/codec.md)
        const size_t n = h.raw_len / es;
        scratch.reset(new uint8_t[h.raw_len + (h.bitplanes ? n : 0) + 1]);  // uninitialized: see lz4_shuffled_py
        const char* bad;
        {
            py::gil_scoped_release nogil;
            bad = lz4_unpack_planes(isa, payload.ptr, payload.len, es, n, h.bitplanes, scratch.get(),
                                    scratch.get() + h.raw_len, planes);
        }
        if (bad) throw FormatError(bad);
        payload.len = h.raw_len;
    } else if (h.stage == 1) {
        // one lz4 block: a raw tensor inflates straight into out (below), others into scratch
        lz4_block = payload;
        if (h.codec != Codec::Raw) {
            scratch.reset(new uint8_t[h.raw_len + 1]);  // uninitialized: inflated in full or refused
            const char* bad;
            {
                py::gil_scoped_release nogil;
                bad = lz4_block_decompress(lz4_block.ptr, lz4_block.len, scratch.get(), h.raw_len);
            }
            if (bad) throw FormatError(bad);
            payload = View{scratch.get(), static_cast<size_t>(h.raw_len)};
            lz4_block.ptr = nullptr;
        }
        payload.len = h.raw_len;
    } else if (h.stage != 0) {
        throw FormatError("buffer has a lossless stage; decompress the payload first");
    }
    if (payload.len != h.raw_len)
        throw FormatError("payload holds " + std::to_string(payload.len) + " bytes, header says " + std::to_string(h.raw_len));
    if (h.shuffle && !planes[0]) plane_ptrs(payload.ptr, payload.len / es, es, planes);
    const bool f16 = h.codec == Codec::Raw && h.dtype == DType::F16;
    const py::dtype want = f16 ? py::dtype("float16") : py::dtype::of<float>();
    py::array out;
    if (out_obj.is_none()) {
        std::vector<py::ssize_t> shape(h.dims, h.dims + h.ndim);
        out = py::array(want, shape);
    } else {
        out = out_obj.cast<py::array>();
        if (!same_dtype(out.dtype(), want)) throw std::invalid_argument("out must have dtype " + std::string(py::str(want)));
        if (!(out.flags() & py::array::c_style) || !out.writeable())
            throw std::invalid_argument("out must be a writeable C-contiguous array");
        bool same = out.ndim() == h.ndim;
        for (int i = 0; same && i < h.ndim; ++i) same = static_cast<uint64_t>(out.shape(i)) == h.dims[i];
        if (!same) throw FormatError("out shape does not match the encoded tensor's shape");
    }
    void* dst = out.mutable_data();
    const size_t out_len = static_cast<size_t>(out.nbytes());
    int st;
    // NOTE: planes go straight into out for raw; fp16/bf16 are unshuffled to a staging copy
    std::vector<uint8_t> flat(h.shuffle && h.codec != Codec::Raw ? payload.len : 0);
    if (lz4_block.ptr) {
        if (out_len != h.raw_len) throw FormatError("out does not hold the encoded tensor's bytes");
        const char* bad;
        {
            py::gil_scoped_release nogil;
            bad = lz4_block_decompress(lz4_block.ptr, lz4_block.len, static_cast<uint8_t*>(dst), out_len);
        }
        if (bad) throw FormatError(bad);
        return out;
    }
    {
        py::gil_scoped_release nogil;
        const ShuffleOps& sh = shuffle_ops(isa);
        if (h.shuffle && h.codec == Codec::Raw && out_len == payload.len) {
            sh.unshuffle(planes, payload.len / es, es, static_cast<uint8_t*>(dst));
            st = kOk;
        } else if (h.shuffle) {
            sh.unshuffle(planes, payload.len / es, es, flat.data());
            st = decode_payload(isa, h, flat.data(), flat.size(), dst, out_len);
        } else {
            st = decode_payload(isa, h, payload.ptr, payload.len, dst, out_len);
        }
    }
    check_status(st, "decode");
    return out;
}

// An uninitialized bytes object of n bytes for a kernel to fill (no copy back into Python).
py::bytes new_bytes(size_t n, uint8_t** dst) {
    PyObject* obj = PyBytes_FromStringAndSize(nullptr, static_cast<py::ssize_t>(n));
    if (!obj) throw py::error_already_set();
    *dst = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(obj));
    return py::reinterpret_steal<py::bytes>(obj);
}

// Byte planes of a payload of size-byte elements (the shuffle stage's first step).
py::bytes shuffle_py(const py::buffer& buf, int size, bool inverse, const std::string& isa_name_) {
    const Isa isa = pick_isa(isa_name_);
    const py::buffer_info info = buf.request();
    const View v = byte_view(info, "buf");
    if ((size != 2 && size != 4) || v.len % size)
        throw std::invalid_argument("shuffle: element size must be 2 or 4 and divide the buffer length");
    uint8_t* dst;
    py::bytes out = new_bytes(v.len, &dst);
    {
        py::gil_scoped_release nogil;
        const ShuffleOps& sh = shuffle_ops(isa);
        if (inverse) {
            const uint8_t* planes[4];
            plane_ptrs(v.ptr, v.len / size, size, planes);
            sh.unshuffle(planes, v.len / size, size, dst);
        } else {
            sh.shuffle(v.ptr, v.len / size, size, dst);
        }
    }
    return out;
}

// Bit planes of a byte buffer (the "bshuf" stages; layout in shuffle.h).
py::bytes bitplanes_py(const py::buffer& buf, bool inverse, const std::string& isa_name_) {
    const Isa isa = pick_isa(isa_name_);
    const py::buffer_info info = buf.request();
    const View v = byte_view(info, "buf");
    uint8_t* dst;
    py::bytes out = new_bytes(v.len, &dst);
    {
        py::gil_scoped_release nogil;
        const ShuffleOps& sh = shuffle_ops(isa);
        (inverse ? sh.unbitplanes : sh.bitplanes)(v.ptr, v.len, dst);
    }
    return out;
}

// The shuffle stage's planes, ready for lz4 (one call instead of a Python loop): byte planes
// of size-byte elements; each plane of at least 4 * sample bytes is judged on its first
// `sample` bytes (has_repeats), and those judged noise are left out of the stage (bit i of the
// returned mask clear). With bitplanes, every plane kept for the stage is bit-transposed in place.
py::tuple lz4_planes_py(const py::buffer& buf, int size, bool bitplanes, size_t sample, const std::string& isa_name_) {
    const Isa isa = pick_isa(isa_name_);
    const py::buffer_info info = buf.request();
    const View v = byte_view(info, "buf");
    if ((size != 2 && size != 4) || v.len % size)
        throw std::invalid_argument("lz4_planes: element size must be 2 or 4 and divide the buffer length");
    if (sample == 0 || sample > 65535) throw std::invalid_argument("lz4_planes: sample must be 1..65535 bytes");
    uint8_t* dst;
    py::bytes out = new_bytes(v.len, &dst);
    unsigned mask = 0;
    {
        py::gil_scoped_release nogil;
        const ShuffleOps& sh = shuffle_ops(isa);
        const size_t n = v.len / size;
        sh.shuffle(v.ptr, n, size, dst);
        std::vector<uint8_t> tmp(bitplanes ? n : 0);
        for (int k = 0; k < size; ++k) {
            uint8_t* plane = dst + k * n;
            if (n >= 4 * sample && !has_repeats(plane, sample)) continue;
            mask |= 1u << k;
            if (bitplanes && n) {
                sh.bitplanes(plane, n, tmp.data());
                std::memcpy(plane, tmp.data(), n);
            }
        }
    }
    return py::make_tuple(out, mask);
}

// The shuffled lz4 stage of encode in one call: head (the tensor header with its stage and
// shuffle flags set, >= 32 bytes) followed by lz4_pack_planes' output, the stored length
// written into the header (offset 24). Same bytes as the Python reference in codec.py.
py::bytes lz4_shuffled_py(const py::buffer& head_buf, const py::buffer& buf, int size, bool bitplanes, size_t sample,
                          const std::string& isa_name_) {
    const Isa isa = pick_isa(isa_name_);
    const py::buffer_info hinfo = head_buf.request(), info = buf.request();
    const View hv = byte_view(hinfo, "head"), v = byte_view(info, "buf");
    if ((size != 2 && size != 4) || v.len % size)
        throw std::invalid_argument("lz4_shuffled: element size must be 2 or 4 and divide the buffer length");
    if (sample == 0 || sample > 65535) throw std::invalid_argument("lz4_shuffled: sample must be 1..65535 bytes");
    if (hv.len < 32) throw std::invalid_argument("lz4_shuffled: head must hold a tensor header (>= 32 bytes)");
    return staged_bytes(hv.ptr, hv.len, 0, lz4_pack_bound(v.len, size), [&](uint8_t* out) {
        // NOTE: not a std::vector: zero-filling 157 KB of scratch for the 125 KB activation
        // cost ~5 us of a 35 us encode, and every byte of it is written before it is read
        std::unique_ptr<uint8_t[]> scratch(new uint8_t[v.len + v.len / size]);
        return lz4_pack_planes(isa, v.ptr, v.len, size, bitplanes, sample, scratch.get(), out);
    });
}

// The plain lz4 stage of encode in one call: head (the tensor header with its stage flag
// set, >= 32 bytes) followed by one lz4 block of buf, its length written into the header
// (offset 24), compressed straight into the result (no join). python-lz4's bytes.
py::bytes lz4_block_py(const py::buffer& head_buf, const py::buffer& buf) {
    const py::buffer_info hinfo = head_buf.request(), info = buf.request();
    const View hv = byte_view(hinfo, "head"), v = byte_view(info, "buf");
    if (hv.len < 32) throw std::invalid_argument("lz4_block: head must hold a tensor header (>= 32 bytes)");
    const size_t bound = lz4_block_bound(v.len);
    if (v.len && !bound) throw std::invalid_argument("lz4_block: buf is larger than one lz4 block takes");
    return staged_bytes(hv.ptr, hv.len, 0, bound + 1, [&](uint8_t* out) { return lz4_block_compress(v.ptr, v.len, out); });
}

// ---- preprocess ----
void preprocess_py(const py::array& img, py::array out, py::tuple roi, bool nchw, bool swap_rb,
                   std::vector<float> scale, std::vector<float> bias, std::vector<float> pad,
                   const std::string& isa_name_) {
    const Isa isa = pick_isa(isa_name_);
    if (!same_dtype(img.dtype(), py::dtype::of<uint8_t>()) || img.ndim() != 3 || img.shape(2) != 3)
        throw std::invalid_argument("img must be a uint8 array of shape (H, W, 3)");
    if (img.strides(2) != 1 || img.strides(1) != 3 || img.strides(0) < 3 * img.shape(1))
        throw std::invalid_argument("img pixels must be packed (strides (>=3W, 3, 1)); rows may be strided");
    if (scale.size() != 3 || bias.size() != 3 || pad.size() != 3 || roi.size() != 4)
        throw std::invalid_argument("scale, bias and pad need 3 values, roi 4");
    OutType ot;
    if (same_dtype(out.dtype(), py::dtype::of<float>())) ot = OutType::F32;
    else if (same_dtype(out.dtype(), py::dtype::of<uint8_t>())) ot = OutType::U8;
    else if (same_dtype(out.dtype(), py::dtype::of<int8_t>())) ot = OutType::I8;
    else throw std::invalid_argument("out dtype must be float32, uint8 or int8");
    if (!(out.flags() & py::array::c_style) || !out.writeable() || out.ndim() != 4 || out.shape(0) != 1)
        throw std::invalid_argument("out must be a writeable C-contiguous (1, C, H, W) or (1, H, W, C) array");
    PreprocessArgs a{};
    a.src = static_cast<const uint8_t*>(img.data());
    a.src_h = static_cast<int>(img.shape(0)), a.src_w = static_cast<int>(img.shape(1));
    a.src_stride = static_cast<size_t>(img.strides(0));
    a.nchw = nchw;
    a.out_h = static_cast<int>(out.shape(nchw ? 2 : 1)), a.out_w = static_cast<int>(out.shape(nchw ? 3 : 2));
    if (out.shape(nchw ? 1 : 3) != 3) throw std::invalid_argument("out must have 3 channels");
    a.roi_y = roi[0].cast<int>(), a.roi_x = roi[1].cast<int>();
    a.roi_h = roi[2].cast<int>(), a.roi_w = roi[3].cast<int>();
    a.out_type = ot, a.swap_rb = swap_rb;
    for (int c = 0; c < 3; ++c) a.scale[c] = scale[c], a.bias[c] = bias[c], a.pad[c] = pad[c];
    std::vector<uint8_t> ws(preprocess_workspace_bytes(a));
    void* dst = out.mutable_data();
    int st;
    {
        py::gil_scoped_release nogil;
        st = preprocess(isa, a, dst, ws.data(), ws.size());
    }
    if (st != 0) throw std::invalid_argument("preprocess: roi outside the output or empty image");
}

// ---- confidence ----
py::tuple confidence_py(const py::array& logits, const std::string& isa_name_) {
    const Isa isa = pick_isa(isa_name_);
    if (!same_dtype(logits.dtype(), py::dtype::of<float>()) || logits.ndim() != 2)
        throw std::invalid_argument("logits must be a float32 array of shape (N, C)");
    const size_t rows = static_cast<size_t>(logits.shape(0)), cols = static_cast<size_t>(logits.shape(1));
    if (cols == 0) throw std::invalid_argument("logits need at least one class");
    if (logits.strides(1) != 4 || logits.strides(0) < 0 || logits.strides(0) % 4 ||
        (rows > 1 && static_cast<size_t>(logits.strides(0)) < 4 * cols))
        throw std::invalid_argument("logits rows must be contiguous (row stride may differ)");
    const size_t stride = rows > 1 ? static_cast<size_t>(logits.strides(0)) / 4 : cols;
    py::array_t<float> p(rows), m(rows), e(rows);
    const float* src = static_cast<const float*>(logits.data());
    float *pp = p.mutable_data(), *mp = m.mutable_data(), *ep = e.mutable_data();
    {
        py::gil_scoped_release nogil;
        confidence(isa, src, rows, cols, stride, pp, mp, ep);
    }
    return py::make_tuple(p, m, e);
}

// Tests and `edgeinf bench kernels --isa` run every path through the public API.
std::string set_default_isa(const std::string& name) {
    const Isa isa = name.empty() ? best_isa() : pick_isa(name);
    const std::string prev = isa_name(g_best);
    g_best = isa;
    return prev;
}

py::dict build_info() {
    py::dict d;
    d["version"] = EDGEINF_VERSION_INFO;
    d["flags"] = EDGEINF_BUILD_FLAGS;
#if defined(__clang__)
    d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    d["compiler"] = std::string("gcc ") + __VERSION__;
#else
    d["compiler"] = "unknown";
#endif
    Isa isa = g_best;
    d["isa"] = isa_name(isa);
    d["simd_width_bits"] = simd_width_bits(isa);
    py::list runs;
    for (Isa i : kAllIsas)
        if (isa_runs(i)) runs.append(isa_name(i));
    d["isas"] = runs;
    return d;
}

}  // namespace

namespace edgeinf {
bool numpy_array_api(NewFromDescr* new_from_descr, SetBaseObject* set_base) {
    try {
        auto& api = py::detail::npy_api::get();
        *new_from_descr = reinterpret_cast<NewFromDescr>(api.PyArray_NewFromDescr_);
        *set_base = reinterpret_cast<SetBaseObject>(api.PyArray_SetBaseObject_);
        return *new_from_descr && *set_base;
    } catch (py::error_already_set& e) {
        e.restore();
        PyErr_Clear();
        return false;
    }
}
}  // namespace edgeinf

PYBIND11_MODULE(_kernels, m) {
    g_best = best_isa();
    m.doc() = "edgeinf native kernels (see csrc/)";
    m.attr("__version__") = EDGEINF_VERSION_INFO;
    py::register_exception<FormatError>(m, "FormatError", PyExc_ValueError);
    py::register_exception<NonFiniteError>(m, "NonFiniteError", PyExc_ValueError);
    m.def("build_info", &build_info, "Compiler, flags and the ISA path chosen at run time.");
    m.def("set_default_isa", &set_default_isa, py::arg("name"),
          "Make name ('' = the best) the path every kernel call without isa= takes; returns the previous one.");
    m.def("quantize_int8", &quantize_int8, py::arg("x"), py::arg("scale"), py::arg("zero_point") = 0,
          "Affine int8 quantization: clamp(round(x / scale) + zero_point, -128, 127).");
    m.def("dequantize_int8", &dequantize_int8, py::arg("q"), py::arg("scale"), py::arg("zero_point") = 0,
          "Inverse of quantize_int8: (q - zero_point) * scale.");
    m.def("encode", &encode, py::arg("x"), py::arg("codec"), py::arg("per_channel"), py::arg("axis"),
          py::arg("dtype"), py::arg("isa") = "", py::arg("header_only") = false, py::arg("stage") = 0,
          py::arg("shuffle") = false, py::arg("bitplanes") = false, py::arg("sample") = 4096,
          "Encoded tensor (header + payload) as bytes; header_only (raw only): the header alone; "
          "stage=1: with the lz4 stage (shuffle, bitplanes: +shuf/+bshuf; sample: bytes a plane is judged on).");
    m.def("header_info", &header_info, py::arg("buf"), py::arg("max_elements"), py::arg("max_ndim"),
          py::arg("max_bytes"),
          "(codec, stage, dtype, shape, header_len, raw_len, per_channel, axis); raises FormatError.");
    m.def("decode", &decode, py::arg("buf"), py::arg("out"), py::arg("max_elements"),
          py::arg("max_ndim"), py::arg("max_bytes"), py::arg("payload") = py::none(),
          py::arg("isa") = "",
          "Decode an encoded tensor; raises FormatError on a bad buffer. payload: the decompressed payload "
          "of a lossless stage, or a shuffled one's planes as a list (each n bytes, anywhere in memory).");
    m.def("shuffle", &shuffle_py, py::arg("buf"), py::arg("size"), py::arg("inverse") = false,
          py::arg("isa") = "", "Byte planes of size-byte elements (inverse=True: back to elements).");
    m.def("lz4_planes", &lz4_planes_py, py::arg("buf"), py::arg("size"), py::arg("bitplanes"), py::arg("sample"),
          py::arg("isa") = "", "Byte planes for the lz4 shuffle stage and the mask of those worth compressing.");
    m.def("lz4_shuffled", &lz4_shuffled_py, py::arg("head"), py::arg("buf"), py::arg("size"), py::arg("bitplanes"),
          py::arg("sample"), py::arg("isa") = "",
          "head + the shuffled lz4 stage of buf (plane lengths, then each plane lz4 or stored), the stored "
          "length written at head offset 24: codec.encode's +shuf+lz4 / +bshuf+lz4 in one call.");
    m.def("lz4_block", &lz4_block_py, py::arg("head"), py::arg("buf"),
          "head + one lz4 block of buf, its length written at head offset 24: codec.encode's plain +lz4 stage.");
    m.def("lz4_version", &lz4_library_version, "The vendored lz4's version number (10904 for 1.9.4).");
    m.def("bitplanes", &bitplanes_py, py::arg("buf"), py::arg("inverse") = false, py::arg("isa") = "",
          "The 8 bit planes of a byte buffer, trailing n % 8 bytes as is (inverse=True: back to bytes).");
    m.def("preprocess", &preprocess_py, py::arg("img"), py::arg("out"), py::arg("roi"),
          py::arg("nchw"), py::arg("swap_rb"), py::arg("scale"), py::arg("bias"), py::arg("pad"),
          py::arg("isa") = "", "Fused resize + normalize + layout into out.");
    m.attr("WIRE_VERSION") = static_cast<int>(kWireVersion);
    if (add_wire_functions(m.ptr()) < 0) throw py::error_already_set();
    m.def("confidence", &confidence_py, py::arg("logits"), py::arg("isa") = "",
          "(max_prob, margin, entropy) per row of float32 logits.");
}
