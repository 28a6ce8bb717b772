"""The teacher: a real pretrained TFLite model, converted TFLite -> ONNX -> torch, checked.

``tflite2onnx`` (PyPI) turns the mediapipe graph into ONNX (NCHW inside, the float16
weights widened to float32). ``onnx2torch`` would take it on to torch, but it imports
torchvision at import time, whose PyPI wheels do not match the CPU torch build here; the
teacher uses six ONNX ops (Conv, Clip, Add, ReduceMean, Gemm, Sigmoid), so
:class:`OnnxModule` interprets exactly those and names any other op in its error.

:func:`check` runs the original ``.tflite`` (LiteRT), the ONNX graph (ONNX Runtime) and the
torch module on the same photographs and reports the worst relative output error of each
conversion step; the build refuses a teacher whose errors exceed :data:`MAX_REL_ERR`.
Train-time only (imports torch).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ..errors import ModelError

log = logging.getLogger("edgeinf")

MAX_REL_ERR = 1e-3  # worst sample, outputs pooled: a conversion error, not float rounding
OPS = ("Conv", "Clip", "Add", "ReduceMean", "Gemm", "Sigmoid")


def to_onnx(tflite_path: Path, out: Path) -> Path:
    """``tflite2onnx`` conversion of ``tflite_path`` into ``out`` (atomic)."""
    try:
        import tflite2onnx
    except ImportError as e:
        raise ModelError('the bottleneck teacher needs tflite2onnx: pip install "edgeinf[train]"') from e
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.onnx")
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)  # NOTE: warns per fp16 tensor; check() judges
    tflite2onnx.convert(str(tflite_path), str(tmp))
    tmp.replace(out)
    return out


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _module_for(node, consts: Dict[str, np.ndarray]):
    """The torch layer of a Conv/Gemm node (weights from the initializers), else None."""
    import torch

    a = _attrs(node)
    if node.op_type == "Conv":
        w = torch.from_numpy(consts[node.input[1]].copy())
        conv = torch.nn.Conv2d(w.shape[1] * a.get("group", 1), w.shape[0], tuple(w.shape[2:]),
                               stride=tuple(a.get("strides", (1, 1))), dilation=tuple(a.get("dilations", (1, 1))),
                               groups=a.get("group", 1), bias=len(node.input) > 2, padding=0)
        conv.weight.data.copy_(w)
        if len(node.input) > 2:
            conv.bias.data.copy_(torch.from_numpy(consts[node.input[2]].copy()))
        return conv
    if node.op_type == "Gemm":
        if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise ModelError(f"Gemm {node.name!r}: only transA=0, alpha=beta=1 is supported")
        w = consts[node.input[1]]
        w = w if a.get("transB", 0) else w.T
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=len(node.input) > 2)
        lin.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        if len(node.input) > 2:
            lin.bias.data.copy_(torch.from_numpy(consts[node.input[2]].copy()))
        return lin
    return None


class _Graph:
    """What :class:`OnnxModule` keeps of an ONNX graph: nodes in order, constants, names."""

    def __init__(self, path: Path):
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        g = model.graph
        self.consts = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.consts]
        self.outputs = [o.name for o in g.output]
        self.nodes = list(g.node)
        bad = sorted({n.op_type for n in self.nodes} - set(OPS))
        if bad:
            raise ModelError(f"{path.name}: ONNX op(s) {bad} are not supported by the teacher converter "
                             f"(supported: {list(OPS)})")


def _torch_module():
    import torch
    import torch.nn.functional as F

    class OnnxModule(torch.nn.Module):
        """A torch module computing an ONNX graph of :data:`OPS`, node by node, in graph order.

        ``forward(x)`` takes the graph's single input and returns ``{output name: tensor}``;
        ``values(x, names)`` returns any intermediate tensors by ONNX name (the cut's features).
        ``run_from(values, outputs)`` resumes the graph from given tensors (the tail).
        """

        def __init__(self, path: Path):
            super().__init__()
            self.graph = _Graph(Path(path))
            self.layers = torch.nn.ModuleList()
            self._index: List[int] = []  # node -> layer index or -1
            for node in self.graph.nodes:
                m = _module_for(node, self.graph.consts)
                self._index.append(len(self.layers) if m is not None else -1)
                if m is not None:
                    self.layers.append(m)
            self._attrs = [_attrs(n) for n in self.graph.nodes]

        def _node(self, i: int, env: dict):
            node, a = self.graph.nodes[i], self._attrs[i]
            get = lambda k: env[k] if k in env else torch.from_numpy(self.graph.consts[k])  # noqa: E731
            x = get(node.input[0])
            op = node.op_type
            if op == "Conv":
                p = a.get("pads", (0, 0, 0, 0))  # ONNX: (top, left, bottom, right)
                if any(p):
                    x = F.pad(x, (p[1], p[3], p[0], p[2]))
                return self.layers[self._index[i]](x)
            if op == "Gemm":
                return self.layers[self._index[i]](x)
            if op == "Clip":  # NOTE: bounds from the initializers, so tracing sees Python floats
                lo, hi = (self._bound(node.input, j) for j in (1, 2))
                return torch.clamp(x, lo, hi)
            if op == "Add":
                return x + get(node.input[1])
            if op == "Sigmoid":
                return torch.sigmoid(x)
            return x.mean(dim=tuple(a["axes"]), keepdim=bool(a.get("keepdims", 1)))  # ReduceMean

        def _bound(self, inputs, j: int):
            if len(inputs) <= j or not inputs[j]:
                return None
            if inputs[j] not in self.graph.consts:
                raise ModelError(f"Clip bound {inputs[j]!r} is computed, not a constant: not supported")
            return float(self.graph.consts[inputs[j]])

        def _walk(self, env: dict, stop: Sequence[str] = (), start: int = 0) -> dict:
            want = set(stop)
            for i in range(start, len(self.graph.nodes)):
                node = self.graph.nodes[i]
                if all(k in env for k in node.output):
                    continue
                if not all(k in env or k in self.graph.consts or not k for k in node.input):
                    continue  # before a resumed cut: its inputs were never computed
                env[node.output[0]] = self._node(i, env)
                if want and want.issubset(env):
                    break
            return env

        def forward(self, x):
            env = self._walk({self.graph.inputs[0]: x})
            return {k: env[k] for k in self.graph.outputs}

        def values(self, x, names: Sequence[str]) -> dict:
            env = self._walk({self.graph.inputs[0]: x}, stop=names)
            return {k: env[k] for k in names}

        def run_from(self, values: dict) -> dict:
            env = self._walk(dict(values))
            missing = [k for k in self.graph.outputs if k not in env]
            if missing:
                raise ModelError(f"resuming from {sorted(values)} does not reach outputs {missing}: "
                                 "the cut is not a complete separator of the graph")
            return {k: env[k] for k in self.graph.outputs}

    return OnnxModule


def load_torch(onnx_path: Path):
    """The ONNX graph as a frozen torch module in eval mode (see :class:`OnnxModule`)."""
    mod = _torch_module()(onnx_path).eval()
    for p in mod.parameters():
        p.requires_grad_(False)
    return mod


def _rel(ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray]) -> float:
    """Relative L2 error of all outputs pooled (a presence score of 1e-4 has no scale of its own)."""
    d = sum(float(np.sum((got[k].astype(np.float64) - ref[k]) ** 2)) for k in ref)
    n = sum(float(np.sum(ref[k].astype(np.float64) ** 2)) for k in ref)
    return float(np.sqrt(d) / max(np.sqrt(n), 1e-12))


def check(tflite_path: Path, onnx_path: Path, photos_nhwc: np.ndarray) -> dict:
    """Worst relative output error (outputs pooled, worst sample) of ONNX vs LiteRT and of torch
    vs ONNX Runtime on ``photos_nhwc``.

    ``photos_nhwc``: ``(N, H, W, 3)`` float32 in [0, 1], the teacher's input convention.
    Returns ``{"onnx_vs_tflite": x, "torch_vs_onnx": x, "n": N, "outputs": [...]}``.
    """
    import onnxruntime as ort
    import torch

    from ..backends import load

    lite = load(tflite_path, threads=1)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    tmod = load_torch(onnx_path)
    in_name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]
    errs = {"onnx_vs_tflite": 0.0, "torch_vs_onnx": 0.0}
    for x in photos_nhwc:
        x = x[None].astype(np.float32)
        ref = lite.run({lite.inputs[0].name: x})
        nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        got = dict(zip(outs, sess.run(None, {in_name: nchw})))
        with torch.no_grad():
            tt = {k: v.numpy() for k, v in tmod(torch.from_numpy(nchw)).items()}
        errs["onnx_vs_tflite"] = max(errs["onnx_vs_tflite"], _rel({k: ref[k] for k in outs}, got))
        errs["torch_vs_onnx"] = max(errs["torch_vs_onnx"], _rel(got, tt))
    return {**{k: float(f"{v:.3g}") for k, v in errs.items()}, "n": int(len(photos_nhwc)), "outputs": outs}
