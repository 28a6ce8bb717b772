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
    # what goes on the wire (orjson where it can): the same values, and a NaN still refused
    # at the sender (orjson alone would write it as null)
    assert P._orjson is not None, "orjson is a dependency: pip install orjson"
    for m in (meta, {**meta, "cut": "c"}, {"load": {"q": np.float64(0.5)}, 1: "int key"}, {"id": 2**70},
              {"msg": "lone \ud800 surrogate"}, {"tensors": [{"name": "x", "dtype": "float32", "shape": [1, 2]}]}):
        assert json.loads(P._dump_bytes(m)) == json.loads(json.dumps(m, separators=(",", ":"))), m
    for bad in ({"x": float("nan")}, {"load": {"q": float("inf")}}, {"t": [{"s": -float("inf")}]}):
        with pytest.raises(ValueError):
            P._dump_bytes(bad)
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


# -- the fast paths (compiled metadata checks, inline header and tensor-entry checks) must
#    accept exactly what the reference checks accept, and refuse with the same error
_hostile = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.sampled_from([0, 1, 255, 256, 1024, 1025, 2**63 - 1, 2**63])
    | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-1e12, 1e12, 3.6e6, 3.6e6 + 1, 1e11, 0.0, -0.0, 1.0])
    | st.text(max_size=3) | st.sampled_from(["a" * 64, "a" * 65, "a" * 128, "a" * 129, "open", "verify", "nope"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3) | st.just("a" * 33), inner, max_size=4),
    max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(P._CHECKS)), _hostile)
def test_each_compiled_check_agrees_with_the_schema(key, value):
    fast = P._fast_check((Kind.HEARTBEAT, key))  # HEARTBEAT: no required key
    assert fast is not None
    assert fast({key: value}) == bool(P._SCHEMA[key](value)), (key, value)


def _outcome(fn, *args):
    try:
        fn(*args)
        return "ok"
    except ProtocolError as e:
        return type(e), str(e)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Kind)),
       st.dictionaries(st.sampled_from(sorted(P._CHECKS)) | st.just("zz_unknown"), _hostile, max_size=6))
def test_validate_fast_path_agrees_with_the_reference(kind, meta):
    assert _outcome(P.validate, kind, meta) == _outcome(P._validate, kind, meta)
    assert _outcome(P.validate, kind, meta) == _outcome(P.validate, kind, meta)  # cached: the same again


def test_compiled_checks_stay_bounded_and_never_see_unknown_keys(monkeypatch):
    monkeypatch.setattr(P, "_FAST", {})  # filled up here; the other tests keep theirs
    P.validate(Kind.HEARTBEAT, {"zz_unknown": 1, "id": 2})
    assert not any("zz_unknown" in sig for sig in P._FAST)
    keys = sorted(P._CHECKS)
    for i in range(3 * P._FAST_MAX):  # many orderings of known keys (what a fuzzer could send)
        try:
            P.validate(Kind.HEARTBEAT, {keys[(i + j) % len(keys)]: None for j in range(1 + i % 7)})
        except P.BadMetadata:
            pass  # most of these fields refuse None: only the cache size matters here
    assert len(P._FAST) <= P._FAST_MAX
    with pytest.raises(P.BadMetadata, match="'id' has an invalid value"):  # past the cap: the reference
        P.validate(Kind.HEARTBEAT, {"cut": None, "id": -1, "zz": 0})


_BOUNDS = [None, True, False, -1, 0, 1, 255, 256, 1024, 1025, 2**20, 2**20 + 1, 2**63 - 1, 2**63, -0.0, 0.0, 1.0,
           1.0000001, 10.0, 10.01, 3.6e6, 3.6e6 + 0.5, 1e9, 1e11, 1e11 + 1, 1e12, 1e12 + 1, -1e12, -1e12 - 1,
           -1e-9, float("inf"), float("nan"), "", "open", "step", "verify", "close", "opens", [], {}, [1], ["a"],
           [-1], [True], {"a": 1}, {"a": "1"}, {"a": ["x"]}, {"a" * 33: 1}, {"a": 1e12 + 1}, {1: 2}]
_BOUNDS += ["a" * n for n in (32, 33, 64, 65, 128, 129, 256, 257, 1024, 1025)]
_BOUNDS += [["a"] * 64, ["a"] * 65, ["a" * 257], [0] * 1024, [0] * 1025, {str(i): 0 for i in range(33)}]


@pytest.mark.parametrize("key", sorted(P._CHECKS))
def test_each_compiled_check_agrees_with_the_schema_at_the_bounds(key):
    fast = P._fast_check((Kind.HEARTBEAT, key))
    for value in _BOUNDS:
        assert fast({key: value}) == bool(P._SCHEMA[key](value)), (key, value)


_finite = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=6)  # what JSON can carry
_entries = st.fixed_dictionaries(
    {"name": st.text(max_size=3) | st.sampled_from(["a" * 256, "a" * 257]) | _finite, "dtype": st.sampled_from(P.DTYPES) | _finite,
     "shape": st.lists(st.sampled_from([0, 1, 2, 3, 4, -1, True, False, 2.0, 2**40]), max_size=9) | _finite},
    optional={"codec": st.sampled_from(["raw", "fake", "a" * 65]) | _finite, "zz": _finite}) | _finite
_SMALL = P.Limits(max_tensor_bytes=32)  # so that random shapes reach the size limit


