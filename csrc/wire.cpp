// The wire format's common case in one native call per message (edgeinf/transport/protocol.py
// is the reference and the error path; docs/protocol.md the format).
//
// wire_decode and wire_encode either do exactly what the Python path would do, or return None
// and leave the message to it: anything outside the subset handled here (JSON escapes,
// non-ASCII text, integers past 18 digits, duplicate keys, deep nesting, a check the schema
// table leaves to Python), and every refusal, so that each error keeps its one wording and
// class. NOTE: the Python framing was 30-70 us of every round trip, against 12-28 us allowed
// at 64 KB (docs/benchmarks.md "Framing, fourth round"); these are raw METH_FASTCALL
// functions, not pybind11 ones, whose argument dispatch alone costs about 0.3 us a call.
//
// The schema is not defined here: wire_setup receives protocol._CHECKS' native specs, the
// required keys per kind and the classes to build, once at import.
#include <Python.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "wire.h"

namespace {

using edgeinf::kWireVersion;
constexpr int kHeader = 16;
constexpr int kMaxDepth = 64;
constexpr int kMaxNdim = 8;

// What wire_setup was given (strong references held for the process's lifetime).
struct Setup {
    PyObject* message = nullptr;      // protocol.Message
    PyObject* tensor_meta = nullptr;  // protocol.TensorMeta (a tuple subclass)
    PyObject* kinds = nullptr;        // {int: Kind}
    PyObject* itemsizes = nullptr;    // {dtype name: itemsize}
    PyObject* schema = nullptr;       // {key: native spec tuple}
    PyObject* required = nullptr;     // {int kind: tuple of keys}
    PyObject* tensor_kinds = nullptr; // frozenset of int kinds that may carry tensors
    PyObject* dtypes = nullptr;       // {dtype name: numpy dtype}
    PyObject* ndarray = nullptr;      // numpy.ndarray
    PyObject* canon[16] = {};         // the canonical dtype objects of protocol.DTYPES...
    PyObject* canon_names[16] = {};   // ...and their names
    int ncanon = 0;
    bool pack_ok = false;             // numpy's array layout checked (wire_pack_raw may read it)
    edgeinf::NewFromDescr new_from_descr = nullptr;  // numpy's C API for wire_views (else ndarray())
    edgeinf::SetBaseObject set_base = nullptr;
    PyObject* decode_py = nullptr;    // protocol._decode_py, _encode_py, _pack_raw_py: the fallbacks
    PyObject* encode_py = nullptr;
    PyObject* pack_py = nullptr;
    PyObject* default_limits = nullptr;  // protocol.DEFAULT_LIMITS and its three numbers
    long long dl[3] = {0, 0, 0};
    PyObject* s_tensors = nullptr;    // interned field names
    PyObject* s_codec = nullptr;
    PyObject* s_name = nullptr;
    PyObject* s_dtype = nullptr;
    PyObject* s_shape = nullptr;
    PyObject* s_raw = nullptr;
    PyObject* attr[6] = {};           // Message fields, in __init__ order
    bool ready = false;
} g;

// Native spec codes (protocol._native_spec writes them).
enum Spec : long { kUint = 1, kNum = 2, kStr = 3, kNumbers = 4, kStrList = 5, kList = 6, kCall = 7 };

// -- strings every message repeats: field names, dtype names, "raw" ----------------------
// NOTE: the parser hands out one interned object per known string instead of a new str: no
// allocation, a cached hash, and the schema lookup that follows matches by identity. A
// compact table (256 bytes of slots, 40-byte entries) because the whole decode runs cold
// after every wake: what it touches is most of its cost (docs/benchmarks.md, "Framing").
struct Known {
    PyObject* obj;
    unsigned char len;
    char text[31];
};
constexpr int kKnownMax = 96, kKnownSlots = 128;
Known g_known[kKnownMax];
int g_nknown = 0;
short g_slot[kKnownSlots];  // index + 1 into g_known, 0 empty

inline unsigned known_hash(const char* t, size_t n) {
    return static_cast<unsigned>(n * 31u + static_cast<unsigned char>(t[0]) * 7u +
                                 static_cast<unsigned char>(t[n - 1])) & (kKnownSlots - 1);
}

PyObject* known(const char* t, size_t n) {  // a new reference, or nullptr when not known
    if (n == 0 || n > sizeof(Known::text)) return nullptr;
    for (unsigned h = known_hash(t, n), probes = 0; probes < kKnownSlots; h = (h + 1) & (kKnownSlots - 1), ++probes) {
        const int i = g_slot[h];
        if (!i) return nullptr;
        const Known& k = g_known[i - 1];
        if (k.len == n && std::memcmp(k.text, t, n) == 0) {
            Py_INCREF(k.obj);
            return k.obj;
        }
    }
    return nullptr;
}

// Adds str `s` (ASCII, short) to the table, interned; silently skips anything else.
void add_known(PyObject* s) {
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_ASCII(s) || g_nknown >= kKnownMax) return;
    const Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    const char* t = reinterpret_cast<const char*>(PyUnicode_1BYTE_DATA(s));
    if (n == 0 || n > static_cast<Py_ssize_t>(sizeof(Known::text))) return;
    PyObject* have = known(t, static_cast<size_t>(n));
    if (have) {
        Py_DECREF(have);
        return;
    }
    Py_INCREF(s);
    PyUnicode_InternInPlace(&s);  // the schema's own key objects are interned literals already
    Known& k = g_known[g_nknown++];
    k.obj = s;
    k.len = static_cast<unsigned char>(n);
    std::memcpy(k.text, t, static_cast<size_t>(n));
    unsigned h = known_hash(t, static_cast<size_t>(n));
    while (g_slot[h]) h = (h + 1) & (kKnownSlots - 1);
    g_slot[h] = static_cast<short>(g_nknown);
}

// -- JSON parsing: the subset, into Python objects; nullptr + no error set = "not handled" ---
struct Parser {
    const char* p;
    const char* end;
    bool failed = false;  // a Python error is set (memory): propagate, don't fall back

    void ws() {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
    }

    PyObject* value(int depth) {
        ws();
        if (p >= end || depth > kMaxDepth) return nullptr;
        switch (*p) {
            case '{': return object(depth);
            case '[': return array(depth);
            case '"': return string();
            case 't': return literal("true", Py_True);
            case 'f': return literal("false", Py_False);
            case 'n': return literal("null", Py_None);
            default: return number();
        }
    }

    PyObject* literal(const char* word, PyObject* obj) {
        size_t n = std::strlen(word);
        if (static_cast<size_t>(end - p) < n || std::memcmp(p, word, n) != 0) return nullptr;
        p += n;
        Py_INCREF(obj);
        return obj;
    }

