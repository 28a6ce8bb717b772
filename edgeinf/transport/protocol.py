"""The edgeinf wire format: pure functions over lists of buffers (no ``import zmq``).

A message is a ZeroMQ multipart message. Frame 0 is a fixed 16-byte header followed by a
JSON metadata block; frames 1..n are raw tensor bytes (or codec buffers), one per tensor::

    frame 0, little-endian, 16 + meta_len bytes
    offset size  field
    0      4     magic      b"EINF"
    4      1     version    1 (PROTOCOL_VERSION)
    5      1     kind       Kind (HELLO=1 ... LLM=11)
    6      2     flags      bit 0: FLAG_CACHED (a RESULT replayed from the idempotency cache)
    8      2     ntensors   number of tensor frames that follow (== len(meta["tensors"]))
    10     2     reserved   0
    12     4     meta_len   bytes of UTF-8 JSON metadata (<= Limits.max_meta)
    16     ...   metadata   exactly meta_len bytes; nothing may follow
    frame 1..ntensors: tensor i, raw C-order little-endian bytes when its codec is "raw"
                       (len == prod(shape) * itemsize exactly), else an edgeinf.codec buffer;
                       tensor i's codec is meta["tensors"][i]["codec"], else meta["codec"]

Everything is checked before anything is allocated: frame count, header, lengths, then the
metadata is parsed (bounded) and schema-checked, and raw tensors become read-only numpy
views of the received frames (``np.frombuffer(..., count=n)``), never copies.
``docs/protocol.md`` is the long form of this docstring.
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .._native import kernels as _kernels
from ..errors import ProtocolError

try:
    # NOTE: metadata JSON is most of our per-message Python (docs/benchmarks.md, "Framing"); orjson
    # parses an INFER's in 2.4 us against 6 for the standard library's C scanner. It is also
    # stricter, and only ever refuses more: lone surrogates, numbers that overflow a double
    # (1e400), and integers past 64 bits parse as floats, which the schema then refuses
    import orjson as _orjson
except ImportError:  # a platform without its wheel: the standard library, same checks after parsing
    _orjson = None

MAGIC = b"EINF"
PROTOCOL_VERSION = 1
HEADER = struct.Struct("<4sBBHHHI")  # magic, version, kind, flags, ntensors, reserved, meta_len
_HS, _UNPACK = HEADER.size, HEADER.unpack_from
FLAG_CACHED = 0x1
MAX_NDIM = 8
_prod = math.prod
DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64")
# wire dtypes are little-endian; on little-endian hosts keep numpy's canonical dtype objects
# (the native codec binding compares dtype objects, not just their equivalence)
_DTYPES = {name: np.dtype(name) if sys.byteorder == "little" else np.dtype(name).newbyteorder("<")
           for name in DTYPES}
_NAMES = {dt: name for name, dt in _DTYPES.items()}  # dtype.name is slow; this is a dict hit


class Kind(IntEnum):
    """Message kinds. The numbers are the wire format: never renumber (a test pins them)."""

    HELLO = 1       # client -> server: capabilities; server -> client: packages, codecs, load
    INFER = 2       # client -> server: run a package graph on tensors
    RESULT = 3      # server -> client: output tensors + load report
    ERROR = 4       # server -> client: request failed, with an ErrorCode
    BUSY = 5        # server -> client: queue full or draining; run it elsewhere
    HEARTBEAT = 6   # both ways; the server's reply carries its load
    LOAD = 7        # server -> client/broker: load report on its own
    READY = 8       # worker -> broker: I can take work (with capacity)
    DISCONNECT = 9  # worker -> broker: I am leaving
    CANCEL = 10     # client -> server: I gave up on request ``id`` (ran it locally); drop it if not started
    LLM = 11        # client -> server: a language-model session operation (open/step/verify/close) on token ids


class ErrorCode(IntEnum):
    """Why a request failed (ERROR messages). Pinned by a test like Kind."""

    PROTOCOL = 1         # malformed message
    VERSION = 2          # unsupported protocol version
    UNKNOWN_PACKAGE = 3  # no package with that hash here
    UNKNOWN_CUT = 4      # the package has no such cut
    BAD_INPUT = 5        # tensor names, shapes or dtypes do not match the graph
    CODEC = 6            # codec unknown here, or buffer corrupt
    EXPIRED = 7          # the deadline passed before the request ran; it was not executed
    BACKEND = 8          # the engine failed on this request
    AUTH = 9             # the sender's key is not (or no longer) allowed
    INTERNAL = 10        # a bug on the server side
    NO_WORKER = 11       # broker: no live worker could take it
    RETRY_WINDOW = 12    # a retry of an id whose answer is no longer cached: refused, never run twice
    CANCELLED = 13       # the client cancelled it (CANCEL) before it started; it was not executed
    SESSION = 14         # LLM: no such session of yours (expired, evicted, foreign) or n_past mismatch: reopen
    UNKNOWN_MODEL = 15   # LLM: no language model of that name here


_TENSOR_KINDS = (Kind.INFER, Kind.RESULT, Kind.LLM)
_KINDS = {int(k): k for k in Kind}


# -- errors (each a specific ProtocolError so tests and peers can tell them apart) ---------
class BadHeader(ProtocolError):
    code = ErrorCode.PROTOCOL


class BadMagic(BadHeader):
    pass


class BadVersion(BadHeader):
    code = ErrorCode.VERSION


class FrameCount(ProtocolError):
    code = ErrorCode.PROTOCOL


class TooLarge(ProtocolError):
    code = ErrorCode.PROTOCOL


class BadMetadata(ProtocolError):
    code = ErrorCode.PROTOCOL


class BadTensor(ProtocolError):
    code = ErrorCode.BAD_INPUT


@dataclass(frozen=True)
class Limits:
    """What a receiver accepts; checked before any allocation."""

    max_meta: int = 8192                  # metadata JSON bytes
    max_tensors: int = 64                 # tensor frames per message
    max_tensor_bytes: int = 256 * 2**20   # one tensor, raw or decoded

    @property
    def max_frame(self) -> int:
        """For ``zmq.MAXMSGSIZE``: no single frame may be larger."""
        return max(self.max_tensor_bytes, HEADER.size + self.max_meta)


DEFAULT_LIMITS = Limits()


class TensorMeta(NamedTuple):
    """One tensor entry as checked by ``decode`` (immutable; a NamedTuple: built per tensor
    per message, where a frozen dataclass costs 3x)."""

    name: str
    dtype: str
    shape: Tuple[int, ...]

    @property
    def count(self) -> int:
        return _prod(self.shape)  # Python ints: no overflow

    @property
    def nbytes(self) -> int:
        return self.count * _DTYPES[self.dtype].itemsize

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class Message:
    """A checked message. ``buffers[i]`` is tensor i's frame (a view, not a copy)."""

    kind: Kind
    meta: Dict[str, Any]
    tensors: List[TensorMeta] = field(default_factory=list)
    buffers: List[memoryview] = field(default_factory=list)
    flags: int = 0
    codecs: List[str] = field(default_factory=list)  # per tensor; empty: all use ``codec``

    @property
    def id(self) -> Optional[int]:
        return self.meta.get("id")

    @property
    def codec(self) -> str:
        """The message's codec: the default of every tensor entry without its own ``codec``."""
        return self.meta.get("codec", "raw")

    def arrays(self, decode: Optional[Callable] = None, limits: Limits = DEFAULT_LIMITS) -> Dict[str, np.ndarray]:
        """Tensors by name: raw ones as read-only views; others through ``decode(buf, out=)``."""
        if not self.tensors:  # most replies (ERROR, BUSY, HEARTBEAT, an empty RESULT): nothing to build
            return {}
        if _wire_views is not None:  # every tensor raw: the views in one native call
            out = _wire_views(self.tensors, self.buffers, self.codecs or self.codec)
            if out is not None:
                return out
        return unpack(self.tensors, self.buffers, self.codecs or self.codec, decode, limits)