@settings(max_examples=500, deadline=None)
@given(_entries, st.integers(0, 40))
def test_decode_tensor_entries_agree_with_tensor_meta(entry, frame_len):
    """decode's inline entry checks against _tensor_meta (+ the codec and length checks)."""
    sent = entry
    try:
        entry = (P._orjson.loads if P._orjson else json.loads)(json.dumps(entry))  # as a receiver sees it
    except ValueError:  # orjson refuses a lone surrogate: decode says the metadata is not JSON
        entry, want = None, P.BadMetadata
    try:
        if entry is None:
            raise ProtocolError("unparsed")
        spec = P._tensor_meta(entry, _SMALL)
        codec = entry.get("codec", "fake")  # the message's codec below
        if not P._SCHEMA["codec"](codec):
            want = P.BadMetadata
        elif codec == "raw" and spec.nbytes != frame_len:
            want = P.BadTensor
        elif frame_len > _SMALL.max_tensor_bytes:
            want = P.TooLarge
        else:
            want = spec
    except ProtocolError as e:
        want = P.BadMetadata if entry is None else (type(e), str(e))
    meta = json.dumps({"id": 1, "codec": "fake", "tensors": [sent]}).encode()
    frames = [_header(Kind.RESULT, 1, meta=meta), b"\0" * frame_len]
    try:
        got = P.decode(frames, _SMALL).tensors[0]
    except ProtocolError as e:
        got = (type(e), str(e))
    if want in (P.BadMetadata, P.BadTensor, P.TooLarge):
        assert type(got) is tuple and got[0] is want
    else:
        assert got == want


_headers = st.builds(
    lambda magic, version, kind, flags, n, reserved, meta_len, body, cut:
        (P.HEADER.pack(magic, version, kind, flags, n, reserved, meta_len) + body)[:cut],
    st.sampled_from([P.MAGIC, b"EINX"]), st.sampled_from([0, 1, 2]), st.sampled_from([0, 1, 6, 11, 12, 255]),
    st.integers(0, 0xFFFF), st.sampled_from([0, 1, 64, 65]), st.sampled_from([0, 1, 0x100]),
    st.sampled_from([0, 2, 3, 8192, 8193]), st.sampled_from([b"", b"{}", b"{} "]), st.sampled_from([None, 3, 15, 17]))


@settings(max_examples=500, deadline=None)
@given(_headers | st.binary(max_size=24))
def test_decode_header_fast_path_agrees_with_header(head):
    try:
        want = P._header(memoryview(head), P.DEFAULT_LIMITS)
    except ProtocolError as e:
        want = (type(e), str(e))
    try:
        m = P.decode([head])
        got = ("ok", m.kind, m.flags)
    except ProtocolError as e:
        got = (type(e), str(e))
    if len(want) == 2:  # the header is refused: decode refuses it with the same error
        assert got == want
    else:  # a valid header: decode may refuse the frame count or the metadata, never the header
        assert got == ("ok", *want[:2]) or got[0] in (P.FrameCount, P.BadMetadata)


def _json_texts():
    dumped = st.dictionaries(st.sampled_from(sorted(P._CHECKS)) | st.just("zz"), _hostile, max_size=5).map(
        lambda m: json.dumps(m, separators=(",", ":")).encode())  # NaN/Infinity included: both must refuse
    spliced = st.tuples(dumped, st.integers(0, 40), st.sampled_from(
        [b"", b" ", b"\\ud800", b"\xff", b"1e400", b"18446744073709551616", b"[" * 200, b"{", b",", b"\x00", b'"']))
    return dumped | spliced.map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:])


@settings(max_examples=400, deadline=None)
@given(_json_texts())
def test_orjson_metadata_parse_refuses_what_the_standard_library_refuses(raw):
    """orjson is only ever stricter (lone surrogates, 1e400, ints past 64 bits): every
    message the standard-library path refuses it refuses, and one it accepts it reads alike."""
    frames = [P.HEADER.pack(P.MAGIC, P.PROTOCOL_VERSION, Kind.HEARTBEAT, 0, 0, 0, len(raw)) + raw]
    fast = _outcome(P._decode_py, frames)  # the Python path (the native one: tests/test_wire.py)
    saved = P._orjson
    try:
        P._orjson = None
        slow = _outcome(P._decode_py, frames)
    finally:
        P._orjson = saved
    if slow != "ok":
        assert fast != "ok", raw
    elif fast == "ok":
        want = _decode_with_stdlib(frames).meta
        # documented: orjson reads an integer outside int64/uint64 as a float (the schema refuses
        # it in every known field; an unknown field keeps the float)
        assert P._decode_py(frames).meta == want or any(not -2**63 <= x < 2**64 for x in _ints(want)), raw
    else:  # refused only by orjson: one of the documented stricter cases, said as invalid metadata
        assert fast[0] is P.BadMetadata, (raw, fast)
        assert any(k in raw for k in (b"\\ud", b"\\uD", b"e4", b"E4", b"18446744073709551616")) or \
            any(len(str(abs(x))) > 19 for x in _ints(json.loads(raw))), (raw, fast)


def _decode_with_stdlib(frames):
    saved, P._orjson = P._orjson, None
    try:
        return P._decode_py(frames)
    finally:
        P._orjson = saved


def _ints(v):
    if type(v) is int:
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _ints(x)
    elif isinstance(v, list):
        for x in v:
            yield from _ints(x)