    PyObject* string() {
        const char* s = ++p;  // past the quote
        while (p < end) {
            unsigned char c = static_cast<unsigned char>(*p);
            if (c == '"') break;
            // escapes and non-ASCII go the Python way (one decoder decides what is valid UTF-8
            // and what a \ud800 means); control characters are invalid JSON: refused there
            if (c == '\\' || c >= 0x80 || c < 0x20) return nullptr;
            ++p;
        }
        if (p >= end) return nullptr;
        PyObject* out = known(s, static_cast<size_t>(p - s));
        if (!out) out = PyUnicode_FromStringAndSize(s, p - s);  // ASCII: never fails to decode
        ++p;
        if (!out) failed = true;
        return out;
    }

    PyObject* number() {
        const char* s = p;
        bool is_float = false;
        if (p < end && *p == '-') ++p;
        if (p >= end) return nullptr;
        if (*p == '0') {
            ++p;
        } else if (*p >= '1' && *p <= '9') {
            while (p < end && *p >= '0' && *p <= '9') ++p;
        } else {
            return nullptr;
        }
        if (p < end && *p == '.') {
            is_float = true;
            ++p;
            const char* d = p;
            while (p < end && *p >= '0' && *p <= '9') ++p;
            if (p == d) return nullptr;
        }
        if (p < end && (*p == 'e' || *p == 'E')) {
            is_float = true;
            ++p;
            if (p < end && (*p == '+' || *p == '-')) ++p;
            const char* d = p;
            while (p < end && *p >= '0' && *p <= '9') ++p;
            if (p == d) return nullptr;
        }
        size_t n = static_cast<size_t>(p - s);
        char buf[64];
        if (n >= sizeof buf) return nullptr;
        std::memcpy(buf, s, n);
        buf[n] = '\0';
        if (!is_float) {
            if (n > 18) return nullptr;  // may pass int64: the Python path decides
            PyObject* out = PyLong_FromLongLong(std::strtoll(buf, nullptr, 10));
            if (!out) failed = true;
            return out;
        }
        // the parser float() and the json module use: correctly rounded, as orjson's
        double v = PyOS_string_to_double(buf, nullptr, nullptr);
        if (v == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return nullptr;
        }
        if (!std::isfinite(v)) return nullptr;  // 1e400: orjson refuses it
        PyObject* out = PyFloat_FromDouble(v);
        if (!out) failed = true;
        return out;
    }

    PyObject* array(int depth) {
        ++p;
        PyObject* list = PyList_New(0);
        if (!list) { failed = true; return nullptr; }
        ws();
        if (p < end && *p == ']') { ++p; return list; }
        for (;;) {
            PyObject* v = value(depth + 1);
            if (!v) { Py_DECREF(list); return nullptr; }
            int rc = PyList_Append(list, v);
            Py_DECREF(v);
            if (rc < 0) { failed = true; Py_DECREF(list); return nullptr; }
            ws();
            if (p < end && *p == ',') { ++p; continue; }
            if (p < end && *p == ']') { ++p; return list; }
            Py_DECREF(list);
            return nullptr;
        }
    }

    PyObject* object(int depth) {
        ++p;
        PyObject* dict = PyDict_New();
        if (!dict) { failed = true; return nullptr; }
        ws();
        if (p < end && *p == '}') { ++p; return dict; }
        for (;;) {
            ws();
            if (p >= end || *p != '"') { Py_DECREF(dict); return nullptr; }
            PyObject* k = string();
            if (!k) { Py_DECREF(dict); return nullptr; }
            ws();
            if (p >= end || *p != ':') { Py_DECREF(k); Py_DECREF(dict); return nullptr; }
            ++p;
            PyObject* v = value(depth + 1);
            if (!v) { Py_DECREF(k); Py_DECREF(dict); return nullptr; }
            Py_ssize_t before = PyDict_GET_SIZE(dict);
            int rc = PyDict_SetItem(dict, k, v);
            Py_DECREF(k);
            Py_DECREF(v);
            if (rc < 0) { failed = true; Py_DECREF(dict); return nullptr; }
            // a repeated key: the JSON libraries keep the last value; leave the call to them
            if (PyDict_GET_SIZE(dict) == before) { Py_DECREF(dict); return nullptr; }
            ws();
            if (p < end && *p == ',') { ++p; continue; }
            if (p < end && *p == '}') { ++p; return dict; }
            Py_DECREF(dict);
            return nullptr;
        }
    }
};

// -- schema checks (the same as protocol._CHECKS' functions; tests hold them to it) ----------
bool exact_int_in(PyObject* v, long long lo, long long hi) {
    if (!PyLong_CheckExact(v)) return false;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;  // past 64 bits: outside every range we check
    }
    return lo <= x && x <= hi;
}

bool num_in(PyObject* v, double lo, double hi) {
    if (PyFloat_CheckExact(v)) {
        double x = PyFloat_AS_DOUBLE(v);
        return lo <= x && x <= hi;
    }
    if (!PyLong_CheckExact(v)) return false;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (!overflow && x > -(1LL << 53) && x < (1LL << 53)) {  // exact as a double
        double d = static_cast<double>(x);
        return lo <= d && d <= hi;
    }
    PyErr_Clear();
    // NOTE: past 2**53 compare exactly, as Python does (an int must not round into range)
    PyObject* flo = PyFloat_FromDouble(lo);
    PyObject* fhi = PyFloat_FromDouble(hi);
    int a = flo ? PyObject_RichCompareBool(flo, v, Py_LE) : -1;
    int b = fhi ? PyObject_RichCompareBool(v, fhi, Py_LE) : -1;
    Py_XDECREF(flo);
    Py_XDECREF(fhi);
    if (a < 0 || b < 0) { PyErr_Clear(); return false; }
    return a && b;
}

bool short_str(PyObject* v, Py_ssize_t n) {
    // isinstance(v, str): a JSON string is always exactly str; the encoder's input may not be
    return PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) <= n;
}

long item_long(PyObject* spec, Py_ssize_t i) { return PyLong_AsLong(PyTuple_GET_ITEM(spec, i)); }

