"""A MobileNetV2-shaped ONNX graph with fixed-seed weights.

Same topology as Sandler et al. 2018 (inverted residuals, linear bottlenecks, ReLU6, width
1.0, 224x224, 1000 classes, ~3.5 M parameters, ~300 M MACs) built with ``onnx.helper``, as
an exporter would emit it after folding BatchNorm into the convolutions: Conv + Clip,
residual Adds, a dynamic batch dim, and the Clip bounds as shared Constant nodes. Its
accuracy is irrelevant; it exists to profile compute and tensor sizes of a realistic graph.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
            (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class _Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.n = 0

    def _name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}_{self.n}"

    def conv(self, x, cin, cout, k, stride, groups=1, act=True):
        name = self._name("conv")
        fan_in = cin // groups * k * k
        w = (self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (self.rng.standard_normal(cout) * 0.01).astype(np.float32)
        self.inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
        out = f"{name}_out"
        self.nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [out], name=name,
                                           kernel_shape=[k, k], strides=[stride, stride],
                                           pads=[k // 2] * 4, group=groups))
        if not act:
            return out
        relu = self._name("relu6")
        self.nodes.append(helper.make_node("Clip", [out, "clip_min", "clip_max"], [f"{relu}_out"], name=relu))
        return f"{relu}_out"

    def block(self, x, cin, cout, t, stride):
        h, hidden = x, cin * t
        if t != 1:
            h = self.conv(h, cin, hidden, 1, 1)
        h = self.conv(h, hidden, hidden, 3, stride, groups=hidden)
        h = self.conv(h, hidden, cout, 1, 1, act=False)
        if stride == 1 and cin == cout:
            name = self._name("add")
            self.nodes.append(helper.make_node("Add", [x, h], [f"{name}_out"], name=name))
            h = f"{name}_out"
        return h


def build(seed: int = 0, num_classes: int = 1000, size: int = 224) -> onnx.ModelProto:
    """Return the model; the same seed gives byte-identical weights."""
    b = _Builder(seed)
    b.nodes.append(helper.make_node("Constant", [], ["clip_min"], name="clip_min",
                                    value=numpy_helper.from_array(np.array(0.0, np.float32))))
    b.nodes.append(helper.make_node("Constant", [], ["clip_max"], name="clip_max",
                                    value=numpy_helper.from_array(np.array(6.0, np.float32))))
    x = b.conv("input", 3, 32, 3, 2)
    cin = 32
    for t, c, n, s in SETTINGS:
        for i in range(n):
            x = b.block(x, cin, c, t, s if i == 0 else 1)
            cin = c
    x = b.conv(x, cin, 1280, 1, 1)
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool_out"], name="pool"))
    b.nodes.append(helper.make_node("Flatten", ["pool_out"], ["flat_out"], name="flatten", axis=1))
    w = (b.rng.standard_normal((num_classes, 1280)) * np.sqrt(1.0 / 1280)).astype(np.float32)
    b.inits += [numpy_helper.from_array(w, "fc.weight"),
                numpy_helper.from_array(np.zeros(num_classes, np.float32), "fc.bias")]
    b.nodes.append(helper.make_node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        b.nodes, "mobilenetv2",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="edgeinf.models.mobilenetv2")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save(path, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    onnx.save(build(seed), str(tmp))
    tmp.replace(path)
    return path
