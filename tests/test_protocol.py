"""Wire protocol: pinned numbers, round trips, and a table of malformed messages."""
import ast
import json
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeinf.errors import ProtocolError
from edgeinf.transport import protocol as P
from edgeinf.transport.protocol import ErrorCode, Kind


def test_numbers_are_pinned():
    # the wire format: changing any of these breaks every deployed peer
    assert P.HEADER.size == 16 and P.MAGIC == b"EINF" and P.PROTOCOL_VERSION == 1
    assert {k.name: int(k) for k in Kind} == {
        "HELLO": 1, "INFER": 2, "RESULT": 3, "ERROR": 4, "BUSY": 5, "HEARTBEAT": 6, "LOAD": 7,
        "READY": 8, "DISCONNECT": 9, "CANCEL": 10, "LLM": 11}
    assert {c.name: int(c) for c in ErrorCode} == {
        "PROTOCOL": 1, "VERSION": 2, "UNKNOWN_PACKAGE": 3, "UNKNOWN_CUT": 4, "BAD_INPUT": 5, "CODEC": 6,
        "EXPIRED": 7, "BACKEND": 8, "AUTH": 9, "INTERNAL": 10, "NO_WORKER": 11, "RETRY_WINDOW": 12,
        "CANCELLED": 13, "SESSION": 14, "UNKNOWN_MODEL": 15}


def test_protocol_module_is_pure():
    src = open(P.__file__).read()
    mods = {a.name for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.startswith("zmq") for m in mods) and "pickle" not in mods


def _infer(arrays, **meta):
    specs, frames = P.pack_raw(arrays)
    base = {"id": 7, "budget_ms": 100.0, "pkg": "ab" * 32, "cut": "c1", "codec": "raw", "tensors": specs}
    return P.encode(Kind.INFER, {**base, **meta}, frames)


def _bytes(frames):
    return [f.tobytes() if isinstance(f, np.ndarray) else bytes(f) for f in frames]


_dtypes = st.sampled_from(P.DTYPES)
_shapes = st.lists(st.integers(0, 5), min_size=0, max_size=P.MAX_NDIM)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_dtypes, _shapes), min_size=0, max_size=4), st.integers(0, 2**63 - 1),
       st.floats(0, 3.6e6), st.text(max_size=40))
def test_round_trip(tensors, rid, budget, cut):
    rng = np.random.default_rng(0)
    arrays = {f"t{i}": (rng.random(shape) * 100).astype(dt) for i, (dt, shape) in enumerate(tensors)}
    frames = _bytes(_infer(arrays, id=rid, budget_ms=budget, cut=cut))
    msg = P.decode(frames)
    assert msg.kind == Kind.INFER and msg.id == rid and msg.meta["cut"] == cut
    out = msg.arrays()
    assert list(out) == list(arrays)
    for k, a in arrays.items():
        assert out[k].dtype == a.dtype and out[k].shape == a.shape and np.array_equal(out[k], a)
        assert not out[k].flags.writeable


def test_raw_tensors_are_views_not_copies():
    a = np.arange(1 << 16, dtype=np.float32)
    frames = _bytes(_infer({"x": a}))
    buf = bytearray(frames[1])
    out = P.decode([frames[0], buf]).arrays()["x"]
    buf[0:4] = struct.pack("<f", 42.0)  # the view sees writes to the frame it was built on
    assert out[0] == 42.0


def test_non_contiguous_and_big_endian_are_sent_as_little_endian_c_order():
    a = np.arange(12, dtype=">i4").reshape(3, 4)[:, ::2]
    out = P.decode(_bytes(_infer({"x": a}))).arrays()["x"]
    assert out.dtype == np.dtype("<i4") and np.array_equal(out, a)


def _header(kind=Kind.INFER, ntensors=1, meta_len=None, magic=P.MAGIC, version=1, reserved=0, meta=b"{}"):
    return P.HEADER.pack(magic, version, int(kind), 0, ntensors, reserved,
                         len(meta) if meta_len is None else meta_len) + meta


def _with_meta(**tensor):
    t = {"name": "x", "dtype": "float32", "shape": [2, 3], **tensor}
    meta = json.dumps({"id": 1, "budget_ms": 5, "pkg": "p", "tensors": [t]}).encode()
    return meta


GOOD = _bytes(_infer({"x": np.zeros((2, 3), np.float32)}))
_M = GOOD[0][16:]