// 1: valid, 0: invalid, -1: a Python error is set
int check_value(PyObject* spec, PyObject* v) {
    switch (item_long(spec, 0)) {
        case kUint:
            return exact_int_in(v, 0, PyLong_AsLongLong(PyTuple_GET_ITEM(spec, 1)));
        case kNum:
            return num_in(v, PyFloat_AsDouble(PyTuple_GET_ITEM(spec, 1)), PyFloat_AsDouble(PyTuple_GET_ITEM(spec, 2)));
        case kStr:
            if (v == Py_None && PyObject_IsTrue(PyTuple_GET_ITEM(spec, 2))) return 1;
            return short_str(v, item_long(spec, 1));
        case kNumbers: {  // {str<=32: int|float in [-1e12, 1e12]}, at most n entries
            if (!PyDict_CheckExact(v) || PyDict_GET_SIZE(v) > item_long(spec, 1)) return 0;
            Py_ssize_t pos = 0;
            PyObject *k, *x;
            while (PyDict_Next(v, &pos, &k, &x)) {
                if (!short_str(k, 32)) return 0;
                if (PyFloat_CheckExact(x)) {
                    double d = PyFloat_AS_DOUBLE(x);
                    if (!(-1e12 <= d && d <= 1e12)) return 0;
                } else if (!exact_int_in(x, -1000000000000LL, 1000000000000LL)) {
                    return 0;
                }
            }
            return 1;
        }
        case kStrList: {  // [str<=256], at most n
            if (!PyList_CheckExact(v) || PyList_GET_SIZE(v) > item_long(spec, 1)) return 0;
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(v); ++i)
                if (!short_str(PyList_GET_ITEM(v, i), 256)) return 0;
            return 1;
        }
        case kList:
            return PyList_CheckExact(v) && PyList_GET_SIZE(v) <= item_long(spec, 1);
        case kCall: {
            PyObject* r = PyObject_CallOneArg(PyTuple_GET_ITEM(spec, 1), v);
            if (!r) return -1;
            int ok = PyObject_IsTrue(r);
            Py_DECREF(r);
            return ok;
        }
        default:
            return 0;
    }
}

// 1 valid, 0 not (the Python path says why), -1 error
int check_meta(long kind, PyObject* meta) {
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(meta, &pos, &k, &v)) {
        PyObject* spec = PyDict_GetItemWithError(g.schema, k);
        if (!spec) {
            if (PyErr_Occurred()) return -1;
            continue;  // unknown keys are ignored (forward compatibility)
        }
        int ok = check_value(spec, v);
        if (ok <= 0) return ok;
    }
    PyObject* kint = PyLong_FromLong(kind);
    if (!kint) return -1;
    PyObject* req = PyDict_GetItemWithError(g.required, kint);
    Py_DECREF(kint);
    if (!req) return PyErr_Occurred() ? -1 : 1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(req); ++i) {
        int has = PyDict_Contains(meta, PyTuple_GET_ITEM(req, i));
        if (has <= 0) return has;
    }
    return 1;
}

struct Buffer {
    Py_buffer view{};
    bool held = false;
    ~Buffer() {
        if (held) PyBuffer_Release(&view);
    }
    bool get(PyObject* o) {
        held = PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) == 0;
        if (!held) PyErr_Clear();
        return held;
    }
};

inline uint16_t rd16(const unsigned char* b) { return static_cast<uint16_t>(b[0] | (b[1] << 8)); }
inline uint32_t rd32(const unsigned char* b) {
    return static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) | (static_cast<uint32_t>(b[2]) << 16) |
           (static_cast<uint32_t>(b[3]) << 24);
}

// A new Message without running its (Python) __init__: the dataclass' fields set directly.
PyObject* new_message(PyObject* kind, PyObject* meta, PyObject* specs, PyObject* buffers, long flags,
                      PyObject* codecs) {
    PyTypeObject* tp = reinterpret_cast<PyTypeObject*>(g.message);
    PyObject* obj = tp->tp_alloc(tp, 0);
    if (!obj) return nullptr;
    PyObject* fl = PyLong_FromLong(flags);
    PyObject* vals[6] = {kind, meta, specs, buffers, fl, codecs};
    for (int i = 0; i < 6; ++i) {
        if (!vals[i] || PyObject_GenericSetAttr(obj, g.attr[i], vals[i]) < 0) {
            Py_XDECREF(fl);
            Py_DECREF(obj);
            return nullptr;
        }
    }
    Py_DECREF(fl);
    return obj;
}

