"""Early-exit thresholds fitted to meet a target accuracy at the lowest expected cost.

Pure numpy over recorded per-exit confidences and correctness, so it runs the same in the
training script, on a device re-calibrating itself, and in tests.

Sample ``i`` leaves at the first exit ``k`` whose confidence reaches ``t[k]``; the last exit
takes the rest. For a threshold vector the calibration set gives an accuracy and a mean
cost; :func:`fit` searches a grid of per-exit thresholds (quantiles of each exit's
confidences, plus "never") and keeps the cheapest vector whose accuracy stays within a
given drop of running every sample to the last exit, with a margin for sampling noise.
"""
from __future__ import annotations

import itertools
from typing import Dict, Sequence

import numpy as np

from ..errors import ConfigError

NEVER = float("inf")


def assign(conf: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Exit index per sample. ``conf`` is (K-1, N): early exits only; returns values in 0..K-1."""
    conf = np.asarray(conf)
    exits = np.full(conf.shape[1], len(thresholds), np.int64)
    for k in reversed(range(len(thresholds))):  # reversed: the earliest passing exit wins
        exits[conf[k] >= thresholds[k]] = k
    return exits


def evaluate(conf: np.ndarray, correct: np.ndarray, cost: Sequence[float],
             thresholds: Sequence[float]) -> Dict[str, object]:
    """Accuracy, mean cost and exit rates of ``thresholds``.

    correct : (K, N) bool, whether exit k's prediction of sample i is right.
    cost : (K,) cumulative cost of leaving at exit k (e.g. MACs of stages 1..k).
    """
    correct = np.asarray(correct, bool)
    if conf.shape[0] != correct.shape[0] - 1 or len(thresholds) != conf.shape[0] or len(cost) != correct.shape[0]:
        raise ConfigError(f"calibration shapes disagree: conf {conf.shape} (K-1 x N), correct "
                          f"{correct.shape} (K x N), {len(cost)} costs, {len(thresholds)} thresholds")
    e = assign(conf, thresholds)
    n = correct.shape[1]
    return {"accuracy": float(correct[e, np.arange(n)].mean()),
            "cost": float(np.asarray(cost, float)[e].mean()),
            "exit_rate": np.bincount(e, minlength=correct.shape[0]).astype(float) / n}


def candidates(conf_k: np.ndarray, n: int = 48) -> np.ndarray:
    """Thresholds worth trying for one exit: confidence quantiles, then "never"."""
    q = np.quantile(conf_k, np.linspace(0.0, 1.0, n))
    return np.append(np.unique(q), NEVER)


def fit(conf: np.ndarray, correct: np.ndarray, cost: Sequence[float], max_drop: float,
        z: float = 1.0, n_candidates: int = 48) -> np.ndarray:
    """Cheapest per-exit thresholds whose accuracy stays within ``max_drop`` of the last exit's.

    The drop is judged with a margin for sampling noise: with ``n`` the samples whose
    correctness changes by leaving early, the fitted drop plus ``z * sqrt(n) / N`` (a
    one-sided bound on the paired difference, McNemar-style) must stay within
    ``max_drop``. Without the margin, picking the cheapest of thousands of candidates on one
    calibration set overfits it, and the drop on new data comes out larger.

    The all-"never" vector (run to the end) always qualifies, so an unreachable target
    yields it rather than failing.
    """
    conf = np.asarray(conf, np.float64)
    correct = np.asarray(correct, bool)
    if conf.shape[0] > 3:
        # NOTE: the grid is exhaustive (n^(K-1)); past three early exits a greedy search would be needed
        raise ConfigError(f"fit() searches up to 3 early exits; got {conf.shape[0]}")
    n = correct.shape[1]
    cols = np.arange(n)
    grids = [candidates(c, n_candidates) for c in conf]
    best, best_key = np.full(conf.shape[0], NEVER), None
    for t in itertools.product(*grids):
        e = assign(conf, t)
        got = correct[e, cols]
        changed = np.count_nonzero(got != correct[-1])
        drop = (np.count_nonzero(correct[-1]) - np.count_nonzero(got) + z * np.sqrt(changed)) / n
        if drop > max_drop + 1e-12:
            continue
        key = (float(np.asarray(cost, float)[e].mean()), -got.mean())
        if best_key is None or key < best_key:
            best, best_key = np.array(t), key
    return best
