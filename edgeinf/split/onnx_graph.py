"""ONNX graphs: read into a :class:`~edgeinf.split.graph.Graph`, extract head and tail.

Exported graphs keep weights as initializers *or* as hundreds of ``Constant`` nodes
(paddle2onnx), so constants are found by propagation: initializers, ``Constant`` nodes,
and any node whose inputs are all constant. Each side copies only the constants its own
nodes reach, so no weight is duplicated into the side that does not use it. Nodes with
subgraphs (If, Loop, Scan) read outer tensors implicitly; those count as their inputs.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import onnx
from onnx import helper

from ..errors import SplitError
from .graph import CutInfo, Graph, Node

log = logging.getLogger("edgeinf")

# Nodes that look constant (no varying inputs) but are not reproducible.
_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}


def _subgraph_reads(node: onnx.NodeProto) -> Set[str]:
    """Outer-scope tensors a node's subgraphs read (If/Loop/Scan bodies)."""
    reads: Set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for g in graphs:
            defined = {i.name for i in g.input} | {i.name for i in g.initializer}
            for n in g.node:
                reads |= {t for t in list(n.input) + sorted(_subgraph_reads(n)) if t and t not in defined}
                defined |= set(n.output)
    return reads


def _reads(node: onnx.NodeProto) -> List[str]:
    return [t for t in node.input if t] + sorted(_subgraph_reads(node) - set(node.input))


class OnnxGraph:
    """An ONNX model prepared for splitting.

    Parameters
    ----------
    model : onnx.ModelProto
        The full model (not modified).
    name : str
        Used in messages and file names.
    """

    format = "onnx"
    ext = ".onnx"

    def __init__(self, model: onnx.ModelProto, name: str = "model"):
        self.model, self.name = model, name
        g = model.graph
        inits = {i.name: i for i in g.initializer}
        self.initializers = inits
        consts: Set[str] = set(inits)
        self.const_nodes: Dict[str, onnx.NodeProto] = {}  # output name -> constant node
        compute: List[onnx.NodeProto] = []
        for n in _toposort(list(g.node), {i.name for i in g.input} | set(inits)):
            reads = _reads(n)
            if n.op_type not in _NONDETERMINISTIC and all(t in consts for t in reads):
                consts |= set(n.output)
                self.const_nodes.update({o: n for o in n.output})
            else:
                compute.append(n)
        self.protos = compute
        self.inputs = [i for i in g.input if i.name not in inits]
        nodes = [Node(k, n.name or f"{n.op_type}_{k}", n.op_type, tuple(t for t in _reads(n) if t not in consts),
                      tuple(o for o in n.output if o)) for k, n in enumerate(compute)]
        self.graph = Graph(nodes, [i.name for i in self.inputs], [o.name for o in g.output], consts)
        self._types = _infer_types(model)

    # -- specs ------------------------------------------------------------------------------
    def value_info(self, tensor: str, dtype: Optional[np.dtype] = None, rank: Optional[int] = None):
        """Type of a crossing tensor: inferred (symbolic dims kept) or, failing that, from a probe run."""
        vi = self._types.get(tensor)
        tt = vi.type.tensor_type if vi is not None else None
        if tt is not None and tt.elem_type and tt.HasField("shape"):
            return vi
        if tt is not None and tt.elem_type:
            dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if dtype is None or rank is None:
            raise SplitError(f"{self.name}: ONNX shape inference gives no type for tensor {tensor!r}; "
                             "run the model once (verify/profile) so its dtype is known")
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        # NOTE: onnx.checker wants a shape on graph inputs/outputs; unknown dims keep it dynamic
        return helper.make_tensor_value_info(tensor, elem, [None] * rank)

    # -- extraction -------------------------------------------------------------------------
    def extract(self, cut: CutInfo, probe: Optional[Dict[str, np.ndarray]] = None) -> Tuple[bytes, bytes]:
        """Serialized ``(head, tail)`` models for ``cut``; both pass ``onnx.checker``.

        ``probe`` (tensor values of one run) types crossing tensors shape inference missed.
        """
        probe = probe or {}
        crossing = [self.value_info(t, probe[t].dtype if t in probe else None,
                                    probe[t].ndim if t in probe else None) for t in cut.tensors]
        head_nodes = [p for k, p in enumerate(self.protos) if k in cut.head]
        tail_nodes = [p for k, p in enumerate(self.protos) if k not in cut.head]
        head = self._side(head_nodes, list(self.inputs), crossing, "head")
        tail = self._side(tail_nodes, crossing, list(self.model.graph.output), "tail")
        return head.SerializeToString(), tail.SerializeToString()

    def _side(self, nodes: Sequence[onnx.NodeProto], inputs, outputs, role: str) -> onnx.ModelProto:
        const_nodes, inits = self._constants_for(nodes)
        graph = helper.make_graph(const_nodes + list(nodes), f"{self.model.graph.name}_{role}",
                                  inputs, outputs, inits)
        m = helper.make_model(graph, opset_imports=list(self.model.opset_import),
                              producer_name="edgeinf.split", doc_string=f"{role} of {self.name}")
        m.ir_version = self.model.ir_version
        m.functions.extend(self.model.functions)  # local functions: small, and nodes may call them
        return m

    def _constants_for(self, nodes: Sequence[onnx.NodeProto]):
        """Constant nodes (in file order) and initializers that ``nodes`` reach."""
        want: Set[str] = set()
        stack = [t for n in nodes for t in _reads(n) if t in self.graph.constants]
        seen_nodes: Dict[int, onnx.NodeProto] = {}
        while stack:
            t = stack.pop()
            if t in want:
                continue
            want.add(t)
            cn = self.const_nodes.get(t)
            if cn is not None and id(cn) not in seen_nodes:
                seen_nodes[id(cn)] = cn
                stack.extend(_reads(cn))
        order = {id(n): k for k, n in enumerate(self.model.graph.node)}
        const_nodes = sorted(seen_nodes.values(), key=lambda n: order[id(n)])
        inits = [self.initializers[t] for t in sorted(want) if t in self.initializers]
        return const_nodes, inits

    def probe_model(self) -> bytes:
        """The full model with every compute tensor as an extra output (for shapes and checks)."""
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        have = {o.name for o in m.graph.output}
        for n in self.graph.nodes:
            for t in n.outputs:
                if t not in have:
                    m.graph.output.append(helper.make_empty_tensor_value_info(t))
        return m.SerializeToString()


def _infer_types(model: onnx.ModelProto) -> Dict[str, onnx.ValueInfoProto]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as e:  # NOTE: inference is a nicety; a probe run gives dtypes anyway
        log.info("ONNX shape inference failed (%s); crossing specs will come from a probe run", e)
        inferred = model
    g = inferred.graph
    return {v.name: v for v in list(g.value_info) + list(g.input) + list(g.output)}


def _toposort(nodes: List[onnx.NodeProto], available: Set[str]) -> List[onnx.NodeProto]:
    """Stable topological order (file order where already valid, as the spec requires)."""
    have = set(available) | {""}
    out, pending = [], list(nodes)
    while pending:
        rest = []
        for n in pending:
            if all(t in have for t in _reads(n)):
                out.append(n)
                have |= set(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            missing = sorted({t for n in rest for t in _reads(n) if t not in have})[:5]
            raise SplitError(f"graph is not a DAG or reads undefined tensors: {missing}")
        pending = rest
    return out