// Decode result: a new reference, or nullptr with an error set, or Py_None (not handled).
PyObject* decode(PyObject* frames, long long max_meta, long long max_tensors, long long cap) {
    if (!PyList_CheckExact(frames) && !PyTuple_CheckExact(frames)) Py_RETURN_NONE;
    PyObject** items = PySequence_Fast_ITEMS(frames);
    Py_ssize_t nframes = PySequence_Fast_GET_SIZE(frames);
    if (nframes < 1 || nframes > 1 + max_tensors) Py_RETURN_NONE;
    Buffer head;
    if (!head.get(items[0]) || head.view.len < kHeader) Py_RETURN_NONE;
    const unsigned char* h = static_cast<const unsigned char*>(head.view.buf);
    long kind = h[5], flags = rd16(h + 6), ntensors = rd16(h + 8), reserved = rd16(h + 10);
    long long meta_len = rd32(h + 12);
    if (std::memcmp(h, "EINF", 4) != 0 || h[4] != kWireVersion || reserved || meta_len > max_meta ||
        ntensors > max_tensors || head.view.len != kHeader + meta_len || nframes != 1 + ntensors)
        Py_RETURN_NONE;
    PyObject* kint = PyLong_FromLong(kind);
    if (!kint) return nullptr;
    PyObject* kind_obj = PyDict_GetItemWithError(g.kinds, kint);
    int may_carry = kind_obj ? PySet_Contains(g.tensor_kinds, kint) : 0;
    Py_DECREF(kint);
    if (!kind_obj) return PyErr_Occurred() ? nullptr : (Py_INCREF(Py_None), Py_None);
    if (may_carry < 0) return nullptr;
    if (ntensors && !may_carry) Py_RETURN_NONE;

    PyObject* meta;
    if (meta_len) {
        Parser ps{reinterpret_cast<const char*>(h) + kHeader, reinterpret_cast<const char*>(h) + kHeader + meta_len};
        meta = ps.value(0);
        if (!meta) {
            if (ps.failed) return nullptr;
            Py_RETURN_NONE;
        }
        ps.ws();
        if (ps.p != ps.end || !PyDict_CheckExact(meta)) {
            Py_DECREF(meta);
            Py_RETURN_NONE;
        }
    } else {
        meta = PyDict_New();
        if (!meta) return nullptr;
    }
    // From here on every exit releases what it made (one cleanup block).
    PyObject *specs = nullptr, *buffers = nullptr, *codecs = nullptr, *result = nullptr;
    PyObject* entries;
    PyObject* default_codec;
    bool own_codec = false;
    int ok = check_meta(kind, meta);
    if (ok <= 0) goto done;
    ok = 0;
    entries = PyDict_GetItemWithError(meta, g.s_tensors);  // borrowed
    if (!entries && PyErr_Occurred()) goto done;
    if ((entries ? PyList_GET_SIZE(entries) : 0) != ntensors) goto done;  // a list: schema-checked
    specs = PyList_New(ntensors);
    buffers = PyList_New(ntensors);
    if (!specs || !buffers) goto done;
    default_codec = PyDict_GetItemWithError(meta, g.s_codec);
    if (!default_codec) {
        if (PyErr_Occurred()) goto done;
        default_codec = g.s_raw;
    }
    for (Py_ssize_t i = 0; i < ntensors; ++i) {
        PyObject* t = PyList_GET_ITEM(entries, i);
        if (!PyDict_CheckExact(t)) goto done;
        PyObject* name = PyDict_GetItemWithError(t, g.s_name);
        PyObject* dtype = name ? PyDict_GetItemWithError(t, g.s_dtype) : nullptr;
        PyObject* shape = dtype ? PyDict_GetItemWithError(t, g.s_shape) : nullptr;
        if (!shape) {
            if (PyErr_Occurred()) { ok = -1; goto done; }
            goto done;
        }
        if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) > 256 || !PyUnicode_CheckExact(dtype) ||
            !PyList_CheckExact(shape) || PyList_GET_SIZE(shape) > kMaxNdim)
            goto done;
        PyObject* isz = PyDict_GetItemWithError(g.itemsizes, dtype);
        if (!isz) {
            if (PyErr_Occurred()) ok = -1;
            goto done;
        }
        long long n = PyLong_AsLongLong(isz);
        Py_ssize_t nd = PyList_GET_SIZE(shape);
        PyObject* dims = PyTuple_New(nd);
        if (!dims) { ok = -1; goto done; }
        bool good = true;
        for (Py_ssize_t j = 0; j < nd && good; ++j) {
            PyObject* d = PyList_GET_ITEM(shape, j);
            int overflow = 0;
            long long x = PyLong_CheckExact(d) ? PyLong_AsLongLongAndOverflow(d, &overflow) : -1;
            if (overflow || x < 0 || __builtin_mul_overflow(n, x, &n)) {
                PyErr_Clear();
                good = false;
                break;
            }
            Py_INCREF(d);
            PyTuple_SET_ITEM(dims, j, d);
        }
        if (!good || n > cap) { Py_DECREF(dims); goto done; }
        // a TensorMeta(name, dtype, dims) as tuple.__new__ builds a subclass instance (no Python call)
        PyTypeObject* tm = reinterpret_cast<PyTypeObject*>(g.tensor_meta);
        PyObject* spec = tm->tp_alloc(tm, 3);
        if (!spec) { Py_DECREF(dims); ok = -1; goto done; }
        Py_INCREF(name);
        Py_INCREF(dtype);
        PyTuple_SET_ITEM(spec, 0, name);
        PyTuple_SET_ITEM(spec, 1, dtype);
        PyTuple_SET_ITEM(spec, 2, dims);
        PyList_SET_ITEM(specs, i, spec);

        PyObject* codec = PyDict_GetItemWithError(t, g.s_codec);
        if (codec) {
            own_codec = true;
            if (!short_str(codec, 64)) goto done;
        } else if (PyErr_Occurred()) {
            ok = -1;
            goto done;
        } else {
            codec = default_codec;
        }
        // the tensor's frame: a read-only view (memoryview(f).toreadonly() without the second object)
        PyObject* mv = PyMemoryView_FromObject(items[1 + i]);
        if (!mv) { PyErr_Clear(); goto done; }
        Py_buffer* b = PyMemoryView_GET_BUFFER(mv);
        b->readonly = 1;
        PyList_SET_ITEM(buffers, i, mv);
        int is_raw = PyUnicode_Compare(codec, g.s_raw) == 0;
        if ((is_raw && b->len != n) || b->len > cap) goto done;
    }
    if (ntensors) {
        codecs = PyList_New(ntensors);
        if (!codecs) { ok = -1; goto done; }
        for (Py_ssize_t i = 0; i < ntensors; ++i) {
            PyObject* c = own_codec ? PyDict_GetItemWithError(PyList_GET_ITEM(entries, i), g.s_codec) : nullptr;
            if (!c) c = default_codec;
            Py_INCREF(c);
            PyList_SET_ITEM(codecs, i, c);
        }
    } else {
        codecs = PyList_New(0);
        if (!codecs) { ok = -1; goto done; }
    }
    result = new_message(kind_obj, meta, specs, buffers, flags, codecs);
    ok = result ? 1 : -1;
done:
    Py_DECREF(meta);
    Py_XDECREF(specs);
    Py_XDECREF(buffers);
    Py_XDECREF(codecs);
    if (ok < 0 || (ok == 0 && PyErr_Occurred())) {
        Py_XDECREF(result);
        return nullptr;
    }
    if (ok == 0) Py_RETURN_NONE;
    return result;
}

// -- JSON writing: the subset, compact; false = not handled (the Python encoder decides) ---
struct Writer {
    std::string out;
    bool failed = false;

    bool str(PyObject* s) {
        if (!PyUnicode_IS_ASCII(s)) return false;
        const char* c = reinterpret_cast<const char*>(PyUnicode_DATA(s));
        Py_ssize_t n = PyUnicode_GET_LENGTH(s);
        out.push_back('"');
        for (Py_ssize_t i = 0; i < n; ++i) {
            unsigned char ch = static_cast<unsigned char>(c[i]);
            if (ch == '"' || ch == '\\' || ch < 0x20) return false;  // escaping: the Python way
            out.push_back(static_cast<char>(ch));
        }
        out.push_back('"');
        return true;
    }

    bool value(PyObject* v, int depth) {
        if (depth > kMaxDepth) return false;
        if (PyUnicode_CheckExact(v)) return str(v);
        if (v == Py_True) { out += "true"; return true; }
        if (v == Py_False) { out += "false"; return true; }
        if (PyLong_CheckExact(v)) {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (x == -1 && PyErr_Occurred())) { PyErr_Clear(); return false; }
            out += std::to_string(x);
            return true;
        }
        if (PyFloat_CheckExact(v)) {
            double x = PyFloat_AS_DOUBLE(v);
            if (!std::isfinite(x)) return false;  // NaN/inf: refused by the Python encoder
            char* r = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, nullptr);  // repr()
            if (!r) { failed = true; return false; }
            out += r;
            PyMem_Free(r);
            return true;
        }
        if (PyDict_CheckExact(v)) {
            out.push_back('{');
            Py_ssize_t pos = 0;
            PyObject *k, *x;
            bool first = true;
            while (PyDict_Next(v, &pos, &k, &x)) {
                if (!PyUnicode_CheckExact(k)) return false;
                if (!first) out.push_back(',');
                first = false;
                if (!str(k)) return false;
                out.push_back(':');
                if (!value(x, depth + 1)) return false;
            }
            out.push_back('}');
            return true;
        }
        if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
            out.push_back('[');
            Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
            PyObject** it = PySequence_Fast_ITEMS(v);
            for (Py_ssize_t i = 0; i < n; ++i) {
                if (i) out.push_back(',');
                if (!value(it[i], depth + 1)) return false;
            }
            out.push_back(']');
            return true;
        }
        return false;  // None (may stand for a NaN elsewhere), numpy scalars, anything else
    }
};

