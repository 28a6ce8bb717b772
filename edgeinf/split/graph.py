"""Format-neutral dataflow graph and cut discovery.

ONNX and TFLite graphs are both read into a :class:`Graph`: compute nodes in topological
order, the tensors they read and write, and the set of *constant* tensors (initializers,
Constant nodes, weights, and anything computed from constants alone). Constants never cross
a cut: whichever side needs them gets its own copy.

A cut is the set of tensors that cross when the compute nodes are split into a *head*
``D`` that is closed under ancestors (a downset) and a *tail*, the rest:

    crossing(D) = { t produced in D, or a model input, | some node outside D reads t }

The head computes the crossing tensors from the model inputs and the tail computes every
model output from them. A head that would produce a model output is not a cut (the tail
must produce them all). Candidate heads are every prefix of the topological order plus
the ancestor closure of every node, which finds every single-tensor cut and the
multi-tensor cuts through residual and multi-branch regions; cuts with more than
``max_tensors`` tensors are dropped and the gaps they leave are explained.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

# Nodes holding subgraphs: a cut never goes inside one (they are atomic nodes here).
CONTROL_FLOW = {"If", "Loop", "Scan", "WHILE", "IF", "CALL_ONCE"}


@dataclass(frozen=True)
class Node:
    """One compute node: ``inputs`` lists non-constant tensors only."""

    index: int
    name: str
    op: str
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]


@dataclass(frozen=True)
class CutInfo:
    """A valid cut: ``head`` holds the indices of the compute nodes run before it."""

    id: str
    name: str
    tensors: Tuple[str, ...]  # in head-output / tail-input order (topological)
    position: int  # number of compute nodes in the head
    head: FrozenSet[int] = field(repr=False, compare=False)


@dataclass
class Graph:
    nodes: List[Node]  # compute nodes, topological
    inputs: List[str]  # non-constant model inputs
    outputs: List[str]
    constants: Set[str] = field(default_factory=set)

    def __post_init__(self):
        self.producer: Dict[str, int] = {o: n.index for n in self.nodes for o in n.outputs}
        self.consumers: Dict[str, List[int]] = {}
        for n in self.nodes:
            for t in n.inputs:
                self.consumers.setdefault(t, []).append(n.index)

    # -- cut algebra -----------------------------------------------------------------------
    def ancestors(self, index: int) -> Set[int]:
        """``index`` and every compute node it depends on."""
        seen, stack = {index}, [index]
        while stack:
            for t in self.nodes[stack.pop()].inputs:
                p = self.producer.get(t)
                if p is not None and p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen

    def crossing(self, head: Set[int]) -> Optional[Tuple[str, ...]]:
        """Tensors crossing from ``head`` to the rest, or None if the head makes an output."""
        outs = set(self.outputs)
        found: Dict[str, int] = {}
        for t in self.inputs:
            if any(c not in head for c in self.consumers.get(t, ())):
                found[t] = -1
        for i in sorted(head):
            for t in self.nodes[i].outputs:
                if t in outs:
                    return None
                if any(c not in head for c in self.consumers.get(t, ())):
                    found[t] = i
        return tuple(sorted(found, key=lambda t: (found[t], t)))

    def tail_of(self, head: Set[int]) -> List[int]:
        return [n.index for n in self.nodes if n.index not in head]


def cut_id(position: int, tensors: Sequence[str]) -> str:
    """Short, deterministic id: head size plus a hash of the crossing tensor names."""
    digest = hashlib.sha1("\0".join(tensors).encode()).hexdigest()[:4]
    return f"c{position:03d}-{digest}"


def _cut_name(g: Graph, tensors: Sequence[str]) -> str:
    names = [g.nodes[g.producer[t]].name if t in g.producer else f"input:{t}" for t in tensors]
    return "+".join(names)


def _candidates(g: Graph):
    n = len(g.nodes)
    prefix: Set[int] = set()
    for i in range(n - 1):  # every non-empty, non-full prefix
        prefix.add(i)
        yield frozenset(prefix)
    for i in range(n):
        anc = g.ancestors(i)
        if 0 < len(anc) < n:
            yield frozenset(anc)


def find_cuts(g: Graph, max_tensors: int = 2) -> Tuple[List[CutInfo], List[str]]:
    """All cuts of at most ``max_tensors`` tensors, sorted by position; and notes on gaps.

    Returns
    -------
    cuts : list of CutInfo
        Unique by tensor set, ordered by head size then id.
    notes : list of str
        One line per stretch of the graph without cuts, saying why.
    """
    if max_tensors < 1:
        from ..errors import ConfigError
        raise ConfigError(f"max_tensors must be >= 1; got {max_tensors}")
    best: Dict[FrozenSet[str], CutInfo] = {}
    narrowest: Dict[int, int] = {}  # prefix position -> crossing width, for the notes
    for head in _candidates(g):
        tensors = g.crossing(head)
        if tensors is None:
            continue
        if len(tensors) > max_tensors:
            pos = len(head)
            narrowest[pos] = min(narrowest.get(pos, 1 << 30), len(tensors))
            continue
        key = frozenset(tensors)
        if key not in best or len(head) < best[key].position:
            best[key] = CutInfo(cut_id(len(head), tensors), _cut_name(g, tensors), tensors, len(head), head)
    cuts = sorted(best.values(), key=lambda c: (c.position, c.id))
    return cuts, _gap_notes(g, cuts, narrowest, max_tensors)


def _gap_notes(g: Graph, cuts: List[CutInfo], narrowest: Dict[int, int], k: int) -> List[str]:
    """Explain stretches of ``>= 4`` compute nodes between consecutive cuts."""
    notes = [f"control-flow node {n.name} ({n.op}) is never cut through: its subgraphs stay whole "
             "on one side" for n in g.nodes if n.op in CONTROL_FLOW]
    have = sorted({c.position for c in cuts})
    bounds = [0] + have + [len(g.nodes)]
    for lo, hi in zip(bounds, bounds[1:]):
        if hi - lo < 4:
            continue
        span = g.nodes[lo:hi]
        flow = [n for n in span if n.op in CONTROL_FLOW]
        width = min((narrowest.get(p, 1 << 30) for p in range(lo + 1, hi)), default=1 << 30)
        why = []
        if flow:
            why.append(f"control-flow node(s) {', '.join(n.name for n in flow[:3])} "
                       f"({flow[0].op}) are never cut through")
        if width < (1 << 30):
            why.append(f"the narrowest crossing there has {width} tensors (> --max-tensors {k})")
        else:
            why.append("every head there would produce a model output (the tail must make all outputs)")
        notes.append(f"no cut between {span[0].name} and {span[-1].name} ({hi - lo} nodes): "
                     + "; ".join(why))
    return notes