# -- encoding ------------------------------------------------------------------------------
def pack_raw(arrays: Mapping[str, np.ndarray]) -> Tuple[List[dict], List[np.ndarray]]:
    """Tensor specs and frames for the raw codec; frames are the arrays themselves (no copy)."""
    if _wire_pack is not None:  # a dict of C-contiguous arrays of wire dtypes: one native call
        packed = _wire_pack(arrays)
        if packed is not None:
            return packed
    return _pack_raw_py(arrays)


def _pack_raw_py(arrays: Mapping[str, np.ndarray]) -> Tuple[List[dict], List[np.ndarray]]:
    """``pack_raw`` in Python: the reference, and the path for anything but a dict of
    C-contiguous arrays of the wire's dtypes (strided, big-endian, lists, numpy scalars)."""
    specs, frames = [], []
    for name, a in arrays.items():
        a = np.asarray(a)
        dt = _NAMES.get(a.dtype)
        if dt is None or not a.flags.c_contiguous:  # slow path: strided or big-endian
            dt = a.dtype.name
            if dt not in _DTYPES:
                raise BadTensor(f"tensor {name!r}: dtype {a.dtype} is not allowed; allowed: {', '.join(DTYPES)}")
            # (np.ascontiguousarray would turn 0-d into 1-d)
            a = np.require(a, dtype=_DTYPES[dt], requirements="C")
        specs.append({"name": str(name), "dtype": dt, "shape": list(a.shape)})
        frames.append(a)
    return specs, frames


