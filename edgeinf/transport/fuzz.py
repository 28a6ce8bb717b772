"""Structured fuzzing of a live server (worker or broker) over a real socket.

Messages are generated from the protocol schema and mutated field by field: a known
field set to a value of another type, size or script, or deleted; tensor entries with
foreign dtypes, shapes and names; header fields (magic, version, kind, counts, lengths);
frame structure (dropped, added, empty, one byte short or long); raw metadata that is not
JSON, not UTF-8, too deep or too large a number. A mutation is a plain tuple::

    ("set", path, value)   ("del", path)   ("header", field, value)
    ("frames", op, n)      ("meta", raw_bytes)

so the same mutations come from hypothesis strategies (:func:`mutations`, for tests; they
shrink) or from a seeded ``random.Random`` (:func:`random_mutations`, for ``edgeinf bench
hardening``), and :func:`apply` turns a base message plus mutations into frames.
:func:`run` sends each to an endpoint followed by a sentinel request, and counts what came
back before the sentinel's answer. The server under test must answer every message with
an ERROR (or stay silent where the protocol says so), never ``ERROR INTERNAL``, never a
malformed reply, and must still be alive and serving afterwards. Test-only code: nothing
on a request path imports it.
"""
from __future__ import annotations

import json
import random
import struct
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from . import protocol
from .protocol import ErrorCode, Kind

HEADER_FIELDS = ("magic", "version", "kind", "flags", "ntensors", "reserved", "meta_len")
FRAME_OPS = ("drop", "add", "empty", "short", "long", "garbage0", "only_header", "none")
SENTINEL_ID = 2**62  # ids of sentinel requests (an unknown package: answered at once, never run)
SPECIAL = [None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, -(2**63), 10**30, 1e308, -1e308, 0.5, -0.0,
           "", "x" * 300, "é" * 2000, "\U0001F600" * 1500, "\ud800", "\x00", "float32", "raw", "jpeg90", "int8",
           [], [1], [[[]]], ["a"] * 100, {}, {"a": 1}, {"name": "x", "dtype": "float32", "shape": [1]}]
BAD_DTYPES = ["object", "O", "float128", "<f4", "complex64", "str", "U8", "", "float32 ", "FLOAT32", [], {}, 3, None]
RAW_META = [b"\xff\xfe", b"[]", b"1", b'"x"', b"null", b'{"budget_ms": NaN}', b'{"id": Infinity}',
            b"[" * 4000 + b"]" * 4000, b'{"id": ' + b"9" * 5000 + b"}", b'{"a": 1, "a": [1,2]}',
            b"\xef\xbb\xbf{}", b"{" + b" " * 8000 + b"}", b'{"tensors": {}}', b"{\"id\": 1"]


@dataclass
class Base:
    """A valid message to mutate: kind, metadata and frames (bytes)."""

    kind: Kind
    meta: dict
    frames: List[bytes] = field(default_factory=list)


def infer_base(pkg_hash: str, arrays: Dict[str, np.ndarray], cut: Optional[str] = None,
               client: str = "fuzz") -> Base:
    """A valid INFER for a graph taking ``arrays`` (raw codec)."""
    specs, frames = protocol.pack_raw(arrays)
    meta = {"id": 1, "budget_ms": 5000.0, "pkg": pkg_hash, "cut": cut, "codec": "raw", "client": client,
            "tensors": specs}
    return Base(Kind.INFER, meta, [np.ascontiguousarray(f).tobytes() for f in frames])


def llm_base(model: str, tokens: Sequence[int], client: str = "fuzz") -> Base:
    """A valid LLM ``open`` (a session on ``model`` with history ``tokens``)."""
    arr = np.asarray(tokens, np.int32)
    meta = {"id": 1, "budget_ms": 5000.0, "op": "open", "model": model, "n": 1, "client": client,
            "tensors": [{"name": "tokens", "dtype": "int32", "shape": [int(arr.size)]}]}
    return Base(Kind.LLM, meta, [arr.tobytes()])


def control_bases() -> List[Base]:
    """HELLO, HEARTBEAT and CANCEL: the other kinds a client may send."""
    return [Base(Kind.HELLO, {}), Base(Kind.HEARTBEAT, {}), Base(Kind.CANCEL, {"id": 1, "client": "fuzz"})]


# -- applying mutations ----------------------------------------------------------------------
def _paths(base: Base) -> List[tuple]:
    paths = [(k,) for k in base.meta] + [(k,) for k in protocol._SCHEMA if k not in base.meta] + [("zz_unknown",)]
    for i, t in enumerate(base.meta.get("tensors", [])):
        paths += [("tensors", i, k) for k in t] + [("tensors", i, "shape", 0), ("tensors", i + 1)]
    return paths


