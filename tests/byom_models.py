"""Small ONNX models of the kind a user brings, built here with onnx.helper (not zoo models).

- ``nchw_classifier``: an NCHW image classifier (batch dim symbolic);
- ``two_input``: an image and a non-image feature vector, joined before the classifier;
- ``int64_cut``: a graph whose natural cut carries an int64 shape tensor next to an activation.

Weights are seeded; compute is about 300 M MACs, enough for local execution on an emulated
Raspberry Pi to cost tens of ms.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HW = 64


def _w(rng, *shape, scale=None):
    fan_in = int(np.prod(shape[1:])) or 1
    return (rng.standard_normal(shape) * (scale or np.sqrt(2.0 / fan_in))).astype(np.float32)


def _convs(rng, x: str, cin: int, widths, inits, nodes, prefix="c"):
    for i, cout in enumerate(widths):
        w, b = f"{prefix}{i}_w", f"{prefix}{i}_b"
        inits += [numpy_helper.from_array(_w(rng, cout, cin, 3, 3), w),
                  numpy_helper.from_array(np.zeros(cout, np.float32), b)]
        nodes += [helper.make_node("Conv", [x, w, b], [f"{prefix}{i}"], pads=[1, 1, 1, 1], name=f"{prefix}{i}_conv"),
                  helper.make_node("Relu", [f"{prefix}{i}"], [f"{prefix}{i}_r"], name=f"{prefix}{i}_relu")]
        x, cin = f"{prefix}{i}_r", cout
    return x, cin


def _head(rng, x: str, cin: int, classes: int, inits, nodes, out="logits"):
    inits += [numpy_helper.from_array(_w(rng, classes, cin), "fc_w"),
              numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], [out], transB=1, name="fc")]


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image_input(name="image"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 3, HW, HW])


def nchw_classifier(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    x, c = _convs(rng, "image", 3, [64, 64, 64], inits, nodes)
    _head(rng, x, c, 10, inits, nodes)
    g = helper.make_graph(nodes, "user_classifier", [_image_input()],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    return _save(g, path)


def two_input(path: Path, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    x, c = _convs(rng, "image", 3, [64, 64, 64], inits, nodes)
    inits += [numpy_helper.from_array(_w(rng, 8, c + 16), "fc_w"), numpy_helper.from_array(np.zeros(8, np.float32), "fc_b")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
              helper.make_node("Concat", ["flat", "meta"], ["joined"], axis=1, name="join"),
              helper.make_node("Gemm", ["joined", "fc_w", "fc_b"], ["score"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "user_two_input",
                          [_image_input(), helper.make_tensor_value_info("meta", TensorProto.FLOAT, ["batch", 16])],
                          [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 8])], inits)
    return _save(g, path)


def sensor_1d(path: Path, seed: int = 3, length: int = 4096) -> Path:
    """A non-image model: 8-channel signals (N x 8 x length) -> 1-D convolutions -> 5 scores."""
    rng = np.random.default_rng(seed)
    inits, nodes, x, cin = [], [], "signal", 8
    for i, cout in enumerate([64, 64, 64]):
        w, b = f"s{i}_w", f"s{i}_b"
        inits += [numpy_helper.from_array(_w(rng, cout, cin, 9), w), numpy_helper.from_array(np.zeros(cout, np.float32), b)]
        nodes += [helper.make_node("Conv", [x, w, b], [f"s{i}"], pads=[4, 4], name=f"s{i}_conv"),
                  helper.make_node("Relu", [f"s{i}"], [f"s{i}_r"], name=f"s{i}_relu")]
        x, cin = f"s{i}_r", cout
    _head(rng, x, cin, 5, inits, nodes, out="scores")
    g = helper.make_graph(nodes, "user_sensor_1d",
                          [helper.make_tensor_value_info("signal", TensorProto.FLOAT, ["batch", 8, length])],
                          [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 5])], inits)
    return _save(g, path)


def int64_cut(path: Path, seed: int = 2) -> Path:
    """conv -> (activation y, Shape(y)) -> convs -> Flatten -> Reshape(., Shape(y)) -> head.

    Every cut between the Shape node and the Reshape crosses an int64 shape tensor."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    y, c = _convs(rng, "image", 3, [64], inits, nodes, prefix="a")
    nodes.append(helper.make_node("Shape", [y], ["y_shape"], name="shape_of_y"))
    z, c = _convs(rng, y, c, [64, 64], inits, nodes, prefix="b")
    nodes += [helper.make_node("Flatten", [z], ["z_flat"], name="flatten_z"),
              helper.make_node("Reshape", ["z_flat", "y_shape"], ["z_back"], name="reshape_back")]
    _head(rng, "z_back", c, 10, inits, nodes)
    g = helper.make_graph(nodes, "user_int64_cut", [_image_input()],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    return _save(g, path)
