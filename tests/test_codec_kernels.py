"""Every kernel path (SSE4.1, AVX2, AVX-512 where this CPU runs it, generic, forced generic
in a subprocess) through the public codec API against the numpy reference; channel-last
per-channel; the shuffle stage; NaN/inf refused; shuffled buffers fuzzed."""
import hashlib
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeinf import codec
from edgeinf._native import kernels
from edgeinf.errors import CodecError

ISAS = kernels.build_info()["isas"]
INT = [n for n in codec.CODECS if n.startswith("int") and "+" not in n]
SHUF = [n for n in codec.CODECS if "+shuf+" in n or "+bshuf+" in n]
# NHWC activations (odd channel counts start packed rows mid-byte), NCHW, 1-D
CASES = [((1, 7, 5, 40), -1), ((1, 3, 3, 1100), -1), ((2, 4, 3, 17), -1), ((1, 9, 6, 5), 1), ((33,), 0)]


@pytest.fixture
def isa(request):
    prev = kernels.set_default_isa(request.param)
    yield request.param
    kernels.set_default_isa(prev)


def _x(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 2
    return np.maximum(x, 0) - 0.1 * x  # activation-like, skewed


@pytest.mark.parametrize("isa", ISAS, indirect=True)
def test_every_path_matches_the_reference_channel_last_included(isa):
    for shape, axis in CASES:
        x = _x(shape)
        for name in INT + ["fp16", "bf16"]:
            buf = codec.encode(x, name, axis=axis)
            assert buf == codec.reference_encode(x, name, axis=axis), (isa, name, shape)
            np.testing.assert_array_equal(codec.decode(buf), codec.reference_decode(buf))
            out = np.empty_like(x)
            assert codec.decode(buf, out=out) is out and np.array_equal(out, codec.reference_decode(buf))


def _digest(specs) -> str:
    h = hashlib.sha256()
    for shape, axis in specs:
        x = _x(tuple(shape))
        for name in INT + SHUF:
            buf = codec.encode(x, name, axis=axis)
            h.update(buf)
            h.update(codec.decode(buf).tobytes())
    return h.hexdigest()


def test_forced_generic_subprocess_gives_identical_bytes():
    code = ("import json, sys; from tests.test_codec_kernels import _digest; "
            "from edgeinf import _native; print(_native.build_info()['isa'], _digest(json.loads(sys.argv[1])))")
    env = {**os.environ, "EDGEINF_FORCE_GENERIC": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, json.dumps(CASES)], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["generic", _digest(CASES)]


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("name", INT)
def test_non_finite_values_are_refused_not_zeroed(isa, name):
    for shape, axis in [((1, 6, 5, 24), -1), ((1, 24, 6, 5), 1), ((100,), 0)]:
        for bad in (np.nan, np.inf, -np.inf):
            x = _x(shape)
            x.reshape(-1)[x.size // 3] = bad
            with pytest.raises(CodecError, match="finite"):
                codec.encode(x, name, axis=axis)
            with pytest.raises(CodecError, match="finite"):
                codec.reference_encode(x, name, axis=axis)
    big = _x((1, 40, 40, 64))
    big[0, -1, -1, -1] = np.nan  # in the last SIMD tail
    with pytest.raises(CodecError, match="1 NaN"):
        codec.encode(big, name, axis=-1)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
def test_shuffle_stage_round_trips_and_shrinks_real_like_floats(isa):
    for shape, _ in CASES + [((0, 4), 0), ((), 0)]:
        for dt in (np.float32, np.float16):
            x = _x(shape).astype(dt)
            for name in SHUF:
                buf = codec.encode(x, name)
                assert codec.header_info(buf).shuffle
                np.testing.assert_array_equal(codec.decode(buf), codec.decode(codec.encode(x, name.split("+")[0])))
    x = _x((1, 28, 28, 40))
    for base in ("raw", "fp16"):
        for stage in ("lz4", "zstd"):
            assert len(codec.encode(x, f"{base}+shuf+{stage}")) < len(codec.encode(x, f"{base}+{stage}"))
    for base in ("raw", "fp16"):
        assert len(codec.encode(x, f"{base}+bshuf+lz4")) < len(codec.encode(x, f"{base}+lz4"))
    buf = codec.encode(x, "raw+bshuf+lz4")
    assert codec.header_info(buf).bitplanes and not codec.header_info(codec.encode(x, "raw+shuf+lz4")).bitplanes


def test_bitplanes_kernel_is_a_bit_transpose_on_every_path():
    rng = np.random.default_rng(4)
    for n in (0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 1027, 31360):
        data = rng.integers(0, 256, n, np.uint8)
        m = n - n % 8
        # reference: plane k holds bit k of every byte, 8 bytes' bits to a byte, least significant first
        bits = np.unpackbits(data[:m].reshape(-1, 1), axis=1, bitorder="little")  # (m, 8): bit k in column k
        want = np.packbits(bits.T, axis=1, bitorder="little").tobytes() + data[m:].tobytes()
        for isa in ISAS:
            got = kernels.bitplanes(data.tobytes(), False, isa)
            assert got == want, (isa, n)
            assert kernels.bitplanes(got, True, isa) == data.tobytes(), (isa, n)


def test_shuffle_kernel_is_a_byte_transpose_on_every_path():
    data = np.random.default_rng(3).integers(0, 256, 4 * 1031, np.uint8).tobytes()
    for isa in ISAS:
        for size in (2, 4):
            planes = kernels.shuffle(data, size, False, isa)
            assert planes == np.frombuffer(data, np.uint8).reshape(-1, size).T.tobytes()
            assert kernels.shuffle(planes, size, True, isa) == data
    with pytest.raises(ValueError, match="element size"):
        kernels.shuffle(data[:5], 4)


def test_lz4_planes_leaves_noise_out_and_transposes_the_rest():
    rng = np.random.default_rng(5)
    n = 20000  # elements: planes of 20 kB, judged on their first 4 kB
    x = np.zeros((n, 4), np.uint8)
    x[:, 0] = rng.integers(0, 256, n)  # noise
    x[:, 1] = np.arange(n) % 7  # repeats
    x[:, 3] = rng.integers(0, 256, n)
    x[:4096, 3] = 0  # compressible at first, noise after: judged on the sample, still round-trips
    data = x.tobytes()
    for isa in ISAS:
        planes, mask = kernels.lz4_planes(data, 4, False, 4096, isa)
        assert planes == kernels.shuffle(data, 4, False, isa) and mask == 0b1110, (isa, bin(mask))
        tplanes, tmask = kernels.lz4_planes(data, 4, True, 4096, isa)
        assert tmask == mask
        for k in range(4):
            want = planes[k * n:(k + 1) * n]
            got = tplanes[k * n:(k + 1) * n]
            assert got == (kernels.bitplanes(want, False, isa) if mask >> k & 1 else want), (isa, k)
    f = np.frombuffer(data, np.float32).reshape(1, -1)
    for name in ("raw+shuf+lz4", "raw+bshuf+lz4"):
        np.testing.assert_array_equal(codec.decode(codec.encode(f, name)), f)
    with pytest.raises(ValueError, match="sample"):
        kernels.lz4_planes(data, 4, False, 0)


def _lz4_tensors():
    rng = np.random.default_rng(11)
    act = rng.standard_normal((1, 40, 28, 28)).astype(np.float32)
    act = np.maximum(act, 0) - 0.1 * act  # activation-like: a float32 exponent plane with repeats
    return [act, act.astype(np.float16), (np.arange(40000) % 7).astype(np.float32).reshape(200, 200),
            np.zeros((1, 3), np.float32), np.zeros((0, 4), np.float32), rng.standard_normal(12_345).astype(np.float32),
            np.full((3, 4099), 2.5, np.float16)]


def test_native_lz4_stage_writes_the_python_lz4_reference_bytes_on_every_path():
    """The shuffled lz4 stages run in one native call with the vendored lz4: the buffer is
    byte for byte what python-lz4 writes one plane at a time (``codec._ref_lz4_shuffled``),
    and python-lz4 reads every plane it wrote back (the same wire format either way)."""
    lim = codec.DEFAULT_LIMITS
    import lz4

    assert kernels.lz4_version() == lz4.library_version_number()  # else the bytes may differ
    for x in _lz4_tensors():
        for name in ("raw+shuf+lz4", "raw+bshuf+lz4", "fp16+shuf+lz4", "fp16+bshuf+lz4", "bf16+bshuf+lz4"):
            buf = codec.encode(x, name)
            h = codec.header_info(buf)
            size = 4 if h.codec == "raw" and h.dtype == np.float32 else 2
            planes = codec._planes(memoryview(buf)[h.header_len:], h)  # python-lz4 inflates them
            payload = kernels.shuffle(b"".join(planes), size, True)
            ref = codec._ref_lz4_shuffled(buf[:h.header_len], payload, size, h.bitplanes)
            assert ref == buf, (name, x.shape, x.dtype)
            want = kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, planes, "generic")
            for isa in ISAS:
                assert kernels.lz4_shuffled(buf[:h.header_len], payload, size, h.bitplanes, 4096, isa) == buf, isa
                got = kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, None, isa)  # inflated natively
                np.testing.assert_array_equal(got, want)
            if name.startswith("raw"):
                got = codec.decode(buf)
                assert got.dtype == x.dtype and np.array_equal(got.view(np.uint8), x.view(np.uint8))
    with pytest.raises(ValueError, match="head"):
        kernels.lz4_shuffled(b"short", bytes(16), 4, False, 4096)
    with pytest.raises(ValueError, match="element size"):
        kernels.lz4_shuffled(bytes(32), bytes(15), 4, False, 4096)