PyObject* encode(long kind, PyObject* meta, long flags, long ntensors, long long max_meta) {
    if (kind < 0 || kind > 255 || flags < 0 || flags > 0xFFFF || ntensors < 0 || ntensors > 0xFFFF ||
        !PyDict_CheckExact(meta))
        Py_RETURN_NONE;
    Writer w;
    w.out.reserve(256);
    w.out.assign(kHeader, '\0');
    if (!w.value(meta, 0)) {
        if (w.failed) return nullptr;
        Py_RETURN_NONE;
    }
    long long meta_len = static_cast<long long>(w.out.size()) - kHeader;
    if (meta_len > max_meta) Py_RETURN_NONE;  // TooLarge: the Python path raises it
    unsigned char* h = reinterpret_cast<unsigned char*>(&w.out[0]);
    std::memcpy(h, "EINF", 4);
    h[4] = kWireVersion;
    h[5] = static_cast<unsigned char>(kind);
    h[6] = flags & 0xFF;
    h[7] = (flags >> 8) & 0xFF;
    h[8] = ntensors & 0xFF;
    h[9] = (ntensors >> 8) & 0xFF;
    h[10] = h[11] = 0;
    for (int i = 0; i < 4; ++i) h[12 + i] = (meta_len >> (8 * i)) & 0xFF;
    return PyBytes_FromStringAndSize(w.out.data(), static_cast<Py_ssize_t>(w.out.size()));
}

// numpy's PyArrayObject_fields, the leading part (unchanged from numpy 1.7 through 2.x; pybind11
// reads the same fields). wire_setup verifies it on a known array before wire_pack_raw uses it.
struct ArrayHead {
    PyObject_HEAD
    char* data;
    int nd;
    Py_ssize_t* dimensions;
    Py_ssize_t* strides;
    PyObject* base;
    PyObject* descr;
    int flags;
};
constexpr int kCContiguous = 0x0001;  // NPY_ARRAY_C_CONTIGUOUS

bool need_setup() {
    if (g.ready) return false;
    PyErr_SetString(PyExc_RuntimeError, "wire_setup() has not run (edgeinf.transport.protocol calls it at import)");
    return true;
}

// The common entry check: set up, and called with `want` arguments (else TypeError: `usage`)
bool cannot_run(Py_ssize_t n, Py_ssize_t want, const char* usage) {
    if (need_setup()) return true;
    if (n == want) return false;
    PyErr_SetString(PyExc_TypeError, usage);
    return true;
}


// wire_setup(Message, TensorMeta, kinds, itemsizes, schema, required, tensor_kinds, dtypes, ndarray)
PyObject* py_setup(PyObject*, PyObject* const* args, Py_ssize_t n) {
    if (n != 9 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyDict_Check(args[2]) ||
        !PyDict_Check(args[3]) || !PyDict_Check(args[4]) || !PyDict_Check(args[5]) || !PyFrozenSet_Check(args[6]) ||
        !PyDict_Check(args[7]) || !PyType_Check(args[8])) {
        PyErr_SetString(PyExc_TypeError, "wire_setup(Message, TensorMeta, kinds, itemsizes, schema, required, "
                                         "tensor_kinds, dtypes, ndarray)");
        return nullptr;
    }
    if (!PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(args[1]), &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "TensorMeta must be a tuple subclass");
        return nullptr;
    }
    // every spec is checked here, once, so that check_value can trust the tuples' shapes
    Py_ssize_t pos = 0;
    PyObject *k, *spec;
    while (PyDict_Next(args[4], &pos, &k, &spec)) {
        static const Py_ssize_t arity[] = {0, 2, 3, 3, 2, 2, 2, 2};
        long code = PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) ? PyLong_AsLong(PyTuple_GET_ITEM(spec, 0)) : -1;
        if (PyErr_Occurred()) return nullptr;
        bool ok = code >= kUint && code <= kCall && PyTuple_GET_SIZE(spec) == arity[code];
        if (ok && code == kNum)
            ok = PyFloat_Check(PyTuple_GET_ITEM(spec, 1)) && PyFloat_Check(PyTuple_GET_ITEM(spec, 2));
        else if (ok && code == kCall)
            ok = PyCallable_Check(PyTuple_GET_ITEM(spec, 1));
        else if (ok)
            ok = PyLong_Check(PyTuple_GET_ITEM(spec, 1));
        if (!ok) {
            PyErr_Format(PyExc_ValueError, "wire_setup: bad native spec for %R: %R", k, spec);
            return nullptr;
        }
    }
    PyObject** slots[] = {&g.message, &g.tensor_meta, &g.kinds,        &g.itemsizes, &g.schema,
                          &g.required, &g.tensor_kinds, &g.dtypes, &g.ndarray};
    for (int i = 0; i < 9; ++i) {
        Py_INCREF(args[i]);
        Py_XSETREF(*slots[i], args[i]);
    }
    if (!g.s_tensors) {
        struct { PyObject** slot; const char* text; } names[] = {
            {&g.s_tensors, "tensors"}, {&g.s_codec, "codec"}, {&g.s_name, "name"}, {&g.s_dtype, "dtype"},
            {&g.s_shape, "shape"}, {&g.s_raw, "raw"}, {&g.attr[0], "kind"}, {&g.attr[1], "meta"},
            {&g.attr[2], "tensors"}, {&g.attr[3], "buffers"}, {&g.attr[4], "flags"}, {&g.attr[5], "codecs"}};
        for (auto& nm : names)
            if (!(*nm.slot = PyUnicode_InternFromString(nm.text))) return nullptr;
    }
    // the canonical dtype objects, for wire_pack_raw's identity test (a dict lookup would hash
    // the dtype in numpy's code on every tensor)
    for (int k = 0; k < g.ncanon; ++k) {
        Py_CLEAR(g.canon[k]);
        Py_CLEAR(g.canon_names[k]);
    }
    g.ncanon = 0;
    pos = 0;
    PyObject *dname, *dobj;
    while (PyDict_Next(g.dtypes, &pos, &dname, &dobj) && g.ncanon < 16) {
        Py_INCREF(dname);
        Py_INCREF(dobj);
        g.canon_names[g.ncanon] = dname;
        g.canon[g.ncanon++] = dobj;
    }
    // numpy's layout, checked on a known array: zeros((2, 3), float32) made by numpy itself
    g.pack_ok = false;
    PyObject* f32 = PyDict_GetItemString(g.dtypes, "float32");
    PyObject* np = f32 ? PyImport_ImportModule("numpy") : nullptr;
    PyObject* probe = np ? PyObject_CallMethod(np, "zeros", "((ii)O)", 2, 3, f32) : nullptr;
    Py_XDECREF(np);
    if (!probe) return nullptr;
    if (Py_TYPE(probe) == reinterpret_cast<PyTypeObject*>(g.ndarray)) {
        ArrayHead* h = reinterpret_cast<ArrayHead*>(probe);
        g.pack_ok = h->nd == 2 && h->dimensions[0] == 2 && h->dimensions[1] == 3 && h->strides[0] == 12 &&
                    h->strides[1] == 4 && h->descr == f32 && (h->flags & kCContiguous) && h->base == nullptr;
    }
    Py_DECREF(probe);
    if (!edgeinf::numpy_array_api(&g.new_from_descr, &g.set_base)) g.new_from_descr = nullptr;
    // the known strings: the schema's field names, the tensor entries', the dtype names, "raw"
    for (int i = 0; i < g_nknown; ++i) Py_CLEAR(g_known[i].obj);
    g_nknown = 0;
    std::memset(g_slot, 0, sizeof g_slot);
    pos = 0;
    while (PyDict_Next(g.schema, &pos, &k, &spec)) add_known(k);
    for (PyObject* s : {g.s_tensors, g.s_codec, g.s_name, g.s_dtype, g.s_shape, g.s_raw}) add_known(s);
    pos = 0;
    while (PyDict_Next(g.dtypes, &pos, &dname, &dobj)) add_known(dname);
    g.ready = true;
    Py_RETURN_NONE;
}

