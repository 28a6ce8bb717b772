"""The split engine records each crossing tensor's channel axis, and -pc codecs use it.

Real models: the zoo's MobileNetV2-shaped ONNX network (NCHW) and mediapipe's
``hand_landmark_full`` TFLite model (NHWC), split at one cut each.
"""
import numpy as np
import pytest

from edgeinf import codec, zoo
from edgeinf.package import open_package
from edgeinf.split import build_package
from edgeinf.split.model import open_model


def _one_cut_package(name, tmp_path):
    m = open_model(str(zoo.path(name)))
    cut = m.select(None)[len(m.select(None)) // 2]
    pkg = open_package(build_package(m, tmp_path / name, at=cut.id))
    return pkg, pkg.cut(cut.id)


@pytest.mark.parametrize("name, ndim_axis", [("hand_landmark_full", -1), ("mobilenetv2", 1)])
def test_package_records_channel_axis_per_crossing_tensor(name, ndim_axis, tmp_path):
    pkg, cut = _one_cut_package(name, tmp_path)
    axes = cut.channel_axes()
    four_d = [t.name for t in cut.tensors if len(t.shape) == 4]
    assert four_d and all(axes[t] == ndim_axis for t in four_d)
    # survives the manifest round trip and drives a per-channel codec along that axis
    again = open_package(pkg.root).cut(cut.id)
    assert again.channel_axes() == axes
    t = next(t for t in cut.tensors if t.name in four_d)
    shape = [d if isinstance(d, int) else 1 for d in t.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    buf = codec.encode(x, "int8-pc", axis=axes[t.name])
    h = codec.header_info(buf)
    assert h.axis == axes[t.name] % x.ndim  # the decoder reads it from the header
    np.testing.assert_array_equal(codec.decode(buf), codec.reference_decode(buf))