def _set(meta, path, value, delete=False) -> None:
    obj = meta
    for p in path[:-1]:
        try:
            obj = obj[p]
        except (KeyError, IndexError, TypeError):
            return
    last = path[-1]
    try:
        if delete:
            del obj[last]
        elif isinstance(obj, list) and isinstance(last, int) and last >= len(obj):
            obj.append(value)
        else:
            obj[last] = value
    except (KeyError, IndexError, TypeError):
        pass


def apply(base: Base, muts: Sequence[tuple]) -> List[bytes]:
    """Frames of ``base`` with ``muts`` applied, in order."""
    meta = json.loads(json.dumps(base.meta))
    frames = list(base.frames)
    head = dict(zip(HEADER_FIELDS, (protocol.MAGIC, protocol.PROTOCOL_VERSION, int(base.kind), 0, None, 0, None)))
    raw = None
    for m in muts:
        if m[0] == "set":
            _set(meta, m[1], m[2])
        elif m[0] == "del":
            _set(meta, m[1], None, delete=True)
        elif m[0] == "header":
            head[m[1]] = m[2]
        elif m[0] == "meta":
            raw = m[1]
        elif m[0] == "frames":
            frames = _frames(frames, m[1], m[2])
    if raw is None:
        raw = json.dumps(meta, separators=(",", ":")).encode()
    n = len(frames) if head["ntensors"] is None else head["ntensors"]
    ml = len(raw) if head["meta_len"] is None else head["meta_len"]
    try:
        frame0 = protocol.HEADER.pack(head["magic"], head["version"], head["kind"], head["flags"], n,
                                      head["reserved"], ml) + raw
    except struct.error:  # a header value out of its field's range: send it as garbage instead
        frame0 = bytes(16) + raw
    return [frame0, *frames]


def _frames(frames: List[bytes], op: str, n: int) -> List[bytes]:
    i = n % len(frames) if frames else 0
    if op == "drop" and frames:
        return frames[:i] + frames[i + 1:]
    if op == "add":
        return frames + [bytes(n % 4096)]
    if op == "empty" and frames:
        return frames[:i] + [b""] + frames[i + 1:]
    if op == "short" and frames and frames[i]:
        return frames[:i] + [frames[i][:-1]] + frames[i + 1:]
    if op == "long" and frames:
        return frames[:i] + [frames[i] + b"\0" * (1 + n % 8)] + frames[i + 1:]
    if op == "garbage0":
        return [random.Random(n).randbytes(n % 512)] + frames  # an extra, garbage first frame
    if op == "none":
        return []
    return frames


# -- generating mutations: seeded random (bench) ----------------------------------------------
def _random_value(r: random.Random, depth: int = 0):
    pick = r.random()
    if pick < 0.5 or depth > 2:
        return r.choice(SPECIAL)
    if pick < 0.6:
        return r.randint(-(2**70), 2**70)
    if pick < 0.7:
        return "".join(chr(r.choice([r.randint(32, 126), r.randint(0x80, 0xD7FF), r.randint(0xE000, 0x10FFFF)]))
                       for _ in range(r.randint(0, 400)))
    if pick < 0.85:
        return [_random_value(r, depth + 1) for _ in range(r.randint(0, 5))]
    return {str(_random_value(r, 3))[:8]: _random_value(r, depth + 1) for _ in range(r.randint(0, 5))}


def random_mutation(base: Base, r: random.Random) -> tuple:
    what = r.random()
    paths = _paths(base)
    if what < 0.45:
        path = r.choice(paths)
        if path[-1] == "dtype" and r.random() < 0.6:
            return ("set", path, r.choice(BAD_DTYPES))
        return ("set", path, _random_value(r))
    if what < 0.55:
        return ("del", r.choice(paths))
    if what < 0.75:
        f = r.choice(HEADER_FIELDS)
        values = {"magic": [b"EINX", b"\0\0\0\0", b"einf"], "version": [0, 2, 255], "kind": [0, 11, 99, 255, *Kind],
                  "flags": [1, 0xFFFF], "ntensors": [0, 2, 64, 65, 0xFFFF], "reserved": [1, 0xFFFF],
                  "meta_len": [0, 1, 8193, 2**32 - 1]}[f]
        return ("header", f, int(r.choice(values)) if f != "magic" else r.choice(values))
    if what < 0.9:
        return ("frames", r.choice(FRAME_OPS), r.randint(0, 10**6))
    return ("meta", r.choice(RAW_META))


def random_mutations(bases: Sequence[Base], seed: int = 0) -> Iterable[Tuple[Base, List[tuple]]]:
    """An endless stream of (base, 1-3 mutations), reproducible from ``seed``."""
    r = random.Random(seed)
    while True:
        base = r.choice(bases)
        yield base, [random_mutation(base, r) for _ in range(r.choice((1, 1, 1, 2, 3)))]


