"""Prove cuts exact: head then tail must reproduce the full model's outputs.

Each cut's head and tail are extracted, loaded as real engine sessions and chained on real
photographs; float outputs must agree with the full model within ``rtol`` times the output's
scale (its largest magnitude over all inputs: a photo without text gives an OCR detector an
all-but-zero map, which is no scale to measure against), integer and bool outputs exactly. The full model runs once
per input and its outputs are shared by every cut.

ONNX Runtime runs all three graphs with graph optimizations off, so the same kernels run
on both sides of the comparison and any difference is the split's fault. With
optimizations on, a cut between a Conv and its BatchNormalization stops ORT folding one
into the other, which alone moves outputs by ~1e-5 relative (seen on PP-OCRv4 det).
"""
from __future__ import annotations

import logging
from typing import Dict, Iterable, List, Optional

import numpy as np

from .graph import CutInfo
from .model import SplitModel

log = logging.getLogger("edgeinf")

RTOL = 1e-5


def _errors(out: Dict[str, np.ndarray], ref: Dict[str, np.ndarray], acc: Dict[str, list]) -> None:
    """Accumulate per output ``[max abs error, scale]`` over the verification inputs."""
    for name, expected in ref.items():
        got = np.asarray(out[name])
        e = acc.setdefault(name, [0.0, 0.0])
        if got.shape != expected.shape:
            e[0] = float("inf")
        elif expected.dtype.kind != "f":  # integer/bool outputs must match exactly
            e[0] = max(e[0], float(np.count_nonzero(got != expected)))
            e[1] = max(e[1], 1.0)
        else:
            e[0] = max(e[0], float(np.abs(got.astype(np.float64) - expected).max(initial=0.0)))
            e[1] = max(e[1], float(np.abs(expected).max(initial=0.0)))


def _worst(acc: Dict[str, list]):
    """Largest abs error, and the largest error relative to its output's scale."""
    err = max(e for e, _ in acc.values())
    rel = max(e / max(scale, 1e-12) if e else 0.0 for e, scale in acc.values())
    return err, rel


def check_valid(m: SplitModel, head: bytes, tail: bytes) -> None:
    """``onnx.checker`` on both sides (TFLite has no checker; loading it is the check)."""
    if m.format == "onnx":
        import onnx

        onnx.checker.check_model(head)
        onnx.checker.check_model(tail)


def verify_cuts(m: SplitModel, cuts: Optional[Iterable[CutInfo]] = None, n_inputs: int = 2,
                rtol: float = RTOL, progress: bool = False) -> List[dict]:
    """Verify ``cuts`` (default: all) of ``m``; one result dict per cut.

    Returns
    -------
    list of dict
        ``id``, ``name``, ``tensors``, ``bytes``, ``max_abs_err``, ``max_rel_err``, ``ok``
        and ``error`` (why a cut failed to extract or run, else None).
    """
    from ..errors import EdgeInfError
    from .inputs import sample_inputs

    cuts = list(m.cuts if cuts is None else cuts)
    specs, shapes = m.input_specs(), m.concrete_shapes()
    feeds = [sample_inputs(specs, shapes, index=i) for i in range(n_inputs)]
    full = _load(m.data, m.format)
    refs = [{k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in full.run(f).items()}
            for f in feeds]
    if m.format == "onnx":
        m.probe(feeds[0])  # dtypes of crossing tensors that shape inference could not type
    results = []
    for cut in _progress(cuts, progress, f"verify {m.name}"):
        res = {"id": cut.id, "name": cut.name, "tensors": list(cut.tensors),
               "bytes": m.crossing_bytes(cut), "max_abs_err": None, "max_rel_err": None,
               "ok": False, "error": None}
        try:
            head_bytes, tail_bytes = m.extract(cut)
            check_valid(m, head_bytes, tail_bytes)
            head, tail = _load(head_bytes, m.format), _load(tail_bytes, m.format)
            acc: Dict[str, list] = {}
            for f, ref in zip(feeds, refs):
                mid = head.run(f)
                _errors(tail.run({s.name: mid[s.name] for s in tail.inputs}), ref, acc)
            err, rel = _worst(acc)
            res.update(max_abs_err=err, max_rel_err=rel, ok=rel <= rtol)
        except (EdgeInfError, ValueError, RuntimeError, _checker_error()) as e:
            res["error"] = f"{type(e).__name__}: {e}"
            log.warning("cut %s of %s failed: %s", cut.id, m.name, res["error"])
        results.append(res)
    return results


class _ExactOnnx:
    """An ORT session with graph optimizations off (see the module docstring)."""

    def __init__(self, data: bytes):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        self.names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds):
        return dict(zip(self.names, self.session.run(self.names, dict(feeds))))


def _load(data: bytes, fmt: str):
    if fmt == "onnx":
        return _ExactOnnx(data)
    from ..backends import load

    return load(data)


def _checker_error():
    try:
        from onnx.checker import ValidationError
        return ValidationError
    except ImportError:  # pragma: no cover - onnx is a dependency; keep the tuple valid anyway
        return ValueError


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="cut", leave=False)
