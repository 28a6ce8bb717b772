"""The native framing (csrc/wire.cpp) against the Python reference in protocol.py.

The native functions either do exactly what the Python path does or decline (None) and
leave the message to it. So each test holds them to: whatever native accepts, Python accepts
with the same result; whatever Python refuses, native declines; and the common messages are
handled natively (or the speed-up would be silently gone).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeinf._native import kernels as K
from edgeinf.errors import ProtocolError
from edgeinf.transport import protocol as P
from edgeinf.transport.protocol import Kind

L = P.DEFAULT_LIMITS


def _native_decode(frames, limits=L):
    return K.wire_decode(frames, limits.max_meta, limits.max_tensors, limits.max_tensor_bytes)


def _py(frames, limits=L):
    try:
        return P._decode_py(frames, limits)
    except ProtocolError as e:
        return (type(e), str(e))
    except TypeError as e:  # a frame that is not a buffer
        return (TypeError, str(e))


def _same(native, ref):
    assert isinstance(ref, P.Message), ("native accepted what Python refuses", ref)
    assert native.kind is ref.kind and native.flags == ref.flags
    assert native.meta == ref.meta and json.dumps(native.meta) == json.dumps(ref.meta)  # key order too
    assert native.tensors == ref.tensors and all(type(t) is P.TensorMeta for t in native.tensors)
    assert all(type(d) is int for t in native.tensors for d in t.shape)
    assert native.codecs == ref.codecs
    assert [bytes(b) for b in native.buffers] == [bytes(b) for b in ref.buffers]
    assert all(type(b) is memoryview and b.readonly for b in native.buffers)


def _check(frames, limits=L):
    """The differential property; returns whether the native path handled the message."""
    native = _native_decode(frames, limits)
    ref = _py(frames, limits)
    if native is not None:
        _same(native, ref)
    return native is not None


def _infer(arrays, **meta):
    specs, frames = P.pack_raw(arrays)
    base = {"id": 7, "budget_ms": 100.0, "pkg": "ab" * 32, "cut": "c1", "codec": "raw", "tensors": specs}
    return [bytes(f) if not isinstance(f, np.ndarray) else f.tobytes() for f in
            P._encode_py(Kind.INFER, {**base, **meta}, frames)]


COMMON = {  # what peers send every request: the native path must take each of these
    "INFER": _infer({"x": np.zeros((2, 3), np.float32), "n": np.arange(4)}),
    "INFER int8 + raw entry": P._encode_py(Kind.INFER, {"id": 1, "budget_ms": 5, "pkg": "p", "codec": "int8+lz4",
                                                        "tensors": [{"name": "x", "dtype": "float32", "shape": [4],
                                                                     "codec": "int8+lz4"},
                                                                    {"name": "i", "dtype": "int64", "shape": [1],
                                                                     "codec": "raw"}]}, [b"abc", b"\0" * 8]),
    "RESULT with load": P._encode_py(Kind.RESULT, {"id": 3, "tensors": [], "service_ms": 1.5,
                                                   "load": {"queue": 0, "busy": 0.25, "inflight": 1, "capacity": 2}}),
    "RESULT with tensor": P._encode_py(Kind.RESULT, {"id": 3, "tensors": [{"name": "y", "dtype": "float16",
                                                                           "shape": [2, 2]}]}, [b"\0" * 8]),
    "HEARTBEAT": P._encode_py(Kind.HEARTBEAT, {}),
    "ERROR": P._encode_py(Kind.ERROR, P.error_meta(P.ErrorCode.BACKEND, "it broke", 9)),
    "BUSY": P._encode_py(Kind.BUSY, {"id": 4, "reason": "queue full", "load": {"queue": 8}}),
    "HELLO": P._encode_py(Kind.HELLO, {"proto": 1, "pkgs": ["a" * 64], "codecs": ["raw", "fp16+lz4"],
                                       "cuts": {"a" * 64: ["c1", "c2"]}, "load": {"queue": 0}}),
    "LLM": P._encode_py(Kind.LLM, {"id": 5, "budget_ms": 100, "op": "step", "model": "smollm2", "session": "s1",
                                   "n_past": 12, "n": 4, "temperature": 0.7, "top_k": 40, "top_p": 0.9, "seed": 1,
                                   "tensors": [{"name": "tokens", "dtype": "int32", "shape": [4]}]}, [b"\0" * 16]),
    "CANCEL": P._encode_py(Kind.CANCEL, {"id": 5}),
}


@pytest.mark.parametrize("name", sorted(COMMON))
def test_common_messages_are_decoded_natively_and_alike(name):
    frames = [bytes(f) for f in COMMON[name]]
    assert _check(frames), f"{name}: the native decoder declined a common message"
    assert _check([zmq.Frame(f) for f in frames])  # what recv_frames hands over
    assert _check(tuple(frames))


def test_public_decode_and_encode_take_the_native_path():
    assert P._wire_decode is K.wire_decode and P._wire_encode is K.wire_encode and P._wire_views is K.wire_views
    assert P._wire_pack is K.wire_pack_raw
    assert (P.decode, P.encode, P.pack_raw) == (K.frame_decode, K.frame_encode, K.frame_pack_raw)
    frames = [bytes(f) for f in COMMON["INFER"]]
    head = P.encode(Kind.INFER, json.loads(frames[0][16:]), frames[1:])[0]
    assert type(head) is bytes and head == K.wire_encode(Kind.INFER, json.loads(frames[0][16:]), 0, 2, L.max_meta)


def test_edgeinf_py_wire_turns_the_native_path_off():
    code = ("from edgeinf.transport import protocol as P; import sys; "
            "sys.exit(0 if (P._wire_decode, P._wire_encode, P._wire_views, P._wire_pack) == (None,) * 4 else 3)")
    env = {**os.environ, "EDGEINF_PY_WIRE": "1"}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


# -- the schema: every field's native check agrees with its Python function ----------------
_hostile = st.recursive(
    st.none() | st.booleans() | st.integers(-2**65, 2**65)
    | st.sampled_from([0, 1, 255, 256, 1024, 1025, 2**20, 2**53 - 1, 2**53 + 1, 2**63 - 1, 2**63, -2**63, -2**53 - 1,
                       10**12, 10**12 + 1, -10**12, -10**12 - 1, 3600000, 3600001, 10**11, 10**11 + 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([-1e12, 1e12, 3.6e6, 3.6e6 + 1e-9, 1e11, 0.0, -0.0, 1.0, 1e-300, 5e-324, 10.0, 10.000001])
    | st.text(max_size=3) | st.sampled_from(["a" * n for n in (32, 33, 64, 65, 128, 129, 256, 257, 1024, 1025)])
    | st.sampled_from(["open", "step", "verify", "close", "opens"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3) | st.just("a" * 33), inner, max_size=4)
    | st.sampled_from([["a"] * 64, ["a"] * 65, [0] * 1024, [0] * 1025, {str(i): 0 for i in range(33)},
                       {str(i): 0 for i in range(32)}, ["a" * 257], [True], [-1]]),
    max_leaves=8)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(P._CHECKS)), _hostile)
def test_each_native_check_agrees_with_the_schema(key, value):
    assert K.wire_check(key, value) == bool(P._SCHEMA[key](value)), (key, value)


def test_native_specs_come_from_the_one_table():
    # every field the Python schema knows, the native schema knows, with its spec from _CHECKS
    for key, (fn, _, native) in P._CHECKS.items():
        assert native[0] in range(1, 8), key
        if native[0] == P._N_CALL:
            assert native[1] is fn
    with pytest.raises(KeyError):
        K.wire_check("zz_unknown", 1)
    with pytest.raises(ValueError, match="bad native spec"):  # a malformed table is refused at setup
        K.wire_setup(P.Message, P.TensorMeta, {}, {}, {"id": (P._N_NUM, 0, 1)}, {}, frozenset(), {}, np.ndarray)
    assert K.wire_check("id", 3)  # the refused setup left the real one in place


# -- decode: generated messages, valid and hostile ------------------------------------------
_entries = st.fixed_dictionaries(
    {"name": st.text(max_size=3) | st.sampled_from(["a" * 256, "a" * 257]) | _hostile,
     "dtype": st.sampled_from(P.DTYPES) | _hostile,
     "shape": st.lists(st.sampled_from([0, 1, 2, 3, 4, -1, True, 2.0, 2**40, 2**62, 2**64]), max_size=9) | _hostile},
    optional={"codec": st.sampled_from(["raw", "fake", "a" * 65]) | _hostile, "zz": _hostile}) | _hostile
_metas = st.dictionaries(st.sampled_from(sorted(P._CHECKS)) | st.just("zz_unknown"), _hostile, max_size=6)
_SMALL = P.Limits(max_meta=4096, max_tensors=4, max_tensor_bytes=64)


@st.composite
def _messages(draw):
    kind = draw(st.sampled_from([int(k) for k in Kind] + [0, 12]))
    meta = draw(_metas)
    if draw(st.booleans()):
        meta["tensors"] = draw(st.lists(_entries, max_size=3))
    text = json.dumps(meta, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])),
                      ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")
    nt = len(meta["tensors"]) if isinstance(meta.get("tensors"), list) else 0
    nt = draw(st.sampled_from([nt, nt, nt, nt + 1, max(nt - 1, 0)]))
    head = P.HEADER.pack(P.MAGIC, 1, kind % 256, draw(st.integers(0, 3)), nt, 0, len(raw))
    frames = [head + raw] + [b"\0" * draw(st.sampled_from([0, 4, 8, 12, 16, 24, 64, 65])) for _ in range(nt)]
    return frames


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages(), st.sampled_from([L, _SMALL]))
def test_decode_native_agrees_with_python_on_generated_messages(frames, limits):
    _check(frames, limits)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(sorted(COMMON)), st.data())
def test_decode_native_agrees_with_python_on_mutated_messages(name, data):
    """A fuzzer's view: bytes of real messages overwritten, inserted, cut and spliced."""
    frames = [bytearray(bytes(f)) for f in COMMON[name]]
    i = data.draw(st.integers(0, len(frames) - 1))
    f = frames[i]
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "insert", "cut", "token"]))
        pos = data.draw(st.integers(0, len(f)))
        if op == "set" and pos < len(f):
            f[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            f[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif op == "cut":
            del f[pos:pos + data.draw(st.integers(1, 8))]
        else:
            f[pos:pos] = data.draw(st.sampled_from([b"\\", b"\\u0041", b"\xc3\xa9", b"\xed\xa0\x80", b"1e400", b"-0",
                                                    b"01", b"1.", b".5", b"1e", b"9" * 19, b"null", b"true", b"[",
                                                    b"{", b"}", b"]", b",", b":", b'"', b"\t", b"\x00", b"NaN"]))
    if i == 0 and data.draw(st.booleans()):  # keep the header's length consistent so the JSON is reached
        f[12:16] = max(len(f) - 16, 0).to_bytes(4, "little")
    _check([bytes(x) for x in frames])


def test_decode_declines_each_malformed_case_of_the_protocol_table():
    from tests.test_protocol import MALFORMED

    for name, (frames, err) in MALFORMED.items():
        assert _native_decode(frames) is None, name
        with pytest.raises(err):
            P.decode(frames)


@pytest.mark.parametrize("text", [
    b'{"id":1,"id":2}', b'{"id":1}  ', b'  {"id":1}', b'{"id":-0}', b'{"id":1.0}', b'{"id":1e0}', b'{"id":01}',
    b'{"msg":"\\u00e9"}', b'{"msg":"\xc3\xa9"}', b'{"msg":"a\\"b"}', b'{"msg":"\x01"}', b'{"load":{"q":1e400}}',
    b'{"id":123456789012345678}', b'{"id":1234567890123456789}', b'{"id":9223372036854775807}', b'[1]', b'1', b'"x"',
    b'{"zz":' + b"[" * 70 + b"]" * 70 + b"}", b'{"zz":' + b"[" * 10 + b"]" * 10 + b"}", b'{"zz":[1,]}', b'{"zz":{,}}',
    b'{"service_ms":-0.0}', b'{"service_ms":5e-324}', b'{"load":{"a":true}}', b'{"load":{"a":null}}', b'{"id":nul}',
    b'{"id":1}\x00', b'{"a"  :  1 , "b" : [ 1 , 2 ] }', b'{}', b'{ }', b''])
def test_decode_agrees_on_json_corner_cases(text):
    frames = [P.HEADER.pack(P.MAGIC, 1, Kind.HEARTBEAT, 0, 0, 0, len(text)) + text]
    handled = _check(frames)
    if text in (b'{"id":1,"id":2}', b'{"msg":"\\u00e9"}', b'{"id":1234567890123456789}'):
        assert not handled  # outside the subset: the Python path decides, and accepts
        assert isinstance(_py(frames), P.Message)
    if text in (b'{"id":1}  ', b'{"a"  :  1 , "b" : [ 1 , 2 ] }', b'{"id":-0}', b'{}', b''):
        assert handled, text


def test_decode_views_keep_their_frames_and_refuse_writes():
    buf = bytearray(b"\0" * 24)
    frames = [bytes(COMMON["INFER"][0]), buf, bytes(COMMON["INFER"][2])]
    msg = P.decode(frames)
    assert msg.buffers[0].readonly and msg.buffers[0].obj is buf
    with pytest.raises(TypeError):
        msg.buffers[0][0] = 1
    x = msg.arrays()["x"]
    buf[0:4] = np.float32(3.0).tobytes()
    assert x[0, 0] == 3.0 and not x.flags.writeable


# -- views: Message.arrays for raw tensors -------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(P.DTYPES), st.lists(st.integers(0, 4), max_size=P.MAX_NDIM)), max_size=4),
       st.integers(-2, 2))
def test_views_agree_with_unpack(tensors, skew):
    rng = np.random.default_rng(0)
    arrays = {f"t{i}": (rng.random(s) * 100).astype(d) for i, (d, s) in enumerate(tensors)}
    specs, frames = P.pack_raw(arrays)
    bufs = [memoryview(f.tobytes()).toreadonly() for f in frames]
    metas = [P.TensorMeta(s["name"], s["dtype"], tuple(s["shape"])) for s in specs]
    native = K.wire_views(metas, bufs, "raw")
    ref = P.unpack(metas, bufs, "raw")
    assert list(native) == list(ref)
    for k in ref:
        assert native[k].dtype == ref[k].dtype and native[k].shape == ref[k].shape
        assert np.array_equal(native[k], ref[k], equal_nan=True) and not native[k].flags.writeable
    if bufs and skew:  # a frame of the wrong length: declined, and unpack says what is wrong
        bufs[0] = memoryview(bytes(max(bufs[0].nbytes + skew, 0))).toreadonly()
        if bufs[0].nbytes != metas[0].nbytes:
            assert K.wire_views(metas, bufs, "raw") is None
            with pytest.raises(P.BadTensor):
                P.unpack(metas, bufs, "raw")


def test_views_from_numpy_c_api_hold_their_frame_and_any_alignment():
    """The views come from numpy's C API (PyArray_NewFromDescr): the frame's memoryview is
    their base (the frame lives as long as the array), a frame at an odd address gives an
    unaligned array with the right values, and none is writeable."""
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    odd = memoryview(b"\0" + x.tobytes())[1:].toreadonly()
    m = P.TensorMeta("x", "float64", (2, 3, 4))
    v = K.wire_views([m], [odd], "raw")["x"]
    assert v.base is odd and not v.flags.writeable and v.flags.c_contiguous
    assert not v.flags.aligned and np.array_equal(v, x)
    aligned = memoryview(x.tobytes()).toreadonly()
    w = K.wire_views([m], [aligned], "raw")["x"]
    assert w.base is aligned and np.array_equal(w, x) and w.strides == x.strides


def test_views_decline_what_is_not_plain_raw():
    m = P.TensorMeta("x", "float32", (2,))
    ok = memoryview(bytes(8)).toreadonly()
    assert K.wire_views([m], [ok], "raw")["x"].shape == (2,)
    assert K.wire_views([m], [ok], ["raw"])["x"].shape == (2,)
    for specs, bufs, codecs in (([m], [ok], "fp16+lz4"), ([m], [ok], ["int8"]), ([m], [memoryview(bytearray(8))], "raw"),
                                ([m], [b"\0" * 8], "raw"), ([("x", "float32", (2,))], [ok], "raw"), ([m], [], "raw"),
                                ([P.TensorMeta("x", "complex64", (1,))], [ok], "raw"), ([m], [ok], ["raw", "raw"])):
        assert K.wire_views(specs, bufs, codecs) is None


# -- encode ---------------------------------------------------------------------------------
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**65, 2**65) | st.floats() | st.text(max_size=4)
    | st.sampled_from(["plain", 'q"uote', "back\\slash", "tab\t", "é", "\ud800", "\x7f"])
    | st.sampled_from([np.float32(0.5), np.int64(3), 2**63 - 1, -2**63, 2**63, 1e-7, 1e22, 5e-324]),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=3) | st.sampled_from([1, "é"]), inner, max_size=3),
    max_leaves=8)