# -- generating mutations: hypothesis (tests) -------------------------------------------------
def mutations(base: Base):
    """A hypothesis strategy of 1-3 mutations of ``base`` (hypothesis is a test dependency)."""
    from hypothesis import strategies as st

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=300) | st.sampled_from(SPECIAL),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=8)
    paths = st.sampled_from(_paths(base))
    dtype_path = [p for p in _paths(base) if p[-1] == "dtype"]
    one = st.one_of(
        st.tuples(st.just("set"), paths, json_values),
        *([st.tuples(st.just("set"), st.sampled_from(dtype_path), st.sampled_from(BAD_DTYPES))] if dtype_path else []),
        st.tuples(st.just("del"), paths),
        st.tuples(st.just("header"), st.sampled_from(HEADER_FIELDS[1:]), st.integers(0, 2**32 - 1)),
        st.tuples(st.just("header"), st.just("magic"), st.binary(min_size=4, max_size=4)),
        st.tuples(st.just("frames"), st.sampled_from(FRAME_OPS), st.integers(0, 10**6)),
        st.tuples(st.just("meta"), st.sampled_from(RAW_META) | st.binary(max_size=200)))
    return st.lists(one, min_size=1, max_size=3)


# -- running against a live endpoint -------------------------------------------------------
@dataclass
class Report:
    sent: int = 0
    replies: Dict[str, int] = field(default_factory=dict)  # first reply kind (or "silent") per message
    codes: Dict[str, int] = field(default_factory=dict)    # ERROR codes seen
    bad_replies: int = 0   # replies that do not decode: a server bug
    lost_sentinels: int = 0  # no sentinel answer in time: the server stalled, died or dropped us

    def to_dict(self) -> dict:
        return {"sent": self.sent, "replies": dict(self.replies), "codes": dict(self.codes),
                "bad_replies": self.bad_replies, "lost_sentinels": self.lost_sentinels}


class Fuzzer:
    """A DEALER that sends mutated messages to ``endpoint``, each followed by a sentinel."""

    def __init__(self, endpoint: str, sentinel: Base, ctx=None, timeout: float = 5.0):
        import zmq

        self.zmq, self.timeout, self.sentinel = zmq, timeout, sentinel
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.report = Report()
        self._n = 0

    def send(self, frames: List[bytes]) -> Optional[str]:
        """Send one message and a sentinel; the first reply kind before the sentinel's, or "silent"."""
        self._n += 1
        sid = SENTINEL_ID + self._n
        sentinel = protocol.encode(Kind.INFER, {**self.sentinel.meta, "id": sid}, self.sentinel.frames)
        self.sock.send_multipart(frames if frames else [b""], copy=False)
        self.sock.send_multipart(sentinel, copy=False)
        self.report.sent += 1
        first, end = None, time.monotonic() + self.timeout
        while time.monotonic() < end:
            if not self.sock.poll(max(int((end - time.monotonic()) * 1000), 1)):
                break
            try:
                msg = protocol.decode(self.sock.recv_multipart())
            except protocol.ProtocolError:
                self.report.bad_replies += 1
                continue
            if msg.id == sid:
                first = first or "silent"
                break
            self._count(msg)
            first = first or msg.kind.name
        else:
            first = None
        if first is None:
            self.report.lost_sentinels += 1
            return None
        self.report.replies[first] = self.report.replies.get(first, 0) + 1
        return first

    def _count(self, msg: protocol.Message) -> None:
        if msg.kind == Kind.ERROR:
            try:
                name = ErrorCode(msg.meta["code"]).name
            except ValueError:
                name = str(msg.meta["code"])
            self.report.codes[name] = self.report.codes.get(name, 0) + 1

    def drain(self, wait: float = 0.5) -> None:
        """Count late answers (admitted requests finishing) for ``wait`` seconds."""
        end = time.monotonic() + wait
        while self.sock.poll(max(int((end - time.monotonic()) * 1000), 0)):
            try:
                self._count(protocol.decode(self.sock.recv_multipart()))
            except protocol.ProtocolError:
                self.report.bad_replies += 1

    def close(self) -> None:
        self.sock.close(linger=0)


def unknown_package_sentinel(base: Base) -> Base:
    """``base`` (an INFER) for a package nobody serves: answered at once with an ERROR."""
    return Base(Kind.INFER, {**base.meta, "pkg": "0" * 64, "client": "fuzz-sentinel"}, base.frames)


def run(endpoint: str, bases: Sequence[Base], n: int, seed: int = 0, timeout: float = 5.0) -> Report:
    """Send ``n`` random structured mutations of ``bases`` to ``endpoint`` (worker or broker)."""
    infer = next(b for b in bases if b.kind == Kind.INFER)
    fz = Fuzzer(endpoint, unknown_package_sentinel(infer), timeout=timeout)
    try:
        for _, (base, muts) in zip(range(n), random_mutations(bases, seed)):
            fz.send(apply(base, muts))
        fz.drain()
        return fz.report
    finally:
        fz.close()
