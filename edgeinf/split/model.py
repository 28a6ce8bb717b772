"""A model opened for splitting: one facade over the ONNX and TFLite graph readers.

:func:`open_model` takes a path (or a zoo name) and fixed input shapes, and gives
cut discovery, extraction, crossing specs and a probe run that yields every intermediate
tensor (for sizes, dtypes and as the reference in verification).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import ModelError, SplitError, nearest
from ..types import TensorSpec, parse_shape
from .graph import CutInfo, find_cuts

log = logging.getLogger("edgeinf")

Shapes = Mapping[str, Union[str, Sequence[int]]]


class SplitModel:
    """A model file, its graph reader, and the input shapes used for sizes and runs."""

    def __init__(self, path: Path, shapes: Optional[Shapes] = None, max_tensors: int = 2):
        self.path = Path(path)
        self.name = self.path.stem
        self.data = self.path.read_bytes()
        if self.data[4:8] == b"TFL3":
            import struct

            from .tflite_graph import TFLiteGraph
            try:
                self.reader = TFLiteGraph(self.data, self.name)
            except (struct.error, IndexError, UnicodeDecodeError) as e:  # NOTE: a truncated flatbuffer
                raise ModelError(f"{self.path} is not a valid TFLite model (truncated or corrupt: {e})") from None
        elif self.path.suffix.lower() == ".onnx":
            import onnx

            from .onnx_graph import OnnxGraph
            try:
                proto = onnx.load_from_string(self.data)
            except Exception as e:  # NOTE: protobuf's DecodeError on a corrupt or truncated file
                raise ModelError(f"{self.path} is not a valid ONNX model ({type(e).__name__}: {e})") from None
            self.reader = OnnxGraph(proto, self.name)
        else:
            raise ModelError(f"cannot split {self.path}: expected an .onnx file or a TFLite flatbuffer "
                             f"(b'TFL3' at byte 4); got {self.data[:8]!r}")
        self.format, self.ext, self.graph = self.reader.format, self.reader.ext, self.reader.graph
        self.max_tensors = max_tensors
        self.notes: List[str] = []
        self.input_shapes = self._fix_shapes(dict(shapes or {}))
        self.cuts, gaps = find_cuts(self.graph, max_tensors)
        self.notes += gaps
        self._probe: Optional[Dict[str, np.ndarray]] = None

    # -- inputs ----------------------------------------------------------------------------
    def input_specs(self) -> List[TensorSpec]:
        from ..backends import load

        return load(self.data if self.format == "tflite" else self.path).inputs

    def _fix_shapes(self, given: Dict[str, object]) -> Dict[str, Optional[Tuple[int, ...]]]:
        """Concrete shape per input: given, static, or a symbolic batch dim set to 1."""
        specs = {s.name: s for s in self.input_specs()}
        unknown = [k for k in given if k not in specs]
        if unknown:
            raise SplitError(f"--shape names input {unknown[0]!r}; the model's inputs are "
                             f"{sorted(specs)} (nearest: {nearest(unknown[0], specs)})")
        out = {}
        for name, spec in specs.items():
            if name in given:
                shape = given[name]
                shape = parse_shape(shape) if isinstance(shape, str) else tuple(int(d) for d in shape)
                if not spec.matches(shape):
                    raise SplitError(f"--shape {name}={'x'.join(map(str, shape))} does not fit {spec.describe()}")
                out[name] = shape
            elif spec.is_static:
                out[name] = tuple(spec.shape)
            elif all(isinstance(d, int) and d >= 0 for d in spec.shape[1:]):
                out[name] = (1,) + tuple(spec.shape[1:])
                self.notes.append(f"input {name!r} has a symbolic batch dim; using batch 1 "
                                  f"(give --shape {name}=... to change it)")
            else:
                out[name] = None
                self.notes.append(f"input {spec.describe()} has dynamic dims: crossing sizes "
                                  f"need --shape {name}={_suggest(spec)}")
        return out

    def concrete_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Input shapes, or a :class:`SplitError` naming the inputs that need ``--shape``."""
        missing = [k for k, v in self.input_shapes.items() if v is None]
        if missing:
            specs = {s.name: s for s in self.input_specs()}
            raise SplitError("this needs concrete input sizes, but " + "; ".join(
                f"input {specs[k].describe()} has dynamic dims" for k in missing)
                + f": pass --shape {missing[0]}={_suggest(specs[missing[0]])} with N set "
                "(or shapes={...} in Python)")
        return dict(self.input_shapes)

    # -- cuts ------------------------------------------------------------------------------
    def cut(self, cut_id: str) -> CutInfo:
        """The cut with this id; an unknown id names the nearest valid ones."""
        for c in self.cuts:
            if c.id == cut_id or c.name == cut_id:
                return c
        raise SplitError(f"{self.name} has no cut {cut_id!r} (with --max-tensors {self.max_tensors}); "
                         f"nearest: {self._nearest(cut_id)}; list them with `edgeinf split {self.path} --list`")

    def _nearest(self, cut_id: str) -> List[str]:
        """Cuts at the nearest graph position for ``cNNN-...`` ids; closest spelling otherwise."""
        import re

        pos = re.match(r"c(\d+)", cut_id)
        if pos and self.cuts:
            n = int(pos.group(1))
            return [c.id for c in sorted(self.cuts, key=lambda c: (abs(c.position - n), c.position))[:3]]
        return nearest(cut_id, [c.id for c in self.cuts])

    def select(self, at: Union[None, str, Sequence[str]]) -> List[CutInfo]:
        """Cuts for ``at``: a list of ids, a comma-separated string, ``"all"``, or None (Pareto set)."""
        if at is None:
            return self.pareto()
        if isinstance(at, str):
            if at == "all":
                return list(self.cuts)
            at = [a for a in at.split(",") if a]
        return [self.cut(a) for a in at]

    def pareto(self) -> List[CutInfo]:
        """Cuts no other cut beats on both head size and crossing bytes (Neurosurgeon's candidates)."""
        if any(v is None for v in self.input_shapes.values()):
            return [c for c in self.cuts if len(c.tensors) == 1]
        sizes = {c.id: self.crossing_bytes(c) for c in self.cuts}
        front, best = [], None
        for c in sorted(self.cuts, key=lambda c: (c.position, sizes[c.id])):
            if best is None or sizes[c.id] < best:
                front.append(c)
                best = sizes[c.id]
        return front

    def extract(self, cut: CutInfo) -> Tuple[bytes, bytes]:
        """Serialized ``(head, tail)`` model files for ``cut``."""
        if self.format == "onnx" and self._probe is None and all(v is not None for v in self.input_shapes.values()):
            self.probe()  # types for crossing tensors that shape inference leaves untyped
        return self.reader.extract(cut, self._probe)

    # -- crossing specs and sizes -----------------------------------------------------------
    def crossing_specs(self, cut: CutInfo) -> List[TensorSpec]:
        """Concrete specs (from the probe run, or TFLite's static shapes) of the crossing tensors."""
        if self.format == "tflite":
            return [TensorSpec(t, *self.reader.spec(t, concrete=True)) for t in cut.tensors]
        probe = self.probe()
        return [TensorSpec(t, tuple(probe[t].shape), probe[t].dtype) for t in cut.tensors]

    def crossing_bytes(self, cut: CutInfo) -> int:
        return sum(s.nbytes() for s in self.crossing_specs(cut))

    def probe(self, feeds: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, np.ndarray]:
        """Every tensor of one full run (inputs included) on ``feeds`` (default: real images)."""
        if self._probe is not None and feeds is None:
            return self._probe
        from .inputs import sample_inputs

        feeds = feeds if feeds is not None else sample_inputs(self.input_specs(), self.concrete_shapes())
        values = dict(feeds)
        values.update(_run_all(self, feeds))
        self._probe = values
        return values