def _encode_ref(kind, meta, n, flags, limits):
    try:
        return P._encode_py(kind, meta, [b""] * n, flags, limits)[0]
    except (ValueError, TypeError, OverflowError, P.TooLarge) as e:  # struct.error is neither: caught below
        return type(e)
    except Exception as e:  # struct.error (a header field out of range)
        return type(e)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([1, 2, 3, 6, 11, 0, 255, 256, -1]), st.dictionaries(st.text(max_size=4), _json_values, max_size=5),
       st.sampled_from([0, 1, 2, 0xFFFF, 0x10000]), st.sampled_from([0, 1, 3]), st.sampled_from([L, P.Limits(max_meta=24)]))
def test_encode_native_agrees_with_python(kind, meta, flags, n, limits):
    ref = _encode_ref(kind, meta, n, flags, limits)
    native = K.wire_encode(kind, meta, flags, n, limits.max_meta)
    if native is None:
        return
    assert type(ref) is bytes, ("native wrote what Python refuses", ref, meta)
    assert native[:12] == ref[:12]  # floats may be spelled differently (1e-07, 1e-7): lengths may differ
    assert int.from_bytes(native[12:16], "little") == len(native) - 16 <= limits.max_meta
    assert json.loads(native[16:]) == json.loads(ref[16:])


