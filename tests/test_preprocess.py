"""Fused preprocessing against cv2.resize + numpy, every mode, layout, ISA and stride."""
import numpy as np
import pytest

from edgeinf._native import kernels
from edgeinf.errors import InputError
from edgeinf.preprocess import letterbox_geometry, preprocess, reference_preprocess

ISAS = kernels.build_info()["isas"]
STD = np.array([0.229, 0.224, 0.225])
MEAN = np.array([0.485, 0.456, 0.406])


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return np.ascontiguousarray(skimage.data.chelsea())  # 300 x 451 RGB


def _pixel_err(out, ref, layout):
    """Max difference in [0, 1] pixel units (undo std)."""
    shape = (1, 3, 1, 1) if layout == "NCHW" else (1, 1, 1, 3)
    return float(np.abs((out - ref) * STD.reshape(shape)).max())


@pytest.mark.parametrize("mode", ["stretch", "crop", "letterbox"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("swap", [False, True])
def test_matches_opencv_within_one_level(photo, mode, layout, swap):
    for size in [(224, 224), (128, 300), (613, 700), (5, 3)]:
        kw = dict(layout=layout, mean=MEAN, std=STD, swap_rb=swap, mode=mode, pad_value=114)
        ref = reference_preprocess(photo, size, **kw)
        for isa in ISAS:
            out = preprocess(photo, size, isa=isa, **kw)
            assert out.shape == ref.shape and out.dtype == np.float32
            assert _pixel_err(out, ref, layout) <= 1 / 255 + 1e-6, (size, isa)


def test_strided_crop_view_is_read_in_place(photo):
    big = np.zeros((400, 700, 3), np.uint8)
    big[50:350, 100:551] = photo
    view = big[50:350, 100:551]
    assert view.strides[0] != view.shape[1] * 3
    a = preprocess(view, (96, 128), mean=MEAN, std=STD)
    np.testing.assert_array_equal(a, preprocess(photo, (96, 128), mean=MEAN, std=STD))
    flipped = photo[:, ::-1]  # negative column stride: copied, still correct
    ref = reference_preprocess(flipped, (64, 64), mean=MEAN, std=STD)
    assert _pixel_err(preprocess(flipped, (64, 64), mean=MEAN, std=STD), ref, "NCHW") <= 1 / 255 + 1e-6


def test_swap_rb_is_bgr_to_rgb(photo):
    bgr = np.ascontiguousarray(photo[..., ::-1])
    np.testing.assert_allclose(preprocess(bgr, (50, 60), swap_rb=True), preprocess(photo, (50, 60)), atol=1e-6)


@pytest.mark.parametrize("dtype,quant,scale", [(np.uint8, None, 1.0), (np.int8, (1.0, -128), 1.0),
                                               (np.uint8, (2 / 255, 3), 1 / 255)])
def test_quantized_output(photo, dtype, quant, scale):
    kw = dict(scale=scale, out_dtype=dtype, quant=quant, mode="letterbox", pad_value=0)
    out = preprocess(photo, (100, 100), **kw)
    ref = reference_preprocess(photo, (100, 100), **kw)
    assert out.dtype == np.dtype(dtype)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_out_argument_and_letterbox_geometry(photo):
    out = np.full((1, 160, 160, 3), 7.0, np.float32)
    res = preprocess(photo, (160, 160), layout="NHWC", mode="letterbox", pad_value=0, out=out)
    assert res is out
    r, top, left, h, w = letterbox_geometry(photo.shape[:2], (160, 160))
    assert (left, w) == (0, 160) and top > 0 and h < 160
    assert np.all(out[0, :top] == 0) and np.all(out[0, top + h:] == 0) and out[0, top:top + h].max() > 0.5
    with pytest.raises(InputError, match="shape"):
        preprocess(photo, (160, 160), out=out)


def test_bad_arguments_name_the_choices(photo):
    with pytest.raises(InputError, match="NHWC"):
        preprocess(photo, (8, 8), layout="CHW")
    with pytest.raises(InputError, match="letterbox"):
        preprocess(photo, (8, 8), mode="pad")
    with pytest.raises(InputError, match="uint8"):
        preprocess(photo.astype(np.float32), (8, 8))
    with pytest.raises(ValueError, match="isa"):
        preprocess(photo, (8, 8), isa="sve")


def test_tiny_and_upscaled_images():
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (1, 2), (2, 1), (3, 2), (7, 9)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for size in [(1, 1), (16, 16), (5, 33)]:
            ref = reference_preprocess(img, size)
            for isa in ISAS:
                assert np.abs(preprocess(img, size, isa=isa) - ref).max() <= 1 / 255 + 1e-6, (h, w, size, isa)
