"""Fidelity of a plan's outputs to the unsplit model's, 0..1, and the metric's name.

Two metrics, chosen from the reference outputs and named in every profile:

``top1``
    The model is a classifier: exactly one output, float, shaped ``(N, K)`` with ``K >= 2``.
    Fidelity = the fraction of rows whose arg-max equals the reference's.
``1-rel_l2``
    Anything else. Per sample ``s``, the float outputs are pooled into one vector and
    ``e_s = ||got - ref||_2 / max(||ref||_2, 1e-12)``; integer/bool outputs count the
    fraction of differing elements (1 for a shape mismatch), and the worse of the two is
    kept. Fidelity = ``mean_s max(0, 1 - e_s)``: a relative error of 0.46 (int2 on a real
    activation) gives 0.54. Pooling, not a per-output worst case, because a near-zero
    output (a hand-presence score of 1e-4 on a photo without hands) has no scale to be
    relative to.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

TOP1, REL_L2 = "top1", "1-rel_l2"
DESCRIPTIONS = {TOP1: "top-1 agreement with the unsplit model (a classifier)",
                REL_L2: "1 - relative L2 error of the pooled float outputs vs the unsplit model, mean over samples"}

Outputs = Dict[str, np.ndarray]


def metric_for(ref: Outputs) -> str:
    """:data:`TOP1` for a classifier's outputs (see the module docstring), else :data:`REL_L2`."""
    if len(ref) != 1:
        return REL_L2
    (a,) = (np.asarray(v) for v in ref.values())
    return TOP1 if a.dtype.kind == "f" and a.ndim == 2 and a.shape[1] >= 2 else REL_L2


def _sample_error(ref: Outputs, got: Outputs) -> float:
    """``e_s`` of the module docstring for one sample."""
    diff2 = norm2 = 0.0
    worst_int = 0.0
    for k, r in ref.items():
        r, g = np.asarray(r), np.asarray(got[k]) if k in got else None
        if g is None or r.shape != g.shape:
            return 1.0
        if r.dtype.kind != "f":
            worst_int = max(worst_int, float(np.count_nonzero(r != g)) / max(r.size, 1))
            continue
        r64 = r.astype(np.float64)
        diff2 += float(np.sum((g.astype(np.float64) - r64) ** 2))
        norm2 += float(np.sum(r64 ** 2))
    rel = np.sqrt(diff2) / max(np.sqrt(norm2), 1e-12) if norm2 or diff2 else 0.0
    return max(float(rel) if np.isfinite(rel) else 1.0, worst_int)


def fidelity(metric: str, refs: Sequence[Outputs], gots: Sequence[Outputs]) -> float:
    """Fidelity of ``gots`` to ``refs`` (one outputs dict per sample) under ``metric``."""
    if metric == TOP1:
        hits: List[np.ndarray] = []
        for r, g in zip(refs, gots):
            (k,) = r
            a, b = np.asarray(r[k]), np.asarray(g[k])
            hits.append(a.argmax(-1) == b.argmax(-1) if a.shape == b.shape else np.zeros(len(a), bool))
        return float(np.concatenate(hits).mean()) if hits else 1.0
    per = [max(0.0, 1.0 - _sample_error(r, g)) for r, g in zip(refs, gots)]
    return float(np.mean(per)) if per else 1.0