def test_native_plain_lz4_stage_is_python_lz4_both_ways_on_every_path():
    """``+lz4`` without a shuffle: one native lz4 block written straight after the header,
    byte for byte python-lz4's, and inflated by ``kernels.decode`` itself (a raw tensor
    straight into the output) to what python-lz4's inflation gives."""
    import lz4.block

    lim = codec.DEFAULT_LIMITS
    for x in _lz4_tensors():
        for name in ("raw+lz4", "fp16+lz4", "bf16+lz4", "int8+lz4", "int8-pc+lz4", "int4-pc+lz4", "int2+lz4"):
            buf = codec.encode(x, name)
            h = codec.header_info(buf)
            payload = lz4.block.decompress(buf[h.header_len:], uncompressed_size=h.raw_len) if h.raw_len else b""
            ref = bytearray(buf[:h.header_len]) + lz4.block.compress(payload, store_size=False)
            struct.pack_into("<Q", ref, 24, len(ref) - h.header_len)
            assert bytes(ref) == buf, (name, x.shape, x.dtype)
            assert kernels.lz4_block(buf[:h.header_len], payload) == buf
            want = kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, payload, "generic")
            for isa in ISAS:
                got = kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, None, isa)
                assert got.dtype == want.dtype and np.array_equal(got.view(np.uint8), want.view(np.uint8)), (name, isa)
            out = np.empty(h.shape, want.dtype)
            res = kernels.decode(buf, out, lim.max_elements, 8, lim.max_bytes, None)
            assert np.shares_memory(res, out) or out.size == 0
            np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match="head"):
        kernels.lz4_block(b"short", bytes(16))