@pytest.mark.parametrize("meta", [
    {"id": 1, "budget_ms": 1000, "pkg": "0" * 64, "cut": "c", "codec": "raw",
     "tensors": [{"name": "t", "dtype": "uint8", "shape": [65536]}]},
    {"id": 1, "tensors": []}, {}, {"load": {"queue": 0, "busy": 0.5}}, {"x": [1, 2.5, True, False, (3, 4)]}])
def test_encode_common_metadata_natively(meta):
    head = K.wire_encode(Kind.INFER, meta, 0, 1, L.max_meta)
    assert head is not None and json.loads(head[16:]) == json.loads(json.dumps(meta))
    assert head[:12] == P._encode_py(Kind.INFER, meta, [b""])[0][:12]


@pytest.mark.parametrize("meta", [{"cut": None}, {"x": float("nan")}, {"x": float("inf")}, {"msg": "é"},
                                  {"msg": 'a"b'}, {1: 2}, {"x": np.float64(1)}, {"id": 2**64}, {"x": {"y": object()}}])
def test_encode_leaves_the_rest_to_python(meta):
    assert K.wire_encode(Kind.HEARTBEAT, meta, 0, 0, L.max_meta) is None


# -- no leaks on any path (a refcount bug in C shows as blocks that are never freed) ----------
def test_native_framing_does_not_leak():
    cases = [[bytes(f) for f in COMMON[n]] for n in sorted(COMMON)]
    cases += [[b"EINF\x01"], [COMMON["INFER"][0][:-1] + b"!", b"", b""], [b"x" * 16]]
    bad_json = b'{"id":1,"tensors":[{"name":"x","dtype":"float32","shape":[1,-1]}]}'
    cases.append([P.HEADER.pack(P.MAGIC, 1, Kind.RESULT, 0, 1, 0, len(bad_json)) + bad_json, b""])
    metas = [{"id": 1, "budget_ms": 5.0, "pkg": "p", "tensors": [{"name": "x", "dtype": "float32", "shape": [2]}]},
             {"x": None}, {"x": [1, {"y": "é"}]}]
    packs = [{"x": np.zeros(3, np.float32), "y": np.zeros((2, 2), np.int8)}, {"x": np.zeros(3, ">f4")},
             {"x": np.zeros(3), "y": np.zeros((4, 4))[:, ::2]}]

    def once():
        for frames in cases:
            msg = _native_decode(frames)
            if msg is not None:
                K.wire_views(msg.tensors, msg.buffers, msg.codecs)  # declines the int8 one
        for m in metas:
            K.wire_encode(Kind.INFER, m, 0, 1, L.max_meta)
        for arrays in packs:
            K.wire_pack_raw(arrays)

    for _ in range(200):
        once()
    before = sys.getallocatedblocks()
    for _ in range(3000):
        once()
    assert sys.getallocatedblocks() - before < 200