bool as_ll(PyObject* o, long long* out) {
    *out = PyLong_AsLongLong(o);
    return !(*out == -1 && PyErr_Occurred());
}

// wire_decode(frames, max_meta, max_tensors, max_tensor_bytes) -> Message | None
PyObject* py_decode(PyObject*, PyObject* const* args, Py_ssize_t n) {
    if (need_setup()) return nullptr;
    long long mm, mt, cap;
    if (n != 4 || !as_ll(args[1], &mm) || !as_ll(args[2], &mt) || !as_ll(args[3], &cap)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "wire_decode(frames, max_meta, max_tensors, max_tensor_bytes)");
        return nullptr;
    }
    return decode(args[0], mm, mt, cap);
}

// wire_encode(kind, meta, flags, ntensors, max_meta) -> bytes (header + metadata) | None
PyObject* py_encode(PyObject*, PyObject* const* args, Py_ssize_t n) {
    long long kind, flags, nt, mm;
    if (n != 5 || !PyLong_Check(args[0]) || !PyLong_Check(args[2]) || !as_ll(args[3], &nt) || !as_ll(args[4], &mm)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "wire_encode(kind, meta, flags, ntensors, max_meta)");
        return nullptr;
    }
    int o1 = 0, o2 = 0;
    kind = PyLong_AsLongLongAndOverflow(args[0], &o1);
    flags = PyLong_AsLongLongAndOverflow(args[2], &o2);
    if (PyErr_Occurred()) return nullptr;
    if (o1 || o2 || kind < 0 || kind > 255 || flags < 0 || flags > 0xFFFF) Py_RETURN_NONE;
    return encode(static_cast<long>(kind), args[1], static_cast<long>(flags), nt < 0 || nt > 0xFFFF ? -1 : static_cast<long>(nt), mm);
}

// numpy.ndarray(shape, dt, buffer=buf) for a read-only memoryview of exactly the bytes the
// shape needs: through numpy's C API where it could be had (NOTE: ndarray()'s argument
// parsing was 3-4 of the 4.5-6 us the views of one tensor cost cold, inside a round trip)
PyObject* view_of(PyObject* shape, PyObject* dt, PyObject* buf) {
    const Py_ssize_t nd = PyTuple_GET_SIZE(shape);
    if (!g.new_from_descr || nd > kMaxNdim) {
        PyObject* call[3] = {shape, dt, buf};
        return PyObject_Vectorcall(g.ndarray, call, 3, nullptr);
    }
    Py_intptr_t dims[kMaxNdim];
    for (Py_ssize_t j = 0; j < nd; ++j) dims[j] = static_cast<Py_intptr_t>(PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, j)));
    Py_INCREF(dt);  // NewFromDescr steals it, even on failure
    // flags 0: read-only; C-contiguous strides and the aligned flag numpy works out itself
    PyObject* a = g.new_from_descr(reinterpret_cast<PyTypeObject*>(g.ndarray), dt, static_cast<int>(nd), dims, nullptr,
                                   PyMemoryView_GET_BUFFER(buf)->buf, 0, nullptr);
    if (!a) return nullptr;
    Py_INCREF(buf);  // SetBaseObject steals it, even on failure
    if (g.set_base(a, buf) < 0) {
        Py_DECREF(a);
        return nullptr;
    }
    return a;
}

// wire_views(specs, buffers, codecs) -> {name: read-only ndarray} | None: Message.arrays for
// messages whose every tensor is raw (``codecs``: one name or one per tensor); None for any
// other, and for anything the Python ``unpack`` would refuse or say more about
PyObject* py_views(PyObject*, PyObject* const* args, Py_ssize_t n) {
    if (cannot_run(n, 3, "wire_views(specs, buffers, codecs)")) return nullptr;
    PyObject *specs = args[0], *buffers = args[1], *codecs = args[2];
    if (!PyList_CheckExact(specs) || !PyList_CheckExact(buffers) || PyList_GET_SIZE(specs) != PyList_GET_SIZE(buffers))
        Py_RETURN_NONE;
    Py_ssize_t nt = PyList_GET_SIZE(specs);
    bool one = PyUnicode_Check(codecs);
    if (one ? PyUnicode_Compare(codecs, g.s_raw) != 0 : !PyList_CheckExact(codecs) || PyList_GET_SIZE(codecs) != nt) {
        if (PyErr_Occurred()) return nullptr;
        Py_RETURN_NONE;
    }
    PyObject* out = PyDict_New();
    if (!out) return nullptr;
    for (Py_ssize_t i = 0; i < nt; ++i) {
        PyObject* spec = PyList_GET_ITEM(specs, i);
        PyObject* buf = PyList_GET_ITEM(buffers, i);
        if (!one) {
            PyObject* c = PyList_GET_ITEM(codecs, i);
            if (!PyUnicode_Check(c) || PyUnicode_Compare(c, g.s_raw) != 0) {
                Py_DECREF(out);
                if (PyErr_Occurred()) return nullptr;
                Py_RETURN_NONE;
            }
        }
        if (Py_TYPE(spec) != reinterpret_cast<PyTypeObject*>(g.tensor_meta) || PyTuple_GET_SIZE(spec) != 3 ||
            !PyMemoryView_Check(buf) || !PyMemoryView_GET_BUFFER(buf)->readonly) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        PyObject *name = PyTuple_GET_ITEM(spec, 0), *dtype = PyTuple_GET_ITEM(spec, 1), *shape = PyTuple_GET_ITEM(spec, 2);
        PyObject* dt = PyDict_GetItemWithError(g.dtypes, dtype);
        PyObject* isz = dt ? PyDict_GetItemWithError(g.itemsizes, dtype) : nullptr;
        if (!isz || !PyTuple_CheckExact(shape)) {
            Py_DECREF(out);
            if (PyErr_Occurred()) return nullptr;
            Py_RETURN_NONE;
        }
        long long nbytes = PyLong_AsLongLong(isz);
        bool good = true;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(shape) && good; ++j) {
            int overflow = 0;
            PyObject* d = PyTuple_GET_ITEM(shape, j);
            long long x = PyLong_CheckExact(d) ? PyLong_AsLongLongAndOverflow(d, &overflow) : -1;
            good = !overflow && x >= 0 && !__builtin_mul_overflow(nbytes, x, &nbytes);
        }
        PyErr_Clear();
        if (!good || PyMemoryView_GET_BUFFER(buf)->len != nbytes) {  // unpack says what is wrong
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        PyObject* a = view_of(shape, dt, buf);
        if (!a || PyDict_SetItem(out, name, a) < 0) {
            Py_XDECREF(a);
            Py_DECREF(out);
            return nullptr;
        }
        Py_DECREF(a);
    }
    return out;
}