def _suggest(spec: TensorSpec) -> str:
    return "x".join(str(d) if isinstance(d, int) and d >= 0 else ("1" if i == 0 else "N")
                    for i, d in enumerate(spec.shape))


def _run_all(m: SplitModel, feeds) -> Dict[str, np.ndarray]:
    if m.format == "onnx":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        # NOTE: optimizations off so every intermediate tensor exists as named in the graph.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(m.reader.probe_model(), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, feeds)))
    raise SplitError("a probe run is only needed for ONNX; TFLite tensors carry static shapes")


def open_model(model: Union[str, Path], shapes: Optional[Shapes] = None, max_tensors: int = 2) -> SplitModel:
    """Open a model (path or zoo name) for splitting.

    Parameters
    ----------
    model : str or Path
        ``.onnx`` or ``.tflite`` file, or an ``edgeinf.zoo`` name.
    shapes : mapping, optional
        ``{input name: "1x3x224x224" or (1, 3, 224, 224)}`` fixing dynamic dims.
    max_tensors : int
        Largest number of tensors a cut may have (default 2).
    """
    from .. import zoo

    path = zoo.resolve(str(model))
    if not Path(path).is_file():
        raise ModelError(f"model not found: {model} (not a file, and not a zoo name: {', '.join(zoo.names())})")
    return SplitModel(Path(path), shapes, max_tensors)
