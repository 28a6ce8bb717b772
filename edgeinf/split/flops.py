"""Compute estimates per node and per side of a cut.

MACs (multiply-accumulates) of the layers that dominate vision models, counted from the
output size and the weight shape; every other node counts one FLOP per output element.
:func:`node_macs` is the one MAC rule of edgeinf (``edgeinf.dynamic.macs`` calls it too).
``flops = 2 * macs + elementwise``. Estimates, not measurements: they rank cuts and scale
times to other devices; the profiler's timings are what was measured.

Weight layouts: ONNX Conv ``[Cout, Cin/g, kh, kw]``, ConvTranspose ``[Cin, Cout/g, kh, kw]``;
TFLite CONV_2D ``[Cout, kh, kw, Cin]``, DEPTHWISE_CONV_2D ``[1, kh, kw, C]``,
TRANSPOSE_CONV ``[Cout, kh, kw, Cin]``, FULLY_CONNECTED ``[Cout, Cin]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .model import SplitModel

Shape = Tuple[int, ...]


def _prod(shape) -> int:
    return int(np.prod([max(int(d), 1) for d in shape], dtype=np.int64)) if shape is not None else 0


def node_macs(op: str, out: Shape, ins: List[Optional[Shape]], trans_a: bool = False) -> int:
    """MACs of one node from its first output shape and its input shapes (None: unknown).

    ``trans_a``: ONNX Gemm's ``transA`` (A is stored K x M, so the reduced dim is ``A[-2]``).
    """
    w = ins[1] if len(ins) > 1 else None
    if op in ("Conv", "CONV_2D") and w:
        return _prod(out) * _prod(w[1:])
    if op == "DEPTHWISE_CONV_2D" and w:
        return _prod(out) * _prod(w[1:3])
    if op == "ConvTranspose" and w and ins[0]:
        return _prod(ins[0]) * _prod(w[1:])
    if op in ("TRANSPOSE_CONV", "Convolution2DTransposeBias"):
        # TRANSPOSE_CONV's inputs are (output_shape, weights, input); the custom op's (input, weights)
        x, wt = (ins[2], ins[1]) if op == "TRANSPOSE_CONV" and len(ins) > 2 else (ins[0], w)
        return _prod(x) * _prod(wt[:3]) if x and wt else 0
    if op in ("Gemm", "MatMul", "FULLY_CONNECTED", "BATCH_MATMUL") and ins[0]:
        k = w[1] if op == "FULLY_CONNECTED" and w else ins[0][-2] if trans_a and op == "Gemm" else ins[0][-1]
        return _prod(out) * max(int(k), 1)
    return 0


def node_costs(m: SplitModel) -> List[Dict[str, int]]:
    """``{"macs", "flops"}`` for each compute node of ``m`` (topological order)."""
    shape_of = _shape_lookup(m)
    out = []
    for node, proto_ins, trans_a in zip(m.graph.nodes, _all_inputs(m), _trans_a(m)):
        oshape = shape_of(node.outputs[0]) if node.outputs else None
        macs = node_macs(node.op, oshape or (), [shape_of(t) if t else None for t in proto_ins], trans_a)
        elems = sum(_prod(shape_of(t)) for t in node.outputs if shape_of(t) is not None)
        out.append({"macs": macs, "flops": 2 * macs + (0 if macs else elems)})
    return out


def cut_macs(m: SplitModel) -> Dict[str, Dict[str, int]]:
    """``{cut id: {"head_macs", "tail_macs", "head_flops", "tail_flops"}}``; empty if sizes are unknown."""
    if any(v is None for v in m.input_shapes.values()):
        return {}
    costs = node_costs(m)
    total_macs = sum(c["macs"] for c in costs)
    total_flops = sum(c["flops"] for c in costs)
    res = {}
    for cut in m.cuts:
        hm = sum(costs[i]["macs"] for i in cut.head)
        hf = sum(costs[i]["flops"] for i in cut.head)
        res[cut.id] = {"head_macs": hm, "tail_macs": total_macs - hm,
                       "head_flops": hf, "tail_flops": total_flops - hf}
    return res


def _all_inputs(m: SplitModel) -> List[List[str]]:
    """Every input name (constants included) of each compute node, in operator order."""
    if m.format == "onnx":
        return [list(p.input) for p in m.reader.protos]
    r = m.reader
    return [[r.tnames[i] if i >= 0 else "" for i in r.sub.operators[k].inputs] for k in r.compute]


def _trans_a(m: SplitModel) -> List[bool]:
    if m.format != "onnx":
        return [False] * len(m.graph.nodes)
    return [any(a.name == "transA" and a.i for a in p.attribute) for p in m.reader.protos]


def _shape_lookup(m: SplitModel):
    if m.format == "tflite":
        r = m.reader
        return lambda t: tuple(int(d) for d in r.sub.tensors[r.index[t]].shape) if t in r.index else None
    probe = m.probe()
    reader = m.reader

    def shape(t: str):
        if t in probe:
            return tuple(probe[t].shape)
        if t in reader.initializers:
            return tuple(reader.initializers[t].dims)
        cn = reader.const_nodes.get(t)
        for a in (cn.attribute if cn is not None and cn.op_type == "Constant" else ()):
            if a.name == "value":
                return tuple(a.t.dims)
        vi = reader._types.get(t)
        if vi is not None and vi.type.tensor_type.HasField("shape"):
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            return tuple(dims) if all(dims) else None
        return None

    return shape


def _dims(vi) -> List[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def onnx_macs(model) -> int:
    """MACs of one batch-1 run of an ONNX ``model`` (path, bytes or ModelProto), read from
    the file alone (shape inference, no session), with :func:`node_macs` per node."""
    import onnx

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
        out = shapes.get(node.output[0]) if node.output else None
        if out is None:
            continue
        trans_a = any(a.name == "transA" and a.i for a in node.attribute)
        total += node_macs(node.op_type, tuple(out), [tuple(shapes[t]) if t in shapes else None for t in node.input],
                           trans_a)
    return total