// wire_pack_raw(arrays) -> (specs, frames) | None: protocol.pack_raw for a dict of C-contiguous
// ndarrays of the canonical wire dtypes (the Python path converts anything else)
PyObject* py_pack(PyObject*, PyObject* const* args, Py_ssize_t n) {
    if (cannot_run(n, 1, "wire_pack_raw(arrays)")) return nullptr;
    PyObject* arrays = args[0];
    if (!g.pack_ok || !PyDict_CheckExact(arrays)) Py_RETURN_NONE;
    Py_ssize_t nt = PyDict_GET_SIZE(arrays);
    PyObject* specs = PyList_New(nt);
    PyObject* frames = specs ? PyList_New(nt) : nullptr;
    if (!frames) {
        Py_XDECREF(specs);
        return nullptr;
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *name, *a;
    int ok = 1;
    while (ok == 1 && PyDict_Next(arrays, &pos, &name, &a)) {
        if (Py_TYPE(a) != reinterpret_cast<PyTypeObject*>(g.ndarray) || !PyUnicode_CheckExact(name)) { ok = 0; break; }
        ArrayHead* h = reinterpret_cast<ArrayHead*>(a);
        PyObject* dname = nullptr;
        for (int k = 0; k < g.ncanon; ++k)
            if (h->descr == g.canon[k]) dname = g.canon_names[k];
        if (!dname || !(h->flags & kCContiguous) || h->nd < 0 || h->nd > 64) { ok = 0; break; }
        PyObject* shape = PyList_New(h->nd);
        PyObject* spec = shape ? PyDict_New() : nullptr;
        if (!spec) { Py_XDECREF(shape); ok = -1; break; }
        for (int d = 0; d < h->nd && ok == 1; ++d) {
            PyObject* dim = PyLong_FromSsize_t(h->dimensions[d]);
            if (!dim) ok = -1;
            else PyList_SET_ITEM(shape, d, dim);
        }
        if (ok == 1 && (PyDict_SetItem(spec, g.s_name, name) < 0 || PyDict_SetItem(spec, g.s_dtype, dname) < 0 ||
                        PyDict_SetItem(spec, g.s_shape, shape) < 0))
            ok = -1;
        Py_DECREF(shape);
        PyList_SET_ITEM(specs, i, spec);
        Py_INCREF(a);
        PyList_SET_ITEM(frames, i, a);
        ++i;
    }
    if (ok != 1) {  // slots past i are still NULL, which a list's deallocation skips
        Py_DECREF(specs);
        Py_DECREF(frames);
        if (ok < 0) return nullptr;
        Py_RETURN_NONE;
    }
    PyObject* out = PyTuple_Pack(2, specs, frames);
    Py_DECREF(specs);
    Py_DECREF(frames);
    return out;
}

// wire_check(key, value) -> bool: the native schema check of one field (for the tests)
PyObject* py_check(PyObject*, PyObject* const* args, Py_ssize_t n) {
    if (cannot_run(n, 2, "wire_check(key, value)")) return nullptr;
    PyObject* spec = PyDict_GetItemWithError(g.schema, args[0]);
    if (!spec) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "%R", args[0]);
        return nullptr;
    }
    int ok = check_value(spec, args[1]);
    if (ok < 0) return nullptr;
    return PyBool_FromLong(ok);
}

// -- the public entry points: protocol.decode / encode / pack_raw themselves ----------------
// NOTE: a Python wrapper around each native call cost 1-1.5 us per call in a round trip (code
// run right after a blocking receive is 3-5x slower than in a hot loop); these take the
// protocol's own arguments, run the native case, and call the Python reference otherwise.

// positional args then keywords (kwnames) into `out` by parameter index; false: TypeError set
bool bind(const char* fname, const char* const* names, int nparams, int required, PyObject* const* args,
          Py_ssize_t nargsf, PyObject* kwnames, PyObject** out) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    for (int i = 0; i < nparams; ++i) out[i] = nullptr;
    if (nargs > nparams) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments (%zd given)", fname, nparams, nargs);
        return false;
    }
    for (Py_ssize_t i = 0; i < nargs; ++i) out[i] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
        PyObject* key = PyTuple_GET_ITEM(kwnames, k);
        int found = -1;
        for (int i = 0; i < nparams && found < 0; ++i)
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) found = i;
        if (found < 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname, key);
            return false;
        }
        if (out[found]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname, names[found]);
            return false;
        }
        out[found] = args[nargs + k];
    }
    for (int i = 0; i < required; ++i)
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname, names[i]);
            return false;
        }
    return true;
}

// the three numbers of a Limits: the defaults' cached, others read (any error: the Python path)
bool limits_of(PyObject* limits, long long* v) {
    if (!limits || limits == g.default_limits) {  // absent: the default (None is not: Python refuses it too)
        std::memcpy(v, g.dl, sizeof g.dl);
        return true;
    }
    const char* names[3] = {"max_meta", "max_tensors", "max_tensor_bytes"};
    for (int i = 0; i < 3; ++i) {
        PyObject* x = PyObject_GetAttrString(limits, names[i]);
        v[i] = x && PyLong_CheckExact(x) ? PyLong_AsLongLong(x) : -1;
        Py_XDECREF(x);
        if (v[i] < 0) {
            PyErr_Clear();
            return false;
        }
    }
    return true;
}

bool need_fallbacks() {
    if (g.decode_py) return false;
    PyErr_SetString(PyExc_RuntimeError, "wire_fallbacks() has not run (edgeinf.transport.protocol calls it at import)");
    return true;
}