# -- pack_raw -------------------------------------------------------------------------------
def _pack_py(arrays):
    return P._pack_raw_py(arrays)


_arrays = st.dictionaries(
    st.text(max_size=3),
    st.tuples(st.sampled_from(P.DTYPES + ("<f4", ">f4", ">i2", "complex64")), st.lists(st.integers(0, 3), max_size=4),
              st.sampled_from(["c", "f", "strided", "0d", "scalar", "list"])),
    max_size=4)


@settings(max_examples=400, deadline=None)
@given(_arrays)
def test_pack_raw_native_agrees_with_python(spec):
    arrays = {}
    for name, (dt, shape, how) in spec.items():
        a = np.zeros(shape, dtype=dt)
        if how == "f":
            a = np.asfortranarray(a)
        elif how == "strided" and a.ndim:
            a = np.zeros([*shape[:-1], shape[-1] * 2], dtype=dt)[..., ::2]
        elif how == "0d":
            a = np.zeros((), dtype=dt)
        elif how == "scalar":
            a = np.zeros((), dtype=dt)[()]
        elif how == "list":
            a = a.tolist()
        arrays[name] = a
    native = K.wire_pack_raw(arrays)
    try:
        ref = _pack_py(arrays)
    except P.BadTensor:
        assert native is None
        return
    if native is None:
        return
    assert native[0] == ref[0]
    assert all(n is r for n, r in zip(native[1], ref[1]))  # the arrays themselves, no copies


