"""Image codecs read the stream's own size header and refuse a lie before decoding."""
import struct
import time
import tracemalloc

import numpy as np
import pytest

from edgeinf import codec, imagecodec
from edgeinf.errors import CodecError


def _image(shape=(1, 64, 48, 3)):
    # smooth, like a photo: lossy codecs keep it close (noise would not survive jpeg50)
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[1]), np.linspace(0, 1, shape[2]), indexing="ij")
    return np.stack([yy, xx, (yy + xx) / 2], -1)[None].astype(np.float32)


def _stream_at(buf: bytes) -> int:
    ndim = buf[6]
    return imagecodec.HEAD.size + 4 * ndim


def _patch_jpeg_sof(buf: bytes, h: int, w: int) -> bytes:
    """The same buffer with the JPEG frame header (SOF0) claiming h x w."""
    i = buf.index(b"\xff\xc0", _stream_at(buf))
    return buf[: i + 5] + struct.pack(">HH", h, w) + buf[i + 9:]


def _patch_webp_vp8(buf: bytes, h: int, w: int) -> bytes:
    i = buf.index(b"\x9d\x01\x2a", _stream_at(buf)) + 3
    return buf[:i] + struct.pack("<HH", w, h) + buf[i + 4:]


@pytest.mark.parametrize("name", ["jpeg90", "jpeg50", "webp90", "webp75", "webp100"])
def test_stream_dims_match_what_was_encoded(name):
    x = _image()
    buf = imagecodec.encode(x, name)
    fmt = 0 if name.startswith("jpeg") else 1
    h, w, c = imagecodec.stream_dims(fmt, memoryview(buf)[_stream_at(buf):])
    assert (h, w) == (64, 48) and c in (None, 3)
    out = codec.decode(buf, out=np.empty(x.shape, np.float32))
    assert out.shape == x.shape and np.abs(out - x).mean() < 0.1


@pytest.mark.parametrize("patch", [_patch_jpeg_sof, _patch_webp_vp8], ids=["jpeg", "webp"])
def test_a_stream_claiming_10000x10000_is_refused_before_decoding(patch):
    name = "jpeg90" if patch is _patch_jpeg_sof else "webp90"
    liar = patch(imagecodec.encode(_image(), name), 10000, 10000)
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(CodecError, match="10000x10000.*refused before decoding"):
        codec.decode(liar, out=np.empty((1, 64, 48, 3), np.float32))
    ms = (time.perf_counter() - t) * 1e3
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # decoding it would cost ~300 MB and a second (as the issue measured); the check costs neither
    assert peak < 2 * 2**20 and ms < 200, (peak, ms)


def test_a_header_disagreeing_with_the_expected_shape_is_refused_before_decoding():
    big = imagecodec.encode(np.zeros((1, 2048, 2048, 3), np.uint8), "jpeg50")  # a few kB of flat colour
    tracemalloc.start()
    with pytest.raises(CodecError, match="expected"):
        codec.decode(big, out=np.empty((1, 64, 48, 3), np.uint8))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * 2**20, peak


@pytest.mark.parametrize("garbage", [b"", b"\xff\xd8", b"\xff\xd8\xff\xda\x00\x02", b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 20,
                                     b"\x00" * 64])
def test_garbage_streams_are_codec_errors(garbage):
    for fmt in (0, 1):
        buf = imagecodec.HEAD.pack(imagecodec.MAGIC, fmt, 1, 3, 0, 0.0, 255.0) + struct.pack("<3I", 8, 8, 3) + garbage
        with pytest.raises(CodecError):
            imagecodec.decode(buf)


def test_opencv_pixel_limit_is_set():
    import os

    assert int(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"]) <= imagecodec.MAX_PIXELS