// frame_decode(frames, limits=DEFAULT_LIMITS) -> Message: protocol.decode
PyObject* py_frame_decode(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
    if (need_setup() || need_fallbacks()) return nullptr;
    static const char* const names[] = {"frames", "limits"};
    PyObject* a[2];
    if (!bind("decode", names, 2, 1, args, nargsf, kwnames, a)) return nullptr;
    long long lim[3];
    if (limits_of(a[1], lim)) {
        PyObject* msg = decode(a[0], lim[0], lim[1], lim[2]);
        if (msg != Py_None) return msg;  // a Message, or an error (memory) to raise
        Py_DECREF(msg);
    }
    PyObject* call[2] = {a[0], a[1] ? a[1] : g.default_limits};
    return PyObject_Vectorcall(g.decode_py, call, 2, nullptr);
}

// frame_encode(kind, meta, frames=(), flags=0, limits=DEFAULT_LIMITS) -> list: protocol.encode
PyObject* py_frame_encode(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
    if (need_setup() || need_fallbacks()) return nullptr;
    static const char* const names[] = {"kind", "meta", "frames", "flags", "limits"};
    PyObject* a[5];
    if (!bind("encode", names, 5, 2, args, nargsf, kwnames, a)) return nullptr;
    long long lim[3];
    PyObject* frames = a[2];  // absent: a message without tensors, the common reply
    bool seq = !frames || PyList_CheckExact(frames) || PyTuple_CheckExact(frames);
    if (seq && PyLong_Check(a[0]) && (!a[3] || PyLong_Check(a[3])) && limits_of(a[4], lim)) {
        int o1 = 0, o2 = 0;
        long long kind = PyLong_AsLongLongAndOverflow(a[0], &o1);
        long long flags = a[3] ? PyLong_AsLongLongAndOverflow(a[3], &o2) : 0;
        if (PyErr_Occurred()) return nullptr;
        Py_ssize_t n = frames ? PySequence_Fast_GET_SIZE(frames) : 0;
        if (!o1 && !o2 && kind >= 0 && kind <= 255 && flags >= 0 && flags <= 0xFFFF && n <= 0xFFFF) {
            PyObject* head = encode(static_cast<long>(kind), a[1], static_cast<long>(flags), static_cast<long>(n), lim[0]);
            if (!head) return nullptr;
            if (head != Py_None) {
                PyObject* out = PyList_New(1 + n);
                if (!out) {
                    Py_DECREF(head);
                    return nullptr;
                }
                PyList_SET_ITEM(out, 0, head);
                PyObject** it = n ? PySequence_Fast_ITEMS(frames) : nullptr;
                for (Py_ssize_t i = 0; i < n; ++i) {
                    Py_INCREF(it[i]);
                    PyList_SET_ITEM(out, 1 + i, it[i]);
                }
                return out;
            }
            Py_DECREF(head);
        }
    }
    PyObject* empty = nullptr;
    if (!frames && !(frames = empty = PyTuple_New(0))) return nullptr;
    PyObject* zero = a[3] ? nullptr : PyLong_FromLong(0);
    PyObject* call[5] = {a[0], a[1], frames, a[3] ? a[3] : zero, a[4] ? a[4] : g.default_limits};
    PyObject* out = call[3] ? PyObject_Vectorcall(g.encode_py, call, 5, nullptr) : nullptr;
    Py_XDECREF(empty);
    Py_XDECREF(zero);
    return out;
}

// frame_pack_raw(arrays) -> (specs, frames): protocol.pack_raw
PyObject* py_frame_pack(PyObject* self, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
    if (need_setup() || need_fallbacks()) return nullptr;
    static const char* const names[] = {"arrays"};
    PyObject* a[1];
    if (!bind("pack_raw", names, 1, 1, args, nargsf, kwnames, a)) return nullptr;
    PyObject* out = py_pack(self, a, 1);
    if (out != Py_None) return out;
    Py_DECREF(out);
    return PyObject_Vectorcall(g.pack_py, a, 1, nullptr);
}

// wire_fallbacks(decode_py, encode_py, pack_raw_py, default_limits)
PyObject* py_fallbacks(PyObject*, PyObject* const* args, Py_ssize_t n) {
    if (n != 4 || !PyCallable_Check(args[0]) || !PyCallable_Check(args[1]) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "wire_fallbacks(decode_py, encode_py, pack_raw_py, default_limits)");
        return nullptr;
    }
    long long v[3];
    const char* names[3] = {"max_meta", "max_tensors", "max_tensor_bytes"};
    for (int i = 0; i < 3; ++i) {
        PyObject* x = PyObject_GetAttrString(args[3], names[i]);
        if (!x) return nullptr;
        v[i] = PyLong_AsLongLong(x);
        Py_DECREF(x);
        if (v[i] == -1 && PyErr_Occurred()) return nullptr;
    }
    PyObject** slots[] = {&g.decode_py, &g.encode_py, &g.pack_py, &g.default_limits};
    for (int i = 0; i < 4; ++i) {
        Py_INCREF(args[i]);
        Py_XSETREF(*slots[i], args[i]);
    }
    std::memcpy(g.dl, v, sizeof v);
    Py_RETURN_NONE;
}

PyMethodDef kMethods[] = {
    {"frame_decode", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_frame_decode)),
     METH_FASTCALL | METH_KEYWORDS,
     "frame_decode(frames, limits=DEFAULT_LIMITS)\n--\n\nprotocol.decode: the native common case, else the Python reference."},
    {"frame_encode", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_frame_encode)),
     METH_FASTCALL | METH_KEYWORDS,
     "frame_encode(kind, meta, frames=(), flags=0, limits=DEFAULT_LIMITS)\n--\n\nprotocol.encode: the native common case, else the Python reference."},
    {"frame_pack_raw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_frame_pack)),
     METH_FASTCALL | METH_KEYWORDS,
     "frame_pack_raw(arrays)\n--\n\nprotocol.pack_raw: the native common case, else the Python reference."},
    {"wire_fallbacks", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_fallbacks)), METH_FASTCALL,
     "Give frame_decode/encode/pack_raw their Python fallbacks and the default limits (protocol.py, at import)."},
    {"wire_setup", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_setup)), METH_FASTCALL,
     "Give the native framing the protocol's classes and schema (protocol.py, at import)."},
    {"wire_decode", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_decode)), METH_FASTCALL,
     "protocol.decode's common case: a Message, or None for the Python path to decide."},
    {"wire_encode", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_encode)), METH_FASTCALL,
     "protocol.encode's frame 0 (header + metadata) for the common case, or None."},
    {"wire_views", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_views)), METH_FASTCALL,
     "Message.arrays for all-raw messages: read-only views of the frames, or None."},
    {"wire_pack_raw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_pack)), METH_FASTCALL,
     "protocol.pack_raw for a dict of C-contiguous canonical-dtype arrays: (specs, frames), or None."},
    {"wire_check", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(py_check)), METH_FASTCALL,
     "The native schema check of one metadata field (tests compare it with protocol._SCHEMA)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

namespace edgeinf {

int add_wire_functions(PyObject* module) { return PyModule_AddFunctions(module, kMethods); }

}  // namespace edgeinf