def test_a_corrupt_plain_lz4_block_is_a_codec_error():
    x = _lz4_tensors()[0]
    for name in ("raw+lz4", "int8-pc+lz4"):
        buf = bytearray(codec.encode(x, name))
        hl = codec.header_info(bytes(buf)).header_len
        buf[hl:] = b"\xff" * (len(buf) - hl)  # match lengths past the output
        with pytest.raises(CodecError, match="corrupt lz4"):
            codec.decode(bytes(buf))
        with pytest.raises(CodecError, match="corrupt lz4"):
            codec.decode(bytes(buf), out=np.zeros_like(x))


def test_encode_in_one_native_call_writes_the_step_by_step_bytes():
    """``codec.encode`` hands a C-contiguous float tensor to ``kernels.encode`` whole (header,
    payload and the lz4 stage in one call); anything else (here: the same values as a strided
    view) goes step by step through Python. Both must write the same bytes, for every codec
    and both dtypes, and refuse non-finite values to quantized codecs alike."""
    rng = np.random.default_rng(12)
    for dt in (np.float32, np.float16):
        x = (rng.standard_normal((3, 40, 7)) * 3).astype(dt)
        wide = np.zeros((3, 40, 14), dt)
        wide[..., ::2] = x
        strided = wide[..., ::2]
        assert not strided.flags.c_contiguous and np.array_equal(strided, x)
        for name in codec.CODECS:
            for axis in (None, -1):
                assert codec.encode(x, name, axis=axis) == codec.encode(strided, name, axis=axis), (name, dt, axis)
    bad = np.ones((2, 8), np.float32)
    bad[1, 3] = np.nan
    for name in ("int8+lz4", "int4-pc+lz4", "int8"):
        for arr in (bad, np.asfortranarray(bad)):
            with pytest.raises(CodecError, match="finite values only"):
                codec.encode(arr, name)