def encode(kind: Kind, meta: Mapping[str, Any], frames: Sequence = (), flags: int = 0,
           limits: Limits = DEFAULT_LIMITS) -> list:
    """Frames to send (``send_multipart(..., copy=False)``): header+metadata, then ``frames``."""
    if _wire_encode is not None:
        head = _wire_encode(kind, meta, flags, len(frames), limits.max_meta)
        if head is not None:
            return [head, *frames]
    return _encode_py(kind, meta, frames, flags, limits)


def _encode_py(kind: Kind, meta: Mapping[str, Any], frames: Sequence = (), flags: int = 0,
               limits: Limits = DEFAULT_LIMITS) -> list:
    """``encode`` in Python: the reference, and the path for whatever the native writer leaves
    (non-ASCII or escaped text, null, numpy scalars, ints past 64 bits) and every refusal."""
    raw = _dump_bytes(meta)
    if len(raw) > limits.max_meta:
        raise TooLarge(f"metadata is {len(raw)} bytes; the limit is {limits.max_meta}")
    head = HEADER.pack(MAGIC, PROTOCOL_VERSION, kind, flags, len(frames), 0, len(raw))
    return [head + raw, *frames]


def _json_encoder() -> Callable[[Any], str]:
    """``json.dumps(meta, separators=(",", ":"), allow_nan=False)``, built once.

    NOTE: dumps (and JSONEncoder.encode) build a new C encoder and closures on every call:
    three quarters of their time on our small metadata. Without the circular-reference check
    (metadata is built by code, never cyclic; a cycle would raise RecursionError)."""
    slow = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (another interpreter): the same output, slower
        return slow.encode
    enc = make(None, slow.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
    return lambda meta: "".join(enc(meta, 0))


_dumps = _json_encoder()


def _dump_bytes(meta: Mapping[str, Any]) -> bytes:
    """The metadata as UTF-8 JSON: orjson where it gives what ``_dumps`` would mean, else
    ``_dumps`` (numpy scalars, non-string keys, ints past 64 bits, lone surrogates: TypeError
    in orjson; a ``null``, which may be a NaN orjson wrote as null where ``_dumps`` raises).
    NOTE: orjson takes 1.3 us where ``_dumps`` + ``encode`` take 3-7 us on an INFER's metadata;
    it writes non-ASCII as UTF-8 (the wire's encoding) where ``_dumps`` escapes it."""
    if _orjson is not None:
        try:
            raw = _orjson.dumps(meta)
        except TypeError:
            pass
        else:
            if b"null" not in raw:
                return raw
    return _dumps(meta).encode()


# -- decoding ------------------------------------------------------------------------------
def decode(frames: Sequence, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Check and parse a received message (without routing envelope); raise a ProtocolError."""
    if _wire_decode is not None:
        msg = _wire_decode(frames, limits.max_meta, limits.max_tensors, limits.max_tensor_bytes)
        if msg is not None:
            return msg
    return _decode_py(frames, limits)


def _decode_py(frames: Sequence, limits: Limits = DEFAULT_LIMITS) -> Message:
    """``decode`` in Python: the reference, the path for what the native decoder leaves (JSON
    escapes, non-ASCII text, ints past 18 digits, repeated keys) and the one that says what is
    wrong with every message either refuses."""
    if not 1 <= len(frames) <= 1 + limits.max_tensors:
        raise FrameCount(f"a message has 1..{1 + limits.max_tensors} frames; got {len(frames)}")
    head = memoryview(frames[0])
    # NOTE: _header's checks as one condition for a valid header (no call: 0.33 -> 0.25 us); _header
    # itself says what is wrong with any other
    if head.nbytes >= _HS:
        magic, version, kind, flags, ntensors, reserved, meta_len = _UNPACK(head)
        kind = _KINDS.get(kind)
        if not (magic == MAGIC and version == PROTOCOL_VERSION and kind is not None and not reserved
                and meta_len <= limits.max_meta and ntensors <= limits.max_tensors
                and head.nbytes == _HS + meta_len):
            kind, flags, ntensors, meta_len = _header(head, limits)
    else:
        kind, flags, ntensors, meta_len = _header(head, limits)
    if len(frames) != 1 + ntensors:
        raise FrameCount(f"header declares {ntensors} tensor frame(s); got {len(frames) - 1}")
    if ntensors and kind not in _TENSOR_KINDS:
        raise FrameCount(f"{kind.name} carries no tensors; header declares {ntensors}")
    meta = {}
    if meta_len:
        try:
            # at most max_meta bytes; orjson parses the frame in place
            meta = _orjson.loads(head[_HS:]) if _orjson is not None else _loads(str(head[_HS:], "utf-8"))
        except (ValueError, RecursionError, UnicodeDecodeError) as e:  # orjson.JSONDecodeError is a ValueError
            raise BadMetadata(f"metadata is not valid JSON: {str(e)[:120]}") from None
    # validate(kind, meta), its cached fast check inline; also when empty: an INFER without
    # metadata lacks required fields
    check = _FAST.get((kind, *meta)) if type(meta) is dict else None
    if check is None or not check(meta):
        validate(kind, meta)
    entries = meta.get("tensors", ())
    if len(entries) != ntensors:  # before any entry is looked at: ntensors is bounded
        raise FrameCount(f"metadata lists {len(entries)} tensor(s); header declares {ntensors}")
    if not ntensors:
        return Message(kind, meta, [], [], flags)
    specs, sizes, own_codec, cap = [], [], False, limits.max_tensor_bytes
    for t in entries:
        # NOTE: the checks of _tensor_meta inline for the common entry (2.5x cheaper); anything
        # else, and every refusal, goes through _tensor_meta itself
        if type(t) is dict:
            name, dtype, shape = t.get("name"), t.get("dtype"), t.get("shape")
            if type(name) is str and len(name) <= 256 and type(dtype) is str and type(shape) is list \
                    and len(shape) <= MAX_NDIM:
                dt = _DTYPES.get(dtype)
                if dt is not None:
                    n = dt.itemsize
                    for d in shape:
                        if type(d) is not int or d < 0:
                            break
                        n *= d
                    else:
                        if n <= cap:
                            specs.append(TensorMeta(name, dtype, tuple(shape)))
                            sizes.append(n)
                            own_codec = own_codec or "codec" in t
                            continue
        spec = _tensor_meta(t, limits)
        specs.append(spec)
        sizes.append(spec.nbytes)
        own_codec = own_codec or "codec" in t
    default = meta.get("codec", "raw")
    codecs = _tensor_codecs(entries, default) if own_codec else [default] * ntensors
    buffers = [memoryview(f).toreadonly() for f in frames[1:]]
    for spec, n, buf, codec in zip(specs, sizes, buffers, codecs):
        if codec == "raw" and buf.nbytes != n:
            raise BadTensor(f"tensor {spec.name!r} {spec.dtype}{list(spec.shape)} needs exactly "
                            f"{n} bytes; frame has {buf.nbytes}")
        if buf.nbytes > cap:
            raise TooLarge(f"tensor {spec.name!r} frame is {buf.nbytes} bytes; limit {cap}")
    return Message(kind, meta, specs, buffers, flags, codecs)


def _tensor_codecs(entries: Sequence[dict], default: str) -> List[str]:
    """Each tensor's codec: its entry's ``codec`` (e.g. ``"raw"`` for an integer tensor in an
    ``int8`` message), else the message's. Entries are dicts here (``_tensor_meta`` checked)."""
    codecs = [t.get("codec", default) for t in entries]
    for t, c in zip(entries, codecs):
        if c is not default and not _SCHEMA["codec"](c):
            raise BadMetadata(f"tensor {_quote(t['name'])}: codec must be a string of at most 64 chars; "
                              f"got {_quote(c)}")
    return codecs


def _header(head: memoryview, limits: Limits):
    if head.nbytes < HEADER.size:
        raise BadHeader(f"header frame is {head.nbytes} bytes; at least {HEADER.size} expected")
    magic, version, kind, flags, ntensors, reserved, meta_len = HEADER.unpack_from(head)
    if magic != MAGIC:
        raise BadMagic(f"magic {bytes(magic)!r}; expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise BadVersion(f"protocol version {version}; this side speaks {PROTOCOL_VERSION}")
    kind = _KINDS.get(kind, kind)  # a dict hit; Kind(n) costs a third of this function
    if type(kind) is int:
        raise BadHeader(f"unknown message kind {kind}; known: {[k.name for k in Kind]}")
    if reserved:
        raise BadHeader(f"reserved header field is {reserved}; expected 0")
    if meta_len > limits.max_meta:
        raise TooLarge(f"metadata length {meta_len} exceeds the limit {limits.max_meta}")
    if ntensors > limits.max_tensors:
        raise FrameCount(f"{ntensors} tensors declared; the limit is {limits.max_tensors}")
    if head.nbytes != HEADER.size + meta_len:
        raise BadHeader(f"header frame is {head.nbytes} bytes; header+metadata declare {HEADER.size + meta_len}")
    return kind, flags, ntensors, meta_len


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)  # no NaN/Infinity
_SCAN = _JSON.scan_once


def _loads(s: str):
    """``_JSON.decode(s)``, same result and errors, minus its two regex passes when ``s`` has
    no surrounding whitespace (what every edgeinf sender writes)."""
    try:
        obj, end = _SCAN(s, 0)
    except StopIteration:  # leading whitespace, or no value at all: the full path says which
        return _JSON.decode(s)
    return obj if end == len(s) else _JSON.decode(s)  # trailing whitespace ok, else "Extra data"


def _tensor_meta(t, limits: Limits) -> TensorMeta:
    # type checks come first: a list or dict where a string belongs must not reach `in`/hash
    if not isinstance(t, dict) or not {"name", "dtype", "shape"} <= t.keys():
        raise BadMetadata(f"a tensor entry needs name, dtype and shape; got {_quote(t)}")
    name, dtype, shape = t["name"], t["dtype"], t["shape"]
    if not _short_str(name):
        raise BadMetadata(f"tensor name must be a string of at most 256 chars; got {_quote(name)}")
    if type(dtype) is not str or dtype not in _DTYPES:
        raise BadTensor(f"tensor {_quote(name)}: dtype {_quote(dtype, 40)} not allowed; allowed: {', '.join(DTYPES)}")
    if type(shape) is not list or len(shape) > MAX_NDIM:
        raise BadTensor(f"tensor {_quote(name)}: shape must be a list of 0..{MAX_NDIM} dims; got {_quote(shape)}")
    if not all(type(d) is int and d >= 0 for d in shape):
        raise BadTensor(f"tensor {_quote(name)}: dims must be non-negative integers; got {_quote(shape)}")
    spec = TensorMeta(name, dtype, tuple(shape))
    if spec.nbytes > limits.max_tensor_bytes:
        raise TooLarge(f"tensor {name!r} declares {spec.nbytes} bytes; the limit is {limits.max_tensor_bytes}")
    return spec


def unpack(specs: Sequence[TensorMeta], buffers: Sequence, codec: Union[str, Sequence[str]] = "raw",
           decode_fn: Optional[Callable] = None, limits: Limits = DEFAULT_LIMITS) -> Dict[str, np.ndarray]:
    """Arrays from checked specs and buffers (raw: zero-copy views; else ``decode_fn``).

    ``codec`` is one name for every tensor or one per tensor (``Message.codecs``)."""
    codecs = [codec] * len(specs) if isinstance(codec, str) else codec
    out = {}
    for spec, buf, codec in zip(specs, buffers, codecs):
        dt = _DTYPES[spec.dtype]
        if codec == "raw":
            if type(buf) is not memoryview or not buf.readonly:  # decode()'s buffers already are
                buf = memoryview(buf).toreadonly()
            if buf.nbytes != _prod(spec.shape) * dt.itemsize:
                raise BadTensor(f"tensor {spec.name!r} needs {spec.nbytes} bytes; frame has {buf.nbytes}")
            a = np.ndarray(spec.shape, dt, buf)  # read-only view, one call (frombuffer+reshape: 3x)
        else:
            if decode_fn is None:
                raise ProtocolError(f"codec {codec!r} needs a decoder; none given")
            # decoding into a buffer of the declared (limit-checked) size bounds the allocation
            a = decode_fn(buf, out=np.empty(spec.shape, dtype=dt))
            if a.shape != spec.shape or a.dtype != dt:
                raise BadTensor(f"tensor {spec.name!r} decoded to {a.dtype}{list(a.shape)}; "
                                f"declared {spec.dtype}{list(spec.shape)}")
        out[spec.name] = a
    return out


# -- metadata schema -----------------------------------------------------------------------
def _short_str(v, n=256) -> bool:
    return isinstance(v, str) and len(v) <= n


def _uint(v, hi=2**63 - 1) -> bool:
    return type(v) is int and 0 <= v <= hi


def _num(v, lo=0.0, hi=1e9) -> bool:
    return type(v) in (int, float) and lo <= v <= hi


def _numbers(v, n=32) -> bool:
    # numbers only: peers do arithmetic on load reports (a string "load" crashed the broker)
    if type(v) is not dict or len(v) > n:
        return False
    for k, x in v.items():  # _short_str(k, 32) and _num(x, -1e12, 1e12), inline: every reply has a load
        if not (isinstance(k, str) and len(k) <= 32 and (type(x) is int or type(x) is float) and -1e12 <= x <= 1e12):
            return False
    return True


def _str_list(v, n=64) -> bool:
    return type(v) is list and len(v) <= n and all(_short_str(s) for s in v)


def _cuts(v) -> bool:
    return type(v) is dict and len(v) <= 64 and all(_short_str(k, 64) and _str_list(c, 256) for k, c in v.items())


def _tensor_list(v) -> bool:
    return type(v) is list and len(v) <= 0xFFFF  # entries: _tensor_meta; count: the header's ntensors


def _op(v) -> bool:
    return v in ("open", "step", "verify", "close")  # a tuple: `in` compares, never hashes


def _top_p(v) -> bool:
    return _num(v, 0.0, 1.0) and v > 0


def _spread(v) -> bool:
    return type(v) is list and len(v) <= 1024 and all(_uint(x) for x in v)


# Every known field: (the check, the same check as one inline expression over ``v``, the
# same check for csrc/wire.cpp). The callables are the schema (``_SCHEMA``, the error path);
# the expressions are compiled into one function per key order seen (``_fast_check``); the
# native specs (code, *parameters; codes in wire.cpp's ``Spec``) are read by the native
# decoder, where ``(_N_CALL, fn)`` calls the Python check itself. tests/test_protocol.py checks
# that all three agree on hostile values.
_N_UINT, _N_NUM, _N_STR, _N_NUMBERS, _N_STR_LIST, _N_LIST, _N_CALL = range(1, 8)


def _uint_c(hi=2**63 - 1):
    return ((lambda v: _uint(v, hi)) if hi != 2**63 - 1 else _uint, f"type(v) is int and 0 <= v <= {hi}",
            (_N_UINT, hi))


def _num_c(lo, hi):
    return ((lambda v: _num(v, lo, hi)), f"(type(v) is int or type(v) is float) and {lo!r} <= v <= {hi!r}",
            (_N_NUM, float(lo), float(hi)))


def _str_c(n, nullable=False):
    fn = (lambda v: v is None or _short_str(v, n)) if nullable else (lambda v: _short_str(v, n))
    return fn, ("v is None or " if nullable else "") + f"isinstance(v, str) and len(v) <= {n}", (_N_STR, n, nullable)


_NATIVE_SPECS = {"_numbers": (_N_NUMBERS, 32), "_str_list": (_N_STR_LIST, 64), "_tensor_list": (_N_LIST, 0xFFFF)}


def _call_c(fn):
    return fn, f"{fn.__name__}(v)", _NATIVE_SPECS.get(fn.__name__, (_N_CALL, fn))


_CHECKS: Dict[str, Tuple[Callable[[Any], bool], str, tuple]] = {
    "id": _uint_c(),
    "budget_ms": _num_c(0.0, 3.6e6),
    "deadline": _num_c(0.0, 1e11),  # absolute, Unix time in seconds
    "pkg": _str_c(64),
    "cut": _str_c(128, nullable=True),
    "codec": _str_c(64),
    "client": _str_c(64),
    "tensors": (_tensor_list, "type(v) is list and len(v) <= 65535", (_N_LIST, 0xFFFF)),
    "load": _call_c(_numbers),
    "service_ms": _num_c(0.0, 3.6e6),
    "code": _uint_c(255),
    "msg": _str_c(1024),
    "reason": _str_c(64),
    "proto": _uint_c(255),
    "pkgs": _call_c(_str_list),
    "codecs": _call_c(_str_list),
    "cuts": _call_c(_cuts),
    "stats": _call_c(_numbers),
    "spread": _call_c(_spread),
    # LLM (docs/protocol.md "Language-model sessions")
    "op": _call_c(_op),
    "model": _str_c(128),
    "session": _str_c(64),
    "n_past": _uint_c(1 << 20),
    "n": _uint_c(1024),
    "accepted": _uint_c(1024),
    "temperature": _num_c(0.0, 10.0),
    "top_k": _uint_c(1 << 20),
    "top_p": _call_c(_top_p),
    "seed": _uint_c(),
    "models": _call_c(_str_list),
}
_SCHEMA: Dict[str, Callable[[Any], bool]] = {k: fn for k, (fn, _, _) in _CHECKS.items()}
_REQUIRED = {
    Kind.INFER: ("id", "budget_ms", "pkg", "tensors"),
    Kind.RESULT: ("id", "tensors"),
    Kind.ERROR: ("code",),
    Kind.BUSY: ("id",),
    Kind.CANCEL: ("id",),
    Kind.LLM: ("id", "budget_ms", "op", "model", "tensors"),
}


def _quote(v, n: int = 80) -> str:
    """``repr(v)`` cut to ``n`` chars: error text never grows with what a peer sent."""
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def validate(kind: Kind, meta: Mapping[str, Any]) -> None:
    """Type- and range-check every known field of ``kind``'s metadata; raise :class:`BadMetadata`.

    The one schema every receiver (worker, broker, daemon) relies on: after it, each known
    field has the type the table in ``docs/protocol.md`` says, so no later use can raise
    ``TypeError``. Unknown keys are ignored (forward compatibility). Tensor entries are
    checked by ``decode`` (``_tensor_meta``) against the receiver's limits.
    """
    if type(meta) is not dict:
        raise BadMetadata(f"metadata must be a JSON object; got {type(meta).__name__}")
    sig = (kind, *meta)
    check = _FAST.get(sig)
    if check is None:
        check = _fast_check(sig)
    if check is None or not check(meta):
        _validate(kind, meta)  # says what is wrong (or accepts what the fast check could not)


def _validate(kind: Kind, meta: dict) -> None:
    """The schema, one field at a time: the reference, and the error path of ``validate``."""
    for key, value in meta.items():
        check = _SCHEMA.get(key)
        if check is not None and not check(value):
            raise BadMetadata(f"metadata field {_quote(key, 40)} has an invalid value {_quote(value)}")
    for key in _REQUIRED.get(kind, ()):
        if key not in meta:
            raise BadMetadata(f"{kind.name} metadata needs {key!r}; got keys {_quote(sorted(meta))}")


# (kind, *keys in order) -> a check of exactly those keys, compiled once. Only for metadata
# whose every key is known, and at most _FAST_MAX of them: a peer's made-up keys never get
# here, and orderings of known keys cannot grow it without bound (past that: _validate).
_FAST: Dict[tuple, Callable[[dict], bool]] = {}
_FAST_MAX = 256


def _fast_check(sig: tuple) -> Optional[Callable[[dict], bool]]:
    """``_validate`` for metadata with exactly the keys of ``sig``, in that order, as one
    function of inline checks (True: valid). NOTE: about 3x cheaper than the loop of
    lambdas; the source is built only from ``_CHECKS`` (never from a peer's strings)."""
    kind, keys = sig[0], sig[1:]
    if len(_FAST) >= _FAST_MAX or not all(type(k) is str and k in _CHECKS for k in keys) \
            or not all(r in keys for r in _REQUIRED.get(kind, ())):
        return None
    names = [f"v{i}" for i in range(len(keys))]
    lines = ["def check(m):"] + ([f"    {', '.join(names)}, = m.values()"] if names else [])
    for n, k in zip(names, keys):
        lines += [f"    v = {n}", f"    if not ({_CHECKS[k][1]}):", "        return False"]
    lines.append("    return True")
    scope: Dict[str, Any] = {}
    exec("\n".join(lines), globals(), scope)  # noqa: S102 - our own source, see above
    check = _FAST[sig] = scope["check"]
    return check


MAX_ERROR_TEXT = 1024  # bytes of the JSON-escaped "msg": an ERROR always fits Limits.max_meta


def fit_text(text: str, nbytes: int = MAX_ERROR_TEXT) -> str:
    """``text`` cut so that its JSON encoding (ASCII-escaped, the worst case) has at most ``nbytes``.

    Quoted peer strings can be 6-12 bytes per character once escaped, so cutting by
    characters is not enough to keep a reply under the metadata limit."""
    if len(text) <= nbytes // 12:
        return text  # fast path: even all-surrogate text fits
    size = len(json.dumps(text)) - 2
    while size > nbytes:
        text = text[: max(len(text) * nbytes // size - 4, 0)] + "..."
        size = len(json.dumps(text)) - 2
    return text


def error_meta(code: ErrorCode, msg: str, req_id: Optional[int] = None) -> dict:
    """Metadata of an ERROR message; the text is cut by encoded size (:func:`fit_text`)."""
    meta = {"code": int(code), "msg": fit_text(str(msg))}
    if type(req_id) is int:
        meta["id"] = req_id
    return meta


# -- the native common case (csrc/wire.cpp) ----------------------------------------------------
def _native_wire():
    """(wire_decode, wire_encode, wire_views, wire_pack_raw), given this module's classes and
    schema; all None where EDGEINF_PY_WIRE=1 asks for the Python path alone (debugging, and the
    tests' reference). NOTE: wire.cpp builds a Message by setting its six fields, without
    ``__init__`` (tests/test_wire.py pins the field list)."""
    if getattr(_kernels, "WIRE_VERSION", None) != PROTOCOL_VERSION:
        raise ImportError(f"edgeinf._kernels speaks wire version {getattr(_kernels, 'WIRE_VERSION', None)}, this "
                          f"protocol.py {PROTOCOL_VERSION}: a stale build; reinstall (pip install .)")
    _kernels.wire_setup(Message, TensorMeta, dict(_KINDS), {n: dt.itemsize for n, dt in _DTYPES.items()},
                        {k: native for k, (_, _, native) in _CHECKS.items()},
                        {int(k): tuple(v) for k, v in _REQUIRED.items()}, frozenset(int(k) for k in _TENSOR_KINDS),
                        dict(_DTYPES), np.ndarray)
    if os.environ.get("EDGEINF_PY_WIRE") == "1":
        return None, None, None, None
    return _kernels.wire_decode, _kernels.wire_encode, _kernels.wire_views, _kernels.wire_pack_raw


_wire_decode, _wire_encode, _wire_views, _wire_pack = _native_wire()
if _wire_decode is not None:
    # NOTE: the public names become the native entry points themselves, which call the Python
    # reference (``_decode_py`` ...) for whatever they decline: the Python wrappers above (what
    # runs under EDGEINF_PY_WIRE=1, and the signatures' documentation) cost 1-1.5 us each in a
    # round trip, where code right after a blocking receive runs 3-5x slower than in a hot loop
    _kernels.wire_fallbacks(_decode_py, _encode_py, _pack_raw_py, DEFAULT_LIMITS)
    decode, encode, pack_raw = _kernels.frame_decode, _kernels.frame_encode, _kernels.frame_pack_raw
