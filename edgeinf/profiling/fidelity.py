"""Fidelity of a plan's outputs to the unsplit model's, 0..1, and the metric's name.

Two metrics, chosen from the reference outputs and named in every profile:

``top1``
    The model is a classifier: exactly one output, float, shaped ``(N, K)`` with ``K >= 2``.
    Fidelity = the fraction of rows whose arg-max equals the reference's.
``1-rel_l2``
    Anything else. Per sample ``s`` and output ``o``, ``e[s, o] = ||got - ref||_2 /
    max(||ref||_2, 1e-12)`` for float outputs and the fraction of differing elements for
    integer/bool outputs (1 for a shape mismatch). Fidelity = ``mean_s max(0, 1 - max_o e[s, o])``:
    a relative error of 0.46 (int2 on a real activation) gives 0.54.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

TOP1, REL_L2 = "top1", "1-rel_l2"
DESCRIPTIONS = {TOP1: "top-1 agreement with the unsplit model (a classifier)",
                REL_L2: "1 - relative L2 output error vs the unsplit model, worst output, mean over samples"}

Outputs = Dict[str, np.ndarray]


def metric_for(ref: Outputs) -> str:
    """:data:`TOP1` for a classifier's outputs (see the module docstring), else :data:`REL_L2`."""
    if len(ref) != 1:
        return REL_L2
    (a,) = (np.asarray(v) for v in ref.values())
    return TOP1 if a.dtype.kind == "f" and a.ndim == 2 and a.shape[1] >= 2 else REL_L2


def _error(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return 1.0
    if ref.dtype.kind != "f":
        return float(np.count_nonzero(ref != got)) / max(ref.size, 1)
    r = ref.astype(np.float64)
    diff = float(np.linalg.norm(got.astype(np.float64) - r))
    return diff / max(float(np.linalg.norm(r)), 1e-12) if np.isfinite(diff) else 1.0


def fidelity(metric: str, refs: Sequence[Outputs], gots: Sequence[Outputs]) -> float:
    """Fidelity of ``gots`` to ``refs`` (one outputs dict per sample) under ``metric``."""
    if metric == TOP1:
        hits: List[np.ndarray] = []
        for r, g in zip(refs, gots):
            (k,) = r
            a, b = np.asarray(r[k]), np.asarray(g[k])
            hits.append(a.argmax(-1) == b.argmax(-1) if a.shape == b.shape else np.zeros(len(a), bool))
        return float(np.concatenate(hits).mean()) if hits else 1.0
    per = [max(0.0, 1.0 - max((_error(r[k], g[k]) if k in g else 1.0) for k in r)) for r, g in zip(refs, gots)]
    return float(np.mean(per)) if per else 1.0