def test_a_corrupt_lz4_plane_is_a_codec_error():
    x = _lz4_tensors()[0]
    buf = bytearray(codec.encode(x, "raw+shuf+lz4"))
    h = codec.header_info(bytes(buf))
    lens = struct.unpack_from("<4I", buf, h.header_len)
    k = next(i for i, n in enumerate(lens) if n < h.raw_len // 4)  # a compressed plane
    start = h.header_len + 16 + sum(lens[:k])
    bad = bytearray(buf)
    bad[start:start + lens[k]] = b"\xff" * lens[k]  # match lengths past the plane
    with pytest.raises(CodecError, match="corrupt lz4 plane"):
        codec.decode(bytes(bad))
    out = np.zeros_like(x)
    with pytest.raises(CodecError):
        codec.decode(bytes(bad), out=out)


def _shuffled():
    return bytearray(codec.encode(_x((3, 5, 16)), "raw+shuf+lz4"))


def test_decode_takes_a_shuffled_payload_as_separate_planes_on_every_path():
    """A staged decode hands ``kernels.decode`` each plane where lz4/zstd left it (no join):
    planes apart and in any memory order give the joined payload's floats on every path, and
    a wrong count or length is a FormatError, not a read past a plane."""
    lim = codec.DEFAULT_LIMITS
    for dt, name in ((np.float32, "raw+shuf+zstd"), (np.float16, "raw+shuf+lz4"), (np.float32, "fp16+shuf+zstd"),
                     (np.float32, "bf16+shuf+lz4")):
        x = _x((1, 5, 7, 33)).astype(dt)
        buf = codec.encode(x, name)
        h = codec.header_info(buf)
        planes = codec._decompress(buf, h)
        size, joined = len(planes), b"".join(planes)
        assert size == (4 if name.startswith("raw") and dt == np.float32 else 2)
        n = h.raw_len // size
        apart = [bytes(joined[k * n:(k + 1) * n]) for k in range(size)]
        want = kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, joined, "generic")
        for isa in ISAS:
            got = kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, apart, isa)
            np.testing.assert_array_equal(got, want)
            got = kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, tuple(apart), isa)
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(codec.decode(buf), want)
        for bad in (apart[:-1], apart + [apart[0]], [apart[0][:-1]] + apart[1:], [b""] * size):
            with pytest.raises(kernels.FormatError):
                kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, bad)
    plain = codec.encode(_x((4, 4)), "raw+lz4")  # not shuffled: a list is refused
    with pytest.raises(kernels.FormatError):
        kernels.decode(plain, None, lim.max_elements, 8, lim.max_bytes, [bytes(64)])


def test_malformed_shuffled_buffers_raise_codec_error():
    good = _shuffled()
    h = codec.header_info(bytes(good))
    hl = h.header_len
    cases = {
        "plane length over the plane": lambda b: struct.pack_into("<I", b, hl, h.raw_len),
        "lengths do not sum": lambda b: struct.pack_into("<I", b, hl + 4, 1),
        "shuffle flag on int8": lambda b: struct.pack_into("B", b, 5, 3),
        "shuffle flag without a stage": lambda b: struct.pack_into("B", b, 6, 8),
        "bit-plane flag without the shuffle flag": lambda b: struct.pack_into("B", b, 6, 2 | 16),
        "unknown flag bit 5": lambda b: struct.pack_into("B", b, 6, 2 | 8 | 32),
        "table truncated": lambda b: struct.pack_into("<Q", b, 24, 3),
    }
    for why, mutate in cases.items():
        b = bytearray(good)
        mutate(b)
        if why == "table truncated":
            b = b[:hl + 3]
        with pytest.raises(CodecError):
            codec.decode(bytes(b))
    for cut in range(hl, len(good)):
        with pytest.raises(CodecError):
            codec.decode(bytes(good[:cut]))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.binary(min_size=1, max_size=8), st.sampled_from(SHUF))
def test_hypothesis_mutated_shuffled_buffers_never_crash(pos, junk, name):
    good = bytearray(codec.encode(_x((2, 3, 8)).astype(np.float16 if "fp16" in name else np.float32), name))
    p = pos % len(good)
    good[p:p + len(junk)] = junk
    try:
        y = codec.decode(bytes(good), limits=codec.Limits(max_elements=1 << 12))
        assert y.size <= 1 << 12
    except CodecError:
        pass


def test_large_outputs_take_streaming_stores_and_still_match():
    """Outputs >= 16 MiB are written with streaming stores after an aligning head; every
    path and every 4-byte misalignment of out= gives the generic path's floats."""
    x = _x((1, 4, 1024, 1025))  # 16.8 MB of float32
    lim = codec.DEFAULT_LIMITS
    for name in ("int8", "int4", "int2"):
        buf = codec.encode(x, name)
        want = kernels.decode(buf, None, lim.max_elements, 8, lim.max_bytes, None, "generic")
        np.testing.assert_array_equal(want, codec.reference_decode(buf))
        base = np.empty(x.size + 16, np.float32)
        for isa in ISAS:
            for off in (0, 1, 3):
                out = base[off:off + x.size].reshape(x.shape)
                kernels.decode(buf, out, lim.max_elements, 8, lim.max_bytes, None, isa)
                assert np.array_equal(out, want), (name, isa, off)
