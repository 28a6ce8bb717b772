"""Staged execution of a multi-exit, slimmable package: stop early, switch width live.

Every width's stage segments and full graph are loaded once, in ``__init__``; a request
only picks sessions from a dict, so switching width costs a lookup and never a file load.

A run at width ``w`` with exit profile ``p`` executes stage 1, scores its exit logits with
the native confidence kernel, returns the samples that pass ``p``'s threshold, and sends
only the rest on to stage 2 (and so on). ``exit=None`` runs the width's single full graph,
the baseline the savings are measured against; ``exit="exit2"`` always stops at exit 2.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from ..errors import ConfigError, KernelError
from ..plan import Plan
from . import variants as V

log = logging.getLogger("edgeinf")


def native_confidence() -> Callable:
    """``edgeinf.confidence.confidence``: the native N x C kernel (max_prob, margin, entropy)."""
    try:
        from ..confidence import confidence
    except ImportError as e:
        raise KernelError("early exits need the native confidence kernel "
                          f"(edgeinf.confidence.confidence), which did not import: {e}") from e
    return confidence


@dataclass
class Result:
    """Logits (N x C), exit index per sample (0-based), and MACs spent per sample."""

    logits: np.ndarray
    exit: np.ndarray
    macs: np.ndarray

    @property
    def pred(self) -> np.ndarray:
        return self.logits.argmax(1)


class DynamicModel:
    """All widths and exits of a package, resident, executable from a :class:`Plan`."""

    def __init__(self, pkg, threads: Optional[int] = 1, confidence: Optional[Callable] = None):
        from ..backends import load

        self.pkg, self.variants = pkg, V.read(pkg)
        self._confidence = confidence or native_confidence()
        self._stages: Dict[str, list] = {}
        self._full: Dict[str, object] = {}
        for w in self.variants.widths.values():
            self._stages[w.id] = [load(pkg.root / s.file, threads=threads) for s in w.stages]
            self._full[w.id] = load(pkg.root / w.full_file, threads=threads)
        self.width = self.variants.width(None).id
        self._cost = {w.id: w.exit_cost() for w in self.variants.widths.values()}
        self._thr_cache: Dict[tuple, np.ndarray] = {}

    # -- choices -----------------------------------------------------------------------
    @property
    def widths(self) -> List[str]:
        return sorted(self.variants.widths, key=lambda k: self.variants.widths[k].mult)

    def set_width(self, width: str) -> None:
        """Make ``width`` the default for plans that name none; a check and an assignment."""
        self.width = self.variants.width(width).id

    def _thresholds(self, w: V.Width, exit: Optional[str]) -> Optional[np.ndarray]:
        """Per-early-exit thresholds of ``exit`` (cached: this is on the request path)."""
        key = (w.id, exit)
        thr = self._thr_cache.get(key)
        if thr is None and exit is not None:
            if exit in self.variants.exits:  # a forced exit: stop there whatever the confidence
                stop = self.variants.exits.index(exit)
                thr = np.array([-np.inf if j == stop else np.inf for j in range(len(w.stages) - 1)])
            else:  # None in the manifest means "never leave here" (JSON has no infinity)
                thr = np.array([np.inf if t is None else t for t in w.profile(exit)["thresholds"]])
            self._thr_cache[key] = thr
        return thr

    # -- execution ---------------------------------------------------------------------
    def run(self, x: np.ndarray, plan: Optional[Plan] = None) -> Result:
        """Classify a batch ``x`` (N x 1 x 32 x 32 float32) as ``plan`` says.

        plan : Plan(kind="local", variant=width id or None, exit=profile, exit id or None)
        """
        if plan is None:
            plan = Plan("local", variant=self.width)
        elif plan.kind != "local":
            raise ConfigError(f"DynamicModel runs local plans only; got {plan.label()}")
        w = self.variants.width(plan.variant or self.width)
        thr = self._thresholds(w, plan.exit)
        if thr is None:
            out = self._full[w.id].run({"x": x})["logits"]
            n = len(out)
            return Result(out, np.full(n, len(w.stages) - 1), np.full(n, float(w.full_macs)))
        if len(x) == 1:
            return self._staged_one(w, x, thr)
        return self._staged(w, x, thr)

    def _staged_one(self, w: V.Width, x: np.ndarray, thr: np.ndarray) -> Result:
        """Batch 1, the common edge request: the same as :meth:`_staged` without the indexing."""
        h, k_last = x, len(w.stages) - 1
        for k, (sess, stage) in enumerate(zip(self._stages[w.id], w.stages)):
            res = sess.run({stage.input: h})
            if k == k_last or (thr[k] != np.inf and self._score(res["logits"])[0] >= thr[k]):
                break
            h = res[stage.cut.name]
        return Result(res["logits"], np.array([k]), self._cost[w.id][k:k + 1])

    def _staged(self, w: V.Width, x: np.ndarray, thr: np.ndarray) -> Result:
        n, k_last = len(x), len(w.stages) - 1
        logits = np.empty((n, self.variants.classes), np.float32)
        exits = np.full(n, k_last)
        idx, h = np.arange(n), x
        for k, (sess, stage) in enumerate(zip(self._stages[w.id], w.stages)):
            res = sess.run({stage.input: h})
            if k == k_last:
                logits[idx] = res["logits"]
                break
            if thr[k] == np.inf:
                h = res[stage.cut.name]
                continue
            done = self._score(res["logits"]) >= thr[k]
            logits[idx[done]], exits[idx[done]] = res["logits"][done], k
            if done.all():
                break
            idx, h = idx[~done], np.ascontiguousarray(res[stage.cut.name][~done])
        return Result(logits, exits, self._cost[w.id][exits])

    def _score(self, logits: np.ndarray) -> np.ndarray:
        return np.asarray(self._confidence(np.ascontiguousarray(logits, np.float32))[self.variants.confidence])

    def exit_logits(self, x: np.ndarray, width: Optional[str] = None) -> List[np.ndarray]:
        """Logits of every exit for every sample (no stopping): what calibration needs."""
        w = self.variants.width(width or self.width)
        out, h = [], x
        for sess, stage in zip(self._stages[w.id], w.stages):
            res = sess.run({stage.input: h})
            out.append(res["logits"])
            h = res[stage.cut.name] if stage.cut else None
        return out

    def confidences(self, exit_logits: List[np.ndarray]) -> np.ndarray:
        """(K-1) x N confidence of the early exits, with the kernel the runtime uses."""
        return np.stack([self._score(lg) for lg in exit_logits[:-1]])
