"""Multiply-accumulate counts read from an ONNX graph (batch 1).

Counted: Conv, Gemm and MatMul, which carry all but a sliver of a CNN's arithmetic;
pooling, activations and adds are left out, as MAC counts conventionally do. Counting the
exported graph rather than the training code means the number describes what runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Union

import numpy as np
import onnx


def _dims(vi) -> List[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def count(model: Union[str, Path, bytes, onnx.ModelProto]) -> int:
    """MACs of one batch-1 run of ``model`` (path, bytes or ModelProto)."""
    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    elif isinstance(model, bytes):
        model = onnx.load_from_string(model)
    model = onnx.ModelProto.FromString(model.SerializeToString())  # never mutate the caller's
    for inp in model.graph.input:
        for d in inp.type.tensor_type.shape.dim:
            if d.dim_param or d.dim_value <= 0:  # symbolic batch -> 1
                d.Clear()
                d.dim_value = 1
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    shapes: Dict[str, List[int]] = {vi.name: _dims(vi) for vi in [*g.input, *g.value_info, *g.output]}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    total = 0
    for node in g.node:
        out = shapes.get(node.output[0])
        if out is None:
            continue
        if node.op_type == "Conv":
            w = shapes[node.input[1]]  # (cout, cin / groups, kh, kw)
            total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes[node.input[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            total += int(np.prod(out)) * int(a[-2] if trans_a else a[-1])
    return total
