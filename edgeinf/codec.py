"""Tensor codec: float32/float16 tensors to self-describing bytes and back.

Codec names are ``BASE[-pc][+shuf|+bshuf][+STAGE]``:

- ``BASE``: ``raw`` (lossless), ``fp16``, ``bf16`` (round to nearest even), ``int8``,
  ``int4``, ``int2`` (affine quantization, bit-packed; finite values only: NaN or +-inf
  raise :class:`~edgeinf.errors.CodecError`, never turn into zeros);
- ``-pc``: per-channel scales and zero points (int codecs only) along ``axis``
  (default 1 for ndim >= 2, i.e. C of NCHW; pass ``axis=-1`` for NHWC, or the package's
  ``Cut.channel_axes()``); the decoder reads the axis from the header;
- ``+lz4`` / ``+zstd``: a lossless stage on the packed payload;
- ``+shuf`` (raw/fp16/bf16, with a stage): the payload split into byte planes first, each
  plane through the stage on its own (or stored when it does not shrink);
- ``+bshuf`` (with lz4 only): the same byte planes, each bit-transposed (its 8 bit planes)
  before lz4: blosc's bit-shuffle. lz4 finds a float's sign/exponent redundancy there in a
  third of the time it spends on the byte plane, and smaller; zstd's entropy coder does
  better on the bytes, so there is no ``+bshuf+zstd`` (``docs/codec.md``).

The buffer carries everything the decoder needs. Layout (little-endian; ``csrc/codec.h``
and ``docs/codec.md`` have the same table)::

    off  size  field
      0     4  magic b"EITC"
      4     1  version (1)
      5     1  codec id: 0 raw, 1 fp16, 2 bf16, 3 int8, 4 int4, 5 int2
      6     1  flags: bit 0 per-channel, bits 1-2 stage (0 none, 1 lz4, 2 zstd),
               bit 3 byte-shuffled planes, bit 4 (with 3) bit-transposed planes
      7     1  dtype of the original tensor: 1 float32, 2 float16
      8     1  ndim (0..8)
      9     1  per-channel axis, 0xFF for per-tensor
     10     2  reserved, 0
     12     4  nparams (uint32): 0, 1, or shape[axis]
     16     8  raw_len (uint64): payload bytes before the lossless stage
     24     8  stored_len (uint64): payload bytes that follow the header
     32  8*nd  dims (uint64)
      .  4*np  scales (float32), then np zero points (uint8), then 0-padding to 8 bytes
      .     .  payload (stored_len bytes; nothing may follow)

Shuffled payload (bit 3): ``size`` uint32 plane lengths (``size`` = 4 for raw float32, else 2),
then the planes in order; plane ``b`` holds byte ``b`` of every element, ``raw_len / size``
bytes before the stage; a length equal to that means the plane is stored as is. With bit 4,
a plane that went through the stage was bit-transposed before it (``kernels.bitplanes``:
plane of bit k of every byte, k = 0..7, then the ``n % 8`` trailing bytes as they are).

Quantization: ``q = clamp(rint(x / scale), -zp, qmax - zp) + zp`` with
``scale = (max(hi, 0) - min(lo, 0)) / qmax`` so 0 is exact; ``x' = (q - zp) * scale``.
NaN and +-inf are refused (:class:`~edgeinf.errors.CodecError`); ranges under 1e-30 decode
as zeros.

Decoding treats the buffer as hostile: the C++ parser checks every field against the
buffer length and :class:`Limits` before anything is allocated, and every failure raises
:class:`~edgeinf.errors.CodecError`.
"""
from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from ._native import kernels
from .errors import CodecError, nearest

__all__ = ["CODECS", "Limits", "Spec", "decode", "encode", "header_info", "names", "parse"]

BASES = {"raw": 0, "fp16": 1, "bf16": 2, "int8": 3, "int4": 4, "int2": 5}
BITS = {"raw": 32, "fp16": 16, "bf16": 16, "int8": 8, "int4": 4, "int2": 2}
STAGES = {"": 0, "lz4": 1, "zstd": 2}
SHUF_BASES = ("raw", "fp16", "bf16")
FLAG_SHUFFLE = 8
FLAG_BITPLANES = 16
DTYPES = {np.dtype(np.float32): 1, np.dtype(np.float16): 2}
MAGIC, VERSION, FIXED = b"EITC", 1, struct.Struct("<4sBBBBBBHIQQ")


