"""The compiled extension builds, reports itself, and its int8 codec matches numpy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeinf import _native
from edgeinf._native import kernels


def ref_quantize(x, scale, zp):
    q = np.sign(x / scale) * np.floor(np.abs(x / scale) + 0.5) + zp  # half away from zero
    return np.clip(q, -128, 127).astype(np.int8)


def test_build_info_reports_version_flags_isa():
    info = _native.build_info()
    assert info["version"] == __import__("edgeinf").__version__
    assert "-O3" in info["flags"]
    assert "-march=native" not in info["flags"]
    assert info["isa"] in {"generic", "sse4.1", "avx2", "avx512", "neon"}
    assert info["simd_width_bits"] == {"generic": 0, "avx2": 256, "avx512": 512}.get(info["isa"], 128)
    assert info["isa"] == info["isas"][-1] or info["isa"] == "generic"  # the best path that runs


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=4, max_side=17),
                  elements=st.floats(-1e4, 1e4, width=32)),
       st.floats(1e-3, 100.0), st.integers(-128, 127))
def test_quantize_int8_matches_numpy(x, scale, zp):
    scale = np.float32(scale)
    q = kernels.quantize_int8(x, scale, zp)
    assert q.shape == x.shape and q.dtype == np.int8
    # float32 x * (1/scale) vs x / scale may differ by one step exactly at .5 boundaries
    assert np.abs(q.astype(int) - ref_quantize(x, scale, zp).astype(int)).max(initial=0) <= 1
    back = kernels.dequantize_int8(q, scale, zp)
    np.testing.assert_allclose(back, (q.astype(np.float32) - zp) * scale, rtol=1e-6)


def test_quantize_roundtrip_error_is_half_step():
    x = np.random.default_rng(0).uniform(-1, 1, 100_000).astype(np.float32)
    scale = np.float32(2 / 255)
    back = kernels.dequantize_int8(kernels.quantize_int8(x, scale, 0), scale, 0)
    assert np.abs(back - x).max() <= scale / 2 + 1e-7


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale_is_a_clear_error(scale):
    with pytest.raises(ValueError, match="scale"):
        kernels.quantize_int8(np.ones(4, np.float32), scale, 0)


def test_bad_zero_point_is_a_clear_error():
    with pytest.raises(ValueError, match="zero_point"):
        kernels.dequantize_int8(np.ones(4, np.int8), 1.0, 300)


def test_non_contiguous_input_is_refused_not_misread():
    x = np.arange(64, dtype=np.float32).reshape(8, 8)[:, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        kernels.quantize_int8(x, 1.0, 0)


def test_nan_and_saturation():
    q = kernels.quantize_int8(np.array([np.nan, 1e9, -1e9], np.float32), 1.0, 3)
    assert q.tolist() == [3, 127, -128]