MALFORMED = {
    "empty": ([], P.FrameCount),
    "short header": ([b"EINF\x01"], P.BadHeader),
    "bad magic": ([_header(magic=b"XXXX", meta=_M), GOOD[1]], P.BadMagic),
    "bad version": ([_header(version=2, meta=_M), GOOD[1]], P.BadVersion),
    "unknown kind": ([_header(kind=99, meta=_M), GOOD[1]], P.BadHeader),
    "reserved set": ([_header(reserved=1, meta=_M), GOOD[1]], P.BadHeader),
    "oversized meta declared": ([_header(meta_len=0xFFFFFFF0, meta=b""), GOOD[1]], P.TooLarge),
    "oversized meta sent": ([_header(meta=b" " * 9000), GOOD[1]], P.TooLarge),
    "trailing bytes": ([GOOD[0] + b"x", GOOD[1]], P.BadHeader),
    "meta length -1": ([_header(meta_len=len(_M) - 1, meta=_M), GOOD[1]], P.BadHeader),
    "wrong frame count": ([GOOD[0]], P.FrameCount),
    "too many frames": ([GOOD[0]] + [b""] * 70, P.FrameCount),
    "frames vs metadata": ([_header(ntensors=2, meta=_M), GOOD[1], GOOD[1]], P.FrameCount),
    "tensors on HEARTBEAT": ([_header(kind=Kind.HEARTBEAT, meta=b"{}"), b""], P.FrameCount),
    "not json": ([_header(meta=b"{nope"), GOOD[1]], P.BadMetadata),
    "json NaN": ([_header(meta=b'{"id": NaN}'), GOOD[1]], P.BadMetadata),
    "deep json": ([_header(meta=b"[" * 5000), GOOD[1]], P.BadMetadata),
    "not an object": ([_header(meta=b"[1]"), GOOD[1]], P.BadMetadata),
    "negative id": ([_header(meta=_M.replace(b'"id":7', b'"id":-7')), GOOD[1]], P.BadMetadata),
    "missing pkg": ([_header(meta=_M.replace(b'"pkg"', b'"pkx"')), GOOD[1]], P.BadMetadata),
    "object dtype": ([_header(meta=_with_meta(dtype="object")), GOOD[1]], P.BadTensor),
    "ndim 9": ([_header(meta=_with_meta(shape=[1] * 9)), GOOD[1]], P.BadTensor),
    "negative dim": ([_header(meta=_with_meta(shape=[-2, -3])), GOOD[1]], P.BadTensor),
    "float dim": ([_header(meta=_with_meta(shape=[2.0, 3])), GOOD[1]], P.BadTensor),
    "overflowing product": ([_header(meta=_with_meta(shape=[2**40, 2**40])), GOOD[1]], P.TooLarge),
    "length +1": ([GOOD[0], GOOD[1] + b"\0"], P.BadTensor),
    "length -1": ([GOOD[0], GOOD[1][:-1]], P.BadTensor),
    "int8 declared as float32": ([_header(meta=_with_meta(shape=[6])), b"\0" * 6], P.BadTensor),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_is_a_specific_error(case):
    frames, err = MALFORMED[case]
    with pytest.raises(err) as info:
        P.decode(frames)
    assert isinstance(info.value, ProtocolError) and str(info.value)


@pytest.mark.parametrize("case", ["oversized meta declared", "overflowing product", "length +1",
                                  "too many frames", "deep json"])
def test_rejection_allocates_little(case):
    frames, err = MALFORMED[case]
    tracemalloc.start()
    try:
        with pytest.raises(err):
            P.decode(frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"{case}: rejection peaked at {peak} bytes"


def test_encode_refuses_oversized_metadata_and_bad_dtype():
    with pytest.raises(P.TooLarge):
        P.encode(Kind.ERROR, {"code": 1, "msg": "x" * 10000})
    with pytest.raises(P.BadTensor, match="not allowed"):
        P.pack_raw({"x": np.array(["a"], dtype=object)})


def test_codec_frames_are_decoded_into_declared_shape():
    specs = [{"name": "x", "dtype": "float32", "shape": [4]}]
    frames = _bytes(P.encode(Kind.RESULT, {"id": 1, "codec": "fake", "tensors": specs}, [b"abc"]))
    msg = P.decode(frames)

    def decode(buf, out):
        out[:] = len(bytes(buf))
        return out

    assert msg.arrays(decode)["x"].tolist() == [3.0] * 4

    def wrong(buf, out):
        return np.zeros(5, np.float32)

    with pytest.raises(P.BadTensor, match="decoded to float32"):
        msg.arrays(wrong)


def test_tensor_codec_overrides_the_message_codec_per_tensor():
    ids, x = np.array([2**62 + 1, -5], np.int64), np.arange(4, dtype=np.float32)
    specs = [{"name": "ids", "dtype": "int64", "shape": [2], "codec": "raw"},
             {"name": "x", "dtype": "float32", "shape": [4]}]
    frames = _bytes(P.encode(Kind.RESULT, {"id": 1, "codec": "fake", "tensors": specs}, [ids, b"abc"]))
    msg = P.decode(frames)
    assert msg.codec == "fake" and msg.codecs == ["raw", "fake"]
    seen = []

    def decode(buf, out):
        seen.append(bytes(buf))
        out[:] = 1.0
        return out

    out = msg.arrays(decode)
    assert seen == [b"abc"] and out["ids"].tolist() == ids.tolist() and not out["ids"].flags.writeable
    assert out["x"].tolist() == [1.0] * 4
    specs[0]["shape"] = [3]  # a raw tensor's frame length is checked whatever the message's codec
    with pytest.raises(P.BadTensor, match="needs exactly 24 bytes"):
        P.decode(_bytes(P.encode(Kind.RESULT, {"id": 1, "codec": "fake", "tensors": specs}, [ids, b"abc"])))


def test_fast_json_paths_match_the_standard_library():
    meta = {"id": 3, "budget_ms": 12.5, "msg": "caf\u00e9 \u2028 \"q\"", "load": {"q": -0.0}, "cut": None}
    assert P._dumps(meta) == json.dumps(meta, separators=(",", ":"), allow_nan=False)
    with pytest.raises(ValueError):
        P._dumps({"x": float("nan")})
    for text in ('{"a":1}', ' {"a":1} ', '{"a":1} x', "", "  ", "[1]", '{"a":NaN}'):
        try:
            want = ("ok", json.loads(text, parse_constant=P._reject_constant))
        except ValueError as e:
            want = ("err", type(e))
        try:
            got = ("ok", P._loads(text))
        except ValueError as e:
            got = ("err", type(e))
        assert got == want, text