def _all_names() -> List[str]:
    out = []
    for base in BASES:
        for pc in (["", "-pc"] if base.startswith("int") else [""]):
            out += [base + pc + (f"+{s}" if s else "") for s in STAGES]
        if base in SHUF_BASES:
            out += [f"{base}+shuf+{s}" for s in STAGES if s] + [f"{base}+bshuf+lz4"]
    return out


#: Every valid codec name.
CODECS: List[str] = _all_names()


def names() -> List[str]:
    """The valid codec names (a copy of :data:`CODECS`)."""
    return list(CODECS)


@dataclass(frozen=True)
class Spec:
    """A parsed codec name."""

    base: str
    per_channel: bool = False
    stage: str = ""
    shuffle: bool = False
    bitplanes: bool = False  # "bshuf": shuffle, and each byte plane bit-transposed before the stage

    @property
    def name(self) -> str:
        sh = "+bshuf" if self.bitplanes else "+shuf" if self.shuffle else ""
        return self.base + ("-pc" if self.per_channel else "") + sh + (f"+{self.stage}" if self.stage else "")

    @property
    def bits(self) -> int:
        return BITS[self.base]


def known(name: str) -> bool:
    """True for every tensor codec in :data:`CODECS` and every image codec ``jpeg<q>``/``webp<q>``."""
    from . import imagecodec

    return name in CODECS or imagecodec.is_image_codec(name)


def image_names() -> List[str]:
    """Frame codecs for full offload of image models (OpenCV JPEG/WebP; any quality 1-100 works)."""
    from . import imagecodec

    return list(imagecodec.NAMES)


def parse(name: str) -> Spec:
    """Validate a codec name; raise :class:`CodecError` listing the valid ones."""
    spec = _SPECS.get(name) if isinstance(name, str) else None  # NOTE: a dict hit; parsing took 2 us a call
    if spec is None:
        raise CodecError(f"unknown codec {name!r}; did you mean {nearest(str(name), CODECS)}? "
                         f"Valid: {', '.join(CODECS)}")
    return spec


def _parse(name: str) -> Spec:
    parts = name.split("+")
    base, _, pc = parts[0].partition("-")
    bshuf = "bshuf" in parts[1:]
    return Spec(base, pc == "pc", parts[-1] if len(parts) > 1 else "", bshuf or "shuf" in parts[1:], bshuf)


_SPECS = {n: _parse(n) for n in CODECS}


@dataclass(frozen=True)
class Limits:
    """What a decoder accepts from a buffer (checked before any allocation)."""

    max_elements: int = 1 << 28
    max_ndim: int = 8
    max_bytes: int = 1 << 30  # payload bytes after the lossless stage is undone


DEFAULT_LIMITS = Limits()


class Header(NamedTuple):
    codec: str
    stage: str
    dtype: np.dtype
    shape: Tuple[int, ...]
    header_len: int
    raw_len: int
    per_channel: bool
    axis: Optional[int]
    shuffle: bool = False
    bitplanes: bool = False


def _channel_axis(x: np.ndarray, spec: Spec, axis: Optional[int]) -> int:
    if not spec.per_channel:
        return -1  # NOTE: axis is ignored by per-tensor codecs, so callers can always pass it
    if x.ndim == 0:
        raise CodecError(f"codec {spec.name!r} needs a tensor with at least one dim")
    ax = (1 if x.ndim >= 2 else 0) if axis is None else axis
    if not -x.ndim <= ax < x.ndim:
        raise CodecError(f"axis {axis} out of range for a tensor of shape {x.shape}")
    return ax % x.ndim


