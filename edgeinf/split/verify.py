"""Prove cuts exact: head then tail must reproduce the full model's outputs.

Each cut's head and tail are extracted, loaded as real engine sessions and chained on real
photographs; float outputs must agree with the full model within ``rtol`` times the output's
scale (its largest magnitude), integer and bool outputs exactly. The full model runs once
per input and its outputs are shared by every cut.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterable, List, Optional

import numpy as np

from .graph import CutInfo
from .model import SplitModel

log = logging.getLogger("edgeinf")

RTOL = 1e-5


def _error(out: Dict[str, np.ndarray], ref: Dict[str, np.ndarray]):
    """Largest abs error and the worst error relative to its output's scale."""
    err = rel = 0.0
    for name, expected in ref.items():
        got = np.asarray(out[name])
        if got.shape != expected.shape:
            return float("inf"), float("inf")
        if expected.dtype.kind != "f":
            e = float(np.count_nonzero(got != expected))
            err, rel = max(err, e), max(rel, e)
            continue
        e = float(np.abs(got.astype(np.float64) - expected).max(initial=0.0))
        scale = max(float(np.abs(expected).max(initial=0.0)), 1e-12)
        err, rel = max(err, e), max(rel, e / scale)
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
    from ..backends import load
    from ..errors import EdgeInfError
    from .inputs import sample_inputs

    cuts = list(m.cuts if cuts is None else cuts)
    specs, shapes = m.input_specs(), m.concrete_shapes()
    feeds = [sample_inputs(specs, shapes, index=i) for i in range(n_inputs)]
    full = load(m.data if m.format == "tflite" else m.path)
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
            head, tail = load(head_bytes), load(tail_bytes)
            worst = (0.0, 0.0)
            for f, ref in zip(feeds, refs):
                mid = head.run(f)
                err = _error(tail.run({s.name: mid[s.name] for s in tail.inputs}), ref)
                worst = max(worst, err, key=lambda e: e[1])
            res.update(max_abs_err=worst[0], max_rel_err=worst[1], ok=worst[1] <= rtol)
        except (EdgeInfError, ValueError, RuntimeError) as e:  # onnx.checker raises ValidationError(ValueError)
            res["error"] = f"{type(e).__name__}: {e}"
            log.warning("cut %s of %s failed: %s", cut.id, m.name, res["error"])
        results.append(res)
    return results


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="cut", leave=False)
