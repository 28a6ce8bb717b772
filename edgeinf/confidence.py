"""Exit confidence of a batch of logits, for early-exit decisions.

:func:`confidence` returns, per row of an ``(N, C)`` float32 array, the max softmax
probability, the margin between the two largest probabilities and the entropy (nats),
from one native pass per row (exp sums after a top-2 scan; the GIL is released).

Logits are sanitized first: ``+inf`` -> float32 max, ``-inf`` and NaN -> float32 lowest,
and logit differences below -87 are clamped (``exp(-87)`` ~ 1.6e-38). So a row of all
``-inf`` is uniform, a single ``+inf`` takes probability 1, and nothing is ever NaN.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from ._native import kernels
from .errors import InputError

__all__ = ["confidence", "reference_confidence"]

_F32 = np.finfo(np.float32)
MIN_DIFF = -87.0


def _as_rows(logits) -> np.ndarray:
    z = np.asarray(logits)
    if z.dtype != np.float32:
        z = z.astype(np.float32)
    if z.ndim == 1:
        z = z[None, :]
    if z.ndim != 2 or z.shape[1] == 0:
        raise InputError(f"logits must have shape (N, C) with C >= 1, got {np.shape(logits)}")
    if z.strides[1] != 4 or z.strides[0] < 0:
        z = np.ascontiguousarray(z)  # rows may be strided; elements within a row may not
    return z


def confidence(logits: np.ndarray, isa: str = "") -> Dict[str, np.ndarray]:
    """Max softmax probability, top-1 minus top-2 probability margin and entropy.

    Parameters
    ----------
    logits : np.ndarray
        ``(N, C)`` (or ``(C,)``, treated as one row) logits; cast to float32.
    isa : str, optional
        Kernel path (tests and benchmarks); default: the best this CPU runs.

    Returns
    -------
    dict
        ``max_prob``, ``margin``, ``entropy``: float32 arrays of N.
    """
    p, m, e = kernels.confidence(_as_rows(logits), isa)
    return {"max_prob": p, "margin": m, "entropy": e}


def reference_confidence(logits: np.ndarray) -> Dict[str, np.ndarray]:
    """numpy (float64) version of :func:`confidence`, with the same sanitizing rules."""
    z = np.nan_to_num(_as_rows(logits).astype(np.float64), nan=_F32.min, posinf=_F32.max, neginf=_F32.min)
    z = np.clip(z, float(_F32.min), float(_F32.max))
    d = np.maximum(z - z.max(axis=1, keepdims=True), MIN_DIFF)
    e = np.exp(d)
    p = e / e.sum(axis=1, keepdims=True)
    top2 = -np.sort(-p, axis=1)[:, :2] if p.shape[1] > 1 else np.concatenate([p, np.zeros_like(p)], 1)
    ent = -(p * np.log(np.maximum(p, 1e-300))).sum(axis=1)
    return {"max_prob": top2[:, 0].astype(np.float32), "margin": (top2[:, 0] - top2[:, 1]).astype(np.float32),
            "entropy": np.maximum(ent, 0).astype(np.float32)}
