"""JPEG/WebP codecs for offloading camera frames, the way a real system sends them.

Full offload of an image model must not ship raw floats (600 kB for 224x224x3): a real
device sends the frame as JPEG or WebP. ``encode(x, "jpeg90")`` maps an image tensor
(NHWC/HWC with 1 or 3 channels, float in [lo, hi] or uint8) to 8 bits, compresses it
with OpenCV at that quality, and prefixes a small header; ``decode`` returns the tensor in
the original shape and dtype. Buffer layout (little-endian)::

    0  4s  magic b"EIJ1"
    4  B   format (0 jpeg, 1 webp)
    5  B   dtype (0 float32, 1 uint8)
    6  B   ndim (<= 4)
    7  B   reserved (0)
    8  f   lo      (value mapped to 0)
    12 f   hi      (value mapped to 255)
    16 I*ndim  shape
    ..     the JPEG/WebP stream

Reached through :mod:`edgeinf.codec`: ``codec.encode(x, "jpeg90")`` and ``codec.decode``
(which tells the formats apart by their magic), so the worker and the transport need
nothing extra to carry frames this way.

Bounded before decoding: the stream's own dimensions (JPEG SOF marker, WebP VP8/VP8L/VP8X
header) are read first and must equal the buffer header's shape (and the caller's
expected shape), else ``CodecError`` before OpenCV allocates anything. OpenCV's own pixel
limit is set to the same bound (``OPENCV_IO_MAX_IMAGE_PIXELS``) when this module is
imported before cv2.
"""
from __future__ import annotations

import os
import re
import struct

import numpy as np

from .errors import CodecError

MAGIC = b"EIJ1"
HEAD = struct.Struct("<4sBBBBff")
_NAME = re.compile(r"^(jpeg|webp)(\d{1,3})$")
NAMES = ["jpeg95", "jpeg90", "jpeg75", "jpeg50", "webp90", "webp75"]
MAX_PIXELS = 4096 * 4096
# NOTE: OpenCV reads this once, at import; our own header check below does not depend on it
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def is_image_codec(name: str) -> bool:
    m = _NAME.match(name or "")
    return bool(m) and 1 <= int(m.group(2)) <= 100


def encode(x: np.ndarray, codec: str) -> bytes:
    import cv2

    m = _NAME.match(codec)
    if not m or not 1 <= int(m.group(2)) <= 100:
        raise CodecError(f"image codec must be jpeg<1-100> or webp<1-100>; got {codec!r}")
    fmt, q = m.group(1), int(m.group(2))
    x = np.asarray(x)
    img = x.reshape(x.shape[-3:]) if x.ndim == 4 and x.shape[0] == 1 else x
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise CodecError(f"{codec}: expected an image tensor (1,H,W,C) or (H,W,C) with C in (1, 3); got {x.shape}")
    if x.dtype == np.uint8:
        lo, hi, u8, code = 0.0, 255.0, img, 1
    else:
        lo, hi = float(img.min()), float(img.max())
        lo, hi = (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else (lo, hi if hi > lo else lo + 1.0)
        u8, code = np.clip(np.rint((img - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8), 0
    flag = cv2.IMWRITE_JPEG_QUALITY if fmt == "jpeg" else cv2.IMWRITE_WEBP_QUALITY
    # OpenCV works in BGR; the swap is undone on decode, so colours are compressed as seen
    ok, stream = cv2.imencode(".jpg" if fmt == "jpeg" else ".webp", u8[..., ::-1] if u8.shape[-1] == 3 else u8,
                              [int(flag), q])
    if not ok:
        raise CodecError(f"OpenCV could not encode a {u8.shape} image as {codec}")
    head = HEAD.pack(MAGIC, 0 if fmt == "jpeg" else 1, code, x.ndim, 0, lo, hi)
    return head + struct.pack(f"<{x.ndim}I", *x.shape) + stream.tobytes()


def stream_dims(fmt: int, stream) -> tuple:
    """(height, width, channels or None) from a JPEG (``fmt`` 0) or WebP (1) stream header,
    without decoding it; ``CodecError`` when no valid header is found."""
    s = bytes(stream[:65536]) if fmt == 0 else bytes(stream[:30])  # SOF lies after the tables
    dims = _jpeg_dims(s) if fmt == 0 else _webp_dims(s)
    if dims is None:
        raise CodecError(f"{'JPEG' if fmt == 0 else 'WebP'} stream has no readable size header")
    return dims


def _jpeg_dims(s: bytes):
    if s[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(s):
        if s[i] != 0xFF:
            return None
        marker = s[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        (length,) = struct.unpack_from(">H", s, i + 2)
        if marker in _SOF:
            h, w, c = struct.unpack_from(">HHB", s, i + 5)
            return h, w, c
        if marker == 0xDA or length < 2:  # scan data before any frame header
            return None
        i += 2 + length
    return None


def _webp_dims(s: bytes):
    if len(s) < 30 or s[:4] != b"RIFF" or s[8:12] != b"WEBP":
        return None
    chunk = s[12:16]
    if chunk == b"VP8 " and s[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", s, 26)
        return h & 0x3FFF, w & 0x3FFF, None
    if chunk == b"VP8L" and s[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", s, 21)
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1, None
    if chunk == b"VP8X":
        w = int.from_bytes(s[24:27], "little") + 1
        h = int.from_bytes(s[27:30], "little") + 1
        return h, w, None
    return None


def decode(buf, expect=None) -> np.ndarray:
    """The tensor in ``buf``; ``expect``: the shape the caller expects (refused before decoding
    when the buffer or its stream says otherwise)."""
    import cv2

    buf = memoryview(buf).cast("B")
    if len(buf) < HEAD.size or bytes(buf[:4]) != MAGIC:
        raise CodecError(f"not an edgeinf image buffer: expected magic {MAGIC!r} in {len(buf)} bytes")
    _, fmt, code, ndim, _, lo, hi = HEAD.unpack_from(buf)
    if fmt > 1 or code > 1 or not 1 <= ndim <= 4:
        raise CodecError(f"image buffer header invalid: format {fmt}, dtype {code}, ndim {ndim}")
    end = HEAD.size + 4 * ndim
    if len(buf) <= end:
        raise CodecError(f"image buffer truncated: {len(buf)} bytes, header needs {end}")
    shape = struct.unpack_from(f"<{ndim}I", buf, HEAD.size)
    hwc = shape[-3:]
    if len(hwc) != 3 or hwc[0] * hwc[1] > MAX_PIXELS or hwc[2] not in (1, 3):
        raise CodecError(f"image buffer declares shape {shape}; expected (..,H,W,1|3) under {MAX_PIXELS} pixels")
    if expect is not None and tuple(expect) != tuple(shape):
        raise CodecError(f"image buffer declares shape {tuple(shape)}; expected {tuple(expect)}")
    h, w, c = stream_dims(fmt, buf[end:])
    if (h, w) != tuple(hwc[:2]) or (c is not None and c != hwc[2]):
        raise CodecError(f"image stream says {h}x{w}x{c or '?'}; the buffer header says {'x'.join(map(str, hwc))}: "
                         "refused before decoding")
    img = cv2.imdecode(np.frombuffer(buf[end:], np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CodecError("image stream does not decode")
    img = img.reshape(img.shape[0], img.shape[1], -1)
    if img.shape != tuple(hwc):
        raise CodecError(f"decoded image is {img.shape}; header says {tuple(hwc)}")
    if img.shape[-1] == 3:
        img = img[..., ::-1]
    out = img if code == 1 else img.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
    return np.ascontiguousarray(out).reshape(shape)