def test_pack_raw_takes_the_native_path_for_plain_arrays():
    arrays = {"x": np.zeros((2, 3), np.float32), "i": np.arange(4), "s": np.zeros((), np.uint8)}
    native = K.wire_pack_raw(arrays)
    assert native is not None and native == _pack_py(arrays)
    assert native[0][2] == {"name": "s", "dtype": "uint8", "shape": []}
    # outside it: Python (a view's non-contiguity, big-endian, a non-dict mapping, a non-str name)
    assert K.wire_pack_raw({"x": np.zeros((2, 4), np.float32)[:, ::2]}) is None
    assert K.wire_pack_raw({"x": np.zeros(2, ">f4")}) is None
    assert K.wire_pack_raw({1: np.zeros(2)}) is None
    assert K.wire_pack_raw([("x", np.zeros(2))]) is None


# -- the public entry points (protocol.decode / encode / pack_raw are the native functions) --
def test_decode_entry_binds_arguments_and_falls_back_like_python():
    frames = [bytes(f) for f in COMMON["INFER"]]
    small = P.Limits(max_tensor_bytes=8)
    for call in (lambda: P.decode(frames), lambda: P.decode(frames, L), lambda: P.decode(frames, limits=L),
                 lambda: P.decode(frames=frames), lambda: P.decode(tuple(frames), limits=P.Limits())):
        _same(call(), P._decode_py(frames))
    with pytest.raises(P.TooLarge) as native:  # a Limits of the caller's own is honoured
        P.decode(frames, small)
    with pytest.raises(P.TooLarge) as ref:
        P._decode_py(frames, small)
    assert str(native.value) == str(ref.value)
    for bad in (lambda: [], lambda: [b"EINF"], lambda: [frames[0]], lambda: iter(frames)):  # each refusal: Python's
        with pytest.raises((ProtocolError, TypeError)) as native:
            P.decode(bad())
        with pytest.raises((ProtocolError, TypeError)) as ref:
            P._decode_py(bad())
        assert type(native.value) is type(ref.value) and str(native.value) == str(ref.value)
    with pytest.raises(TypeError, match="unexpected keyword"):
        P.decode(frames, limit=L)
    with pytest.raises(TypeError, match="at most 2 positional"):
        P.decode(frames, L, 1)
    with pytest.raises(TypeError, match="missing required argument 'frames'"):
        P.decode()
    with pytest.raises(TypeError, match="multiple values"):
        P.decode(frames, frames=frames)


