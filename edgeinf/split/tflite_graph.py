"""TFLite flatbuffers: read into a :class:`~edgeinf.split.graph.Graph`, extract head and tail.

Uses the flatbuffer object API shipped with LiteRT (``ai_edge_litert.schema_py_generated``).
A side is a copy of the model whose main subgraph keeps only its operators, with its
inputs/outputs rewritten and its tensors and buffers pruned and renumbered (buffer 0 stays
the empty sentinel the format requires). Constant tensors are those with buffer data, plus
outputs of operators fed only by constants (``DEQUANTIZE`` of fp16 weights, ``DENSIFY``),
so those operators are copied to whichever side reads their result.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence, Set, Tuple

from ..errors import SplitError
from .graph import CutInfo, Graph, Node

# Metadata entries that stay true for a part of the model; others (TFLITE_METADATA
# describes the full model's inputs and outputs) are dropped.
_KEEP_METADATA = {b"min_runtime_version", b"reduced_precision_support"}


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError:
        raise SplitError("splitting .tflite models needs ai-edge-litert: pip install ai-edge-litert") from None
    return s


class TFLiteGraph:
    """A TFLite model (main subgraph) prepared for splitting."""

    format = "tflite"
    ext = ".tflite"

    def __init__(self, data: bytes, name: str = "model"):
        s = _schema()
        self.name = name
        self.model = s.ModelT.InitFromPackedBuf(data, 0)
        self._op_names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
        sg = self.model.subgraphs[0]
        self.sub = sg
        self.tnames = _unique_names(sg.tensors)
        self.index = {n: i for i, n in enumerate(self.tnames)}
        consts = {i for i, t in enumerate(sg.tensors) if self._has_data(t)}
        self.const_ops: Dict[int, int] = {}  # tensor index -> operator index making it from constants
        compute: List[int] = []
        for k, op in enumerate(sg.operators):
            ins = [i for i in op.inputs if i >= 0]
            if ins and all(i in consts for i in ins) and not self._stateful(op):
                consts |= {o for o in op.outputs if o >= 0}
                self.const_ops.update({o: k for o in op.outputs if o >= 0})
            else:
                compute.append(k)
        self.consts = consts
        self.compute = compute
        nodes = []
        for pos, k in enumerate(compute):
            op = sg.operators[k]
            nodes.append(Node(pos, self._node_name(k, op), self._op_name(op),
                              tuple(self.tnames[i] for i in op.inputs if i >= 0 and i not in consts),
                              tuple(self.tnames[i] for i in op.outputs if i >= 0)))
        self.graph = Graph(nodes, [self.tnames[i] for i in sg.inputs], [self.tnames[i] for i in sg.outputs],
                           {self.tnames[i] for i in consts})

    # -- small helpers ---------------------------------------------------------------------
    def _has_data(self, t) -> bool:
        b = self.model.buffers[t.buffer] if 0 <= t.buffer < len(self.model.buffers) else None
        return b is not None and (b.data is not None and len(b.data) > 0 or bool(b.size))

    def _stateful(self, op) -> bool:
        return any(self.sub.tensors[i].isVariable for i in op.inputs if i >= 0)

    def _op_name(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = self._op_names.get(builtin, str(builtin))
        return code.customCode.decode() if name == "CUSTOM" and code.customCode else name

    def _node_name(self, k: int, op) -> str:
        outs = [i for i in op.outputs if i >= 0]
        # NOTE: converters join fused op names with ';'; the last part names the layer
        short = self.tnames[outs[0]].split(";")[-1] if outs else str(k)
        return f"{self._op_name(op)}:{short}"

    def spec(self, tensor: str, concrete: bool = False):
        """``(shape, numpy dtype)`` of a tensor; dynamic dims are None unless ``concrete``."""
        import numpy as np

        s = _schema()
        t = self.sub.tensors[self.index[tensor]]
        types = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
        np_names = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8",
                    "INT64": "int64", "INT16": "int16", "INT8": "int8", "BOOL": "bool", "FLOAT64": "float64"}
        dt = np_names.get(types.get(t.type, "?"))
        if dt is None:
            raise SplitError(f"tensor {tensor!r} has TFLite type {types.get(t.type, t.type)}, not supported")
        sig = t.shape if concrete or t.shapeSignature is None or not len(t.shapeSignature) else t.shapeSignature
        shape = tuple(int(d) if d >= 0 else None for d in (sig if sig is not None else ()))
        return shape, np.dtype(dt)

    # -- extraction ------------------------------------------------------------------------
    def extract(self, cut: CutInfo, probe=None) -> Tuple[bytes, bytes]:
        """Packed ``(head, tail)`` flatbuffers for ``cut``."""
        crossing = [self.index[t] for t in cut.tensors]
        head = [self.compute[p] for p in sorted(cut.head)]
        tail = [self.compute[p] for p in range(len(self.compute)) if p not in cut.head]
        return (self._side(head, list(self.sub.inputs), crossing),
                self._side(tail, crossing, list(self.sub.outputs)))

    def _side(self, ops: Sequence[int], inputs: List[int], outputs: List[int]) -> bytes:
        import flatbuffers

        sg, m = self.sub, self.model
        ops = self._with_const_ops(ops)
        used: Set[int] = set(inputs) | set(outputs)
        for k in ops:
            used |= {i for i in list(sg.operators[k].inputs) + list(sg.operators[k].outputs) if i >= 0}
            used |= {i for i in (sg.operators[k].intermediates if sg.operators[k].intermediates is not None else [])}
        order = sorted(used)
        remap = {old: new for new, old in enumerate(order)}
        buffers, bmap = [m.buffers[0]], {}
        tensors = []
        for old in order:
            t = copy.copy(sg.tensors[old])
            if t.buffer > 0:
                if t.buffer not in bmap:
                    bmap[t.buffer] = len(buffers)
                    buffers.append(m.buffers[t.buffer])
                t.buffer = bmap[t.buffer]
            t.name = self.tnames[old].encode()
            tensors.append(t)
        new_sg = copy.copy(sg)
        new_sg.tensors = tensors
        new_sg.inputs = [remap[i] for i in inputs]
        new_sg.outputs = [remap[i] for i in outputs]
        new_sg.operators = [_remapped(sg.operators[k], remap) for k in ops]
        new = copy.copy(m)
        new.subgraphs = [new_sg] + list(m.subgraphs[1:])  # control-flow bodies are kept whole
        new.signatureDefs = None  # they index the full model's tensors
        new.metadata = []
        for md in m.metadata or []:
            if md.name in _KEEP_METADATA:
                kept = copy.copy(md)
                kept.buffer = len(buffers)
                buffers.append(m.buffers[md.buffer])
                new.metadata.append(kept)
        new.buffers = buffers
        b = flatbuffers.Builder(1 << 20)
        b.Finish(new.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def _with_const_ops(self, ops: Sequence[int]) -> List[int]:
        """``ops`` plus the constant-only operators whose results they read, in file order."""
        want, stack = set(ops), [i for k in ops for i in self.sub.operators[k].inputs if i in self.const_ops]
        while stack:
            k = self.const_ops[stack.pop()]
            if k not in want:
                want.add(k)
                stack.extend(i for i in self.sub.operators[k].inputs if i in self.const_ops)
        return sorted(want)


def _remapped(op, remap: Dict[int, int]):
    new = copy.copy(op)
    new.inputs = [remap[i] if i >= 0 else i for i in op.inputs]
    new.outputs = [remap[i] if i >= 0 else i for i in op.outputs]
    if op.intermediates is not None:
        new.intermediates = [remap[i] for i in op.intermediates]
    return new


def _unique_names(tensors) -> List[str]:
    """Tensor names, made unique (TFLite does not require it; cut specs do)."""
    seen: Dict[str, int] = {}
    out = []
    for i, t in enumerate(tensors):
        n = (t.name or b"").decode(errors="replace") or f"tensor_{i}"
        if n in seen:
            n = f"{n}#{i}"
        seen[n] = i
        out.append(n)
    return out