def _prepare(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.byteorder == ">":
        x = x.astype(x.dtype.newbyteorder("="))  # the format is little-endian
    if x.dtype not in DTYPES:
        raise CodecError(f"x must be float32 or float16, got {x.dtype}")
    if x.ndim > 8:
        raise CodecError(f"x has {x.ndim} dims; the format holds at most 8")
    return x


def encode(x: np.ndarray, codec: str = "raw", axis: Optional[int] = None) -> bytes:
    """Encode a float32 or float16 array into a self-describing ``bytes`` object.

    Parameters
    ----------
    x : np.ndarray
        float32 or float16, any shape up to 8 dims; a non-contiguous array is copied.
    codec : str
        One of :data:`CODECS`, e.g. ``"int8"``, ``"int4-pc+zstd"``.
    axis : int, optional
        Channel axis for ``-pc`` codecs (default 1 for ndim >= 2, else 0); ignored by others.
    """
    fast = _FAST.get(codec) if type(codec) is str else None
    if fast is not None and type(x) is np.ndarray and x.dtype in fast[0] and x.flags.c_contiguous and x.ndim <= 8:
        # NOTE: the common case in one native call (header, payload and the lz4 stage): the
        # Python below cost 15 us of a 29 us raw+lz4 encode of docs/codec.md's activation
        spec = fast[1]
        try:
            return kernels.encode(x, BASES[spec.base], spec.per_channel, _channel_axis(x, spec, axis), DTYPES[x.dtype],
                                  stage=STAGES[spec.stage], shuffle=spec.shuffle, bitplanes=spec.bitplanes,
                                  sample=_SAMPLE)
        except kernels.NonFiniteError:
            raise _non_finite(x, spec) from None
    if isinstance(codec, str) and codec[:4] in ("jpeg", "webp"):
        from . import imagecodec

        if imagecodec.is_image_codec(codec):
            return imagecodec.encode(x, codec)
    spec, x = parse(codec), _prepare(x)
    ax = _channel_axis(x, spec, axis)
    dtype_id = DTYPES[x.dtype]
    if x.dtype == np.float16 and spec.base not in ("raw", "fp16"):
        x = x.astype(np.float32)  # quantize in float32; the header still says float16
    if spec.base == "raw" and spec.stage:
        # NOTE: raw lossless stages read the payload from x itself (one copy fewer: 3.6 us
        # for the 125 KB activation of docs/codec.md, a fifteenth of a shuffled lz4 encode)
        x = np.require(x, requirements="C")
        head = kernels.encode(x, 0, False, -1, dtype_id, header_only=True)
        return _compress(head, spec, x.reshape(-1).view(np.uint8))
    try:
        buf = kernels.encode(np.require(x, requirements="C"), BASES[spec.base], spec.per_channel, ax, dtype_id)
    except kernels.NonFiniteError:
        raise _non_finite(x, spec) from None
    return _compress(buf, spec) if spec.stage else buf


def _non_finite(x: np.ndarray, spec: Spec) -> CodecError:
    bad = ~np.isfinite(x)
    return CodecError(
        f"codec {spec.name!r} quantizes finite values only; x holds {int(np.isnan(x).sum())} NaN and "
        f"{int(bad.sum() - np.isnan(x).sum())} +-inf of {x.size} values. Use raw/fp16/bf16 to carry "
        "them, or clean the tensor first (np.nan_to_num)")


def _fast_specs() -> dict:
    """Codec name -> (dtypes that go straight to the kernel, Spec) for the codecs
    ``kernels.encode`` does whole: no stage or lz4 (zstd is Python's). float16 goes straight
    only to raw/fp16 (other bases quantize it as float32: the slow path converts it)."""
    f32, f16 = np.dtype(np.float32), np.dtype(np.float16)
    out = {}
    for name in CODECS:
        spec = parse(name)
        if spec.stage != "zstd":
            out[name] = ((f32, f16) if spec.base in ("raw", "fp16") else (f32,), spec)
    return out


_tls = threading.local()  # NOTE: zstd (de)compressor objects are not thread-safe; reuse saves ~10 us


def _zstd(kind: str):
    """Per-thread zstd objects: "c" level 3, "c1" level 1 (byte planes), "d" the decompressor."""
    obj = getattr(_tls, kind, None)
    if obj is None:
        import zstandard

        obj = zstandard.ZstdDecompressor() if kind == "d" else zstandard.ZstdCompressor(level=3 if kind == "c" else 1)
        setattr(_tls, kind, obj)
    return obj


def _zstd_deflate(data, plane: bool = False) -> bytes:
    """The zstd stage (lz4 is native: ``kernels.lz4_block``, ``kernels.lz4_shuffled``)."""
    # NOTE: on byte planes level 1 is both faster and smaller than 3 (its entropy tables fit
    # a plane better): a real hand_landmark activation's planes, 105,344 vs 106,272 bytes
    return _zstd("c1" if plane else "c").compress(data)


_SAMPLE = 4096  # bytes of a plane the lz4 stage judges it on (kernels.lz4_shuffled)


def _compress(buf: bytes, spec: Spec, payload=None) -> bytes:
    """``buf`` (our header + payload, or the header alone with ``payload`` given) through the
    lossless stage."""
    nd, nparams = buf[8], int.from_bytes(buf[12:16], "little")  # our own header: no re-parse
    hl = -(-(FIXED.size + 8 * nd + 5 * nparams) // 8) * 8
    payload = memoryview(buf)[hl:] if payload is None else payload
    head = bytearray(buf[:hl])
    head[6] |= STAGES[spec.stage] << 1
    if spec.shuffle:
        head[6] |= FLAG_SHUFFLE | (FLAG_BITPLANES if spec.bitplanes else 0)
        size = 4 if buf[5] == 0 and buf[7] == 1 else 2  # raw float32; else 2-byte elements
        n = len(payload) // size
        if spec.stage == "lz4":
            # NOTE: one native call with the vendored lz4 (csrc/lossless.cpp): planes, noise
            # judged on a 4 KB sample and stored untried, bshuf's bit transpose, lz4, the output.
            # One Python lz4 call per plane cost ~20 us more than blosc2 on the 125 KB
            # activation of docs/codec.md. _ref_lz4_shuffled is the same stage with python-lz4.
            return kernels.lz4_shuffled(head, payload, size, spec.bitplanes, _SAMPLE)
        planes = memoryview(kernels.shuffle(payload, size))
        src = [planes[k * n:(k + 1) * n] for k in range(size)]
        parts = [_zstd_deflate(p, plane=True) for p in src]
        parts = [c if len(c) < n else src[k] for k, c in enumerate(parts)]
        parts.insert(0, struct.pack(f"<{size}I", *map(len, parts)))
    elif spec.stage == "lz4":
        return kernels.lz4_block(head, payload)  # compressed straight into the result (no join)
    else:
        parts = [_zstd_deflate(payload)]
    struct.pack_into("<Q", head, 24, sum(map(len, parts)))
    return b"".join([head, *parts])  # one copy of the payload


def header_info(buf, limits: Optional[Limits] = None) -> Header:
    """Parse and validate only the header of an encoded buffer."""
    lim = limits or DEFAULT_LIMITS
    try:
        c, st, dt, shape, hl, raw, pc, ax, shuf, bits = kernels.header_info(buf, lim.max_elements, lim.max_ndim,
                                                                             lim.max_bytes)
    except (kernels.FormatError, ValueError, TypeError, BufferError) as e:
        raise CodecError(f"bad encoded tensor: {e}") from e
    return Header(list(BASES)[c], list(STAGES)[st], np.dtype(np.float32 if dt == 1 else np.float16),
                  tuple(shape), hl, raw, pc, ax if pc else None, shuf, bits)


def _inflate(comp, stage: str, n: int):
    """Exactly n bytes from one lz4 block or zstd frame, never more allocated (python-lz4 for
    lz4: the reference ``kernels.decode``'s own inflation is tested against)."""
    try:
        if stage == "lz4":
            import lz4.block

            out = lz4.block.decompress(comp, uncompressed_size=n) if n else b""
        else:
            import zstandard

            # NOTE: a frame may claim any content size; refuse before zstd allocates it
            if zstandard.frame_content_size(comp) != n:
                raise CodecError(f"zstd frame size does not match the expected {n} bytes")
            out = _zstd("d").decompress(comp, max_output_size=n)
    except CodecError:
        raise
    except Exception as e:  # lz4/zstd raise their own error types for corrupt data
        raise CodecError(f"corrupt {stage} payload: {e}") from e
    if len(out) != n:
        raise CodecError(f"{stage} payload decompressed to {len(out)} bytes, expected {n}")
    return out


def _planes(comp: memoryview, h: Header) -> list:
    """The byte planes of a shuffled payload, each where its stage left it (``kernels.decode``
    takes them as a list: joining them cost a copy of the payload, 10 us of a 35 us decode of
    the 125 KB activation in docs/codec.md)."""
    size = 4 if h.codec == "raw" and h.dtype == np.float32 else 2
    n = h.raw_len // size
    if len(comp) < 4 * size:
        raise CodecError(f"shuffled payload of {len(comp)} bytes cannot hold {size} plane lengths")
    lens = struct.unpack_from(f"<{size}I", comp)
    if any(k > n for k in lens) or 4 * size + sum(lens) != len(comp):
        raise CodecError(f"plane lengths {list(lens)} do not fit planes of {n} bytes in {len(comp)} payload bytes")
    out, off = [], 4 * size
    for k in lens:
        part = comp[off:off + k]
        if k == n:
            out.append(part)
        else:
            plane = _inflate(part, h.stage, n)
            out.append(kernels.bitplanes(plane, inverse=True) if h.bitplanes else plane)
        off += k
    return out


def _decompress(buf, h: Header):
    comp = memoryview(buf).cast("B")[h.header_len:]
    return _planes(comp, h) if h.shuffle else _inflate(comp, h.stage, h.raw_len)


def _tensor_magic(buf) -> bool:
    try:
        return bytes(buf[:4]) == MAGIC
    except (TypeError, ValueError, IndexError):
        return False


def _whole_f32(buf, out) -> bool:
    """A float32 tensor buffer that ``kernels.decode`` takes whole, in one call: no lossless
    stage or lz4, which the kernel inflates itself (checked before the image magic: ~1 us)."""
    try:
        return (len(buf) > 7 and bytes(buf[:4]) == MAGIC and buf[7] == 1 and not buf[6] & STAGES["zstd"] << 1
                and (out is None or isinstance(out, np.ndarray)))
    except (TypeError, ValueError, IndexError):
        return False


def decode(buf, out: Optional[np.ndarray] = None, limits: Optional[Limits] = None) -> np.ndarray:
    """Decode a buffer from :func:`encode` (any bytes-like object).

    Parameters
    ----------
    buf : bytes, bytearray, memoryview or uint8 array
        The encoded tensor; treated as untrusted.
    out : np.ndarray, optional
        Writeable C-contiguous array of the encoded shape and dtype to decode into
        (no extra copy, except float16 tensors of non-raw codecs, decoded via float32).
    limits : Limits, optional
        Bounds on elements, dims and payload bytes (default :class:`Limits`).
    """
    lim = limits or DEFAULT_LIMITS
    if _whole_f32(buf, out):  # one native call, which checks everything
        try:
            return kernels.decode(buf, out, lim.max_elements, lim.max_ndim, lim.max_bytes, None)
        except (kernels.FormatError, TypeError, BufferError) as e:
            raise CodecError(f"bad encoded tensor: {e}") from e
    if not _tensor_magic(buf) and _is_image(buf):
        return _decode_image(buf, out)
    h = header_info(buf, lim)
    if out is not None and (not isinstance(out, np.ndarray) or out.shape != h.shape or out.dtype != h.dtype):
        got = (getattr(out, "shape", None), getattr(out, "dtype", type(out).__name__))
        raise CodecError(f"out must be an array of shape {h.shape} and dtype {h.dtype}, got {got}")
    # NOTE: kernels.decode inflates lz4 itself (a float16 tensor's, here): a raw tensor's
    # block straight into the output array, one pass and no Python lz4 object
    payload = _decompress(buf, h) if h.stage == "zstd" else None
    via_f32 = h.dtype == np.float16 and h.codec != "raw"
    target = None if via_f32 else out
    try:
        res = kernels.decode(buf, target, lim.max_elements, lim.max_ndim, lim.max_bytes, payload)
    except kernels.FormatError as e:
        raise CodecError(f"bad encoded tensor: {e}") from e
    if via_f32:
        if out is None:
            return res.astype(np.float16)
        np.copyto(out, res, casting="same_kind")
        return out
    return res


# ---- numpy reference (tests and benchmarks compare the kernels with it) ----------------

def _ref_lz4_shuffled(head: bytes, payload, size: int, bitplanes: bool) -> bytes:
    """``kernels.lz4_shuffled`` with python-lz4, one plane at a time: the reference the
    native stage is held to (tests compare the bytes)."""
    import lz4.block

    n = len(payload) // size
    planes, mask = kernels.lz4_planes(payload, size, bitplanes, _SAMPLE)
    planes = memoryview(planes)
    parts = []
    for k in range(size):
        p = planes[k * n:(k + 1) * n]
        c = lz4.block.compress(p, store_size=False) if mask >> k & 1 else None
        if c is not None and len(c) < n:
            parts.append(c)
        else:  # stored: the byte plane itself
            parts.append(kernels.bitplanes(p, True) if c is not None and bitplanes else p)
    parts.insert(0, struct.pack(f"<{size}I", *map(len, parts)))
    head = bytearray(head)
    struct.pack_into("<Q", head, 24, sum(map(len, parts)))
    return b"".join([head, *parts])


def _ref_params(x: np.ndarray, bits: int):
    qmax, big = (1 << bits) - 1, np.float32(np.finfo(np.float32).max / 2)
    lo = np.fmin.reduce(x, axis=-1) if x.size else np.full(x.shape[:-1], np.inf, np.float32)
    hi = np.fmax.reduce(x, axis=-1) if x.size else np.full(x.shape[:-1], -np.inf, np.float32)
    lo = np.where(lo < 0, np.maximum(lo, -big), 0).astype(np.float32)
    hi = np.where(hi > 0, np.minimum(hi, big), 0).astype(np.float32)
    scale = ((hi.astype(np.float64) - lo) / qmax).astype(np.float32)
    scale = np.where(scale >= np.float32(1e-30), scale, np.float32(1)).astype(np.float32)
    zp = np.clip(np.rint(-lo.astype(np.float64) / scale), 0, qmax).astype(np.int32)
    return scale, zp


def _ref_quantize(x: np.ndarray, bits: int):
    """x: (channels, n) float32 -> codes (channels, n) uint8, scales, zero points."""
    scale, zp = _ref_params(x, bits)
    inv = (np.float32(1) / scale)[:, None]
    v = x * inv
    lo, hi = (-zp).astype(np.float32)[:, None], ((1 << bits) - 1 - zp).astype(np.float32)[:, None]
    v = np.where(v > lo, v, lo)
    v = np.where(v < hi, v, hi)
    return (np.rint(v).astype(np.int32) + zp[:, None]).astype(np.uint8), scale, zp


def _ref_pack(codes: np.ndarray, bits: int) -> bytes:
    if bits == 8:
        return codes.tobytes()
    per = 8 // bits
    c = np.zeros(-(-codes.size // per) * per, np.uint8)
    c[: codes.size] = codes
    c = c.reshape(-1, per)
    return sum(c[:, k] << (k * bits) for k in range(per)).astype(np.uint8).tobytes()


def _ref_unpack(payload: bytes, n: int, bits: int) -> np.ndarray:
    b = np.frombuffer(payload, np.uint8)
    if bits == 8:
        return b[:n]
    per, mask = 8 // bits, (1 << bits) - 1
    return np.stack([(b >> (k * bits)) & mask for k in range(per)], axis=1).reshape(-1)[:n]


def reference_encode(x: np.ndarray, codec: str = "raw", axis: Optional[int] = None) -> bytes:
    """Pure-numpy encoder producing the same bytes as :func:`encode` (no lossless stage)."""
    spec, x = parse(codec), _prepare(x)
    if spec.stage:
        raise CodecError("the reference encoder has no lossless stage")
    ax, dt = _channel_axis(x, spec, axis), DTYPES[x.dtype]
    base = "raw" if (spec.base == "fp16" and x.dtype == np.float16) else spec.base
    xf = x if base == "raw" else x.astype(np.float32)
    np_, scales, zps = 0, b"", b""
    if base in ("raw", "fp16"):
        payload = xf.astype(np.float16 if base == "fp16" else x.dtype).tobytes()
    elif base == "bf16":
        u = xf.reshape(-1).view(np.uint32).astype(np.uint64)
        r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        r = np.where((u & 0x7FFFFFFF) > 0x7F800000, (u >> 16) | 0x40, r)
        payload = r.astype(np.uint16).tobytes()
    else:
        if not np.isfinite(xf).all():
            raise CodecError(f"codec {spec.name!r} quantizes finite values only; x holds NaN or +-inf")
        bits = spec.bits
        nch = xf.shape[ax] if spec.per_channel else 1
        chans = np.moveaxis(xf, ax, 0).reshape(nch, xf.size // max(nch, 1)) if spec.per_channel else xf.reshape(1, -1)
        codes, s, z = _ref_quantize(chans, bits)
        codes = np.moveaxis(codes.reshape(np.moveaxis(xf, ax, 0).shape), 0, ax) if spec.per_channel else codes
        payload, np_ = _ref_pack(np.ascontiguousarray(codes).reshape(-1), bits), len(s)
        scales, zps = s.astype("<f4").tobytes(), z.astype(np.uint8).tobytes()
    head = FIXED.pack(MAGIC, VERSION, BASES[base], int(spec.per_channel), dt, x.ndim,
                      ax if spec.per_channel else 0xFF, 0, np_, len(payload), len(payload))
    head += struct.pack(f"<{x.ndim}Q", *x.shape) + scales + zps
    return head + b"\0" * (-len(head) % 8) + payload


def reference_decode(buf: bytes) -> np.ndarray:
    """Pure-numpy decoder of trusted buffers without a lossless stage."""
    magic, ver, c, flags, dt, nd, ax, _, np_, raw, _ = FIXED.unpack_from(buf)
    shape = struct.unpack_from(f"<{nd}Q", buf, FIXED.size)
    off = FIXED.size + 8 * nd
    scale = np.frombuffer(buf, "<f4", np_, off)
    zp = np.frombuffer(buf, np.uint8, np_, off + 4 * np_).astype(np.int32)
    hl = -(-(off + 5 * np_) // 8) * 8
    base, dtype = list(BASES)[c], np.float32 if dt == 1 else np.float16
    payload, n = bytes(buf[hl:hl + raw]), int(np.prod(shape, dtype=np.int64))
    if base == "raw":
        return np.frombuffer(payload, dtype, n).reshape(shape).copy()
    if base == "fp16":
        x = np.frombuffer(payload, np.float16, n).astype(np.float32)
    elif base == "bf16":
        x = (np.frombuffer(payload, np.uint16, n).astype(np.uint32) << 16).view(np.float32)
    else:
        q = _ref_unpack(payload, n, BITS[base]).astype(np.int32)
        if flags & 1:
            moved = (shape[ax],) + shape[:ax] + shape[ax + 1:]
            q = np.moveaxis(q.reshape(shape), ax, 0).reshape(shape[ax], n // max(shape[ax], 1))
            x = ((q - zp[:, None]).astype(np.float32) * scale[:, None]).reshape(moved)
            x = np.moveaxis(x, 0, ax)
        else:
            x = (q - zp[0]).astype(np.float32) * scale[0]
    return np.array(x.reshape(shape), dtype=dtype, order="C")


def _is_image(buf) -> bool:
    from .imagecodec import MAGIC

    try:
        return bytes(memoryview(buf).cast("B")[:4]) == MAGIC
    except TypeError:
        return False


def _decode_image(buf, out: Optional[np.ndarray]) -> np.ndarray:
    from . import imagecodec

    a = imagecodec.decode(buf, None if out is None else out.shape)  # shape refused before decoding
    if out is None:
        return a
    if out.shape != a.shape or out.dtype != a.dtype:
        raise CodecError(f"image decoded to {a.dtype}{list(a.shape)}; out= is {out.dtype}{list(out.shape)}")
    out[...] = a
    return out


_FAST = _fast_specs()