def test_encode_entry_binds_arguments_and_falls_back_like_python():
    meta = {"id": 1, "tensors": []}
    assert P.encode(Kind.RESULT, meta) == P._encode_py(Kind.RESULT, meta)
    assert P.encode(Kind.RESULT, meta, flags=P.FLAG_CACHED)[0][6] == P.FLAG_CACHED
    assert P.encode(Kind.RESULT, meta, [], 1, L) == P._encode_py(Kind.RESULT, meta, [], 1, L)
    a = np.zeros(3, np.float32)
    out = P.encode(kind=Kind.INFER, meta={"id": 1}, frames=(a, b"x"))
    assert out[1] is a and out[2] == b"x" and len(out) == 3
    assert P.decode(P.encode(Kind.HEARTBEAT, {"cut": None})).meta == {"cut": None}  # null: the Python writer
    with pytest.raises(P.TooLarge):
        P.encode(Kind.HEARTBEAT, {"msg": "x" * 100}, limits=P.Limits(max_meta=32))
    with pytest.raises(ValueError):
        P.encode(Kind.HEARTBEAT, {"x": float("nan")})
    with pytest.raises(TypeError):  # what len() of a generator raises in the Python path
        P.encode(Kind.INFER, {"id": 1}, (f for f in [b""]))
    with pytest.raises(TypeError, match="missing required argument 'meta'"):
        P.encode(Kind.HEARTBEAT)
    with pytest.raises(TypeError, match="unexpected keyword"):
        P.encode(Kind.HEARTBEAT, {}, flag=1)


def test_pack_raw_entry_falls_back_for_what_it_declines():
    strided = np.zeros((2, 4), np.float32)[:, ::2]
    specs, frames = P.pack_raw({"x": strided, "y": [1.0, 2.0]})
    assert specs == [{"name": "x", "dtype": "float32", "shape": [2, 2]}, {"name": "y", "dtype": "float64", "shape": [2]}]
    assert frames[0].flags.c_contiguous and np.array_equal(frames[0], strided)
    with pytest.raises(P.BadTensor):
        P.pack_raw({"x": np.zeros(2, np.complex64)})
    from collections import OrderedDict
    assert P.pack_raw(OrderedDict(x=np.zeros(2)))[0] == [{"name": "x", "dtype": "float64", "shape": [2]}]


def test_message_fields_are_what_the_native_decoder_sets():
    # wire.cpp fills a Message's six fields directly (no __init__): a new field or a
    # __post_init__ would be silently skipped on the native path
    import dataclasses

    assert [f.name for f in dataclasses.fields(P.Message)] == ["kind", "meta", "tensors", "buffers", "flags", "codecs"]
    assert not hasattr(P.Message, "__post_init__")
    assert P.TensorMeta._fields == ("name", "dtype", "shape")
