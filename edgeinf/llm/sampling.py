"""Choosing a token from logits: greedy, temperature, top-k, top-p, seeded.

Pure numpy, shared by the edge and the worker so both pick the same way. A token's
``logprob`` is always under the model's full (untempered) distribution, which is what
OpenAI-style ``logprobs`` report.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..confidence import confidence
from ..errors import InputError


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0   # 0: greedy
    top_k: int = 0             # 0: no limit
    top_p: float = 1.0
    seed: Optional[int] = None

    def __post_init__(self):
        if not (isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature <= 10.0):
            raise InputError(f"temperature must be in [0, 10]; got {self.temperature!r}")
        if not (isinstance(self.top_k, int) and 0 <= self.top_k <= 1 << 20):
            raise InputError(f"top_k must be an int >= 0; got {self.top_k!r}")
        if not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            raise InputError(f"top_p must be in (0, 1]; got {self.top_p!r}")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise InputError(f"seed must be a non-negative int; got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0 or self.top_k == 1

    def to_meta(self) -> dict:
        out = {"temperature": float(self.temperature), "top_k": int(self.top_k), "top_p": float(self.top_p)}
        if self.seed is not None:
            out["seed"] = int(self.seed)
        return out

    @classmethod
    def from_meta(cls, meta: dict) -> "Sampling":
        return cls(float(meta.get("temperature", 0.0)), int(meta.get("top_k", 0)),
                   float(meta.get("top_p", 1.0)), meta.get("seed"))


def log_softmax_at(logits: np.ndarray, token: int) -> float:
    z = logits.astype(np.float64)
    m = z.max()
    return float(z[token] - m - np.log(np.exp(z - m).sum()))


class Sampler:
    """Picks tokens for one answer (its own seeded generator)."""

    def __init__(self, sampling: Sampling = Sampling()):
        self.s = sampling
        self.rng = np.random.default_rng(sampling.seed)

    def pick(self, logits: np.ndarray) -> Tuple[int, float]:
        """(token, logprob) from a ``(n_vocab,)`` row."""
        if self.s.greedy:
            t = int(np.argmax(logits))
            return t, log_softmax_at(logits, t)
        z = logits.astype(np.float64) / self.s.temperature
        idx = np.arange(z.size)
        if self.s.top_k and self.s.top_k < z.size:
            idx = np.argpartition(-z, self.s.top_k - 1)[: self.s.top_k]
        zz = z[idx]
        p = np.exp(zz - zz.max())
        p /= p.sum()
        if self.s.top_p < 1.0:
            order = np.argsort(-p)
            keep = order[: int(np.searchsorted(np.cumsum(p[order]), self.s.top_p) + 1)]
            idx, p = idx[keep], p[keep] / p[keep].sum()
        t = int(idx[self.rng.choice(idx.size, p=p)])
        return t, log_softmax_at(logits, t)


def top_confidence(logits: np.ndarray) -> float:
    """Max softmax probability of one row (the native confidence kernel)."""
    return float(confidence(logits)["max_prob"][0])
