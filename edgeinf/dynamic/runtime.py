"""Staged execution of the digits multi-exit, slimmable package: stop early, switch width live.

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

from .. import local as L
from ..errors import ConfigError
from ..plan import Plan
from . import variants as V

log = logging.getLogger("edgeinf")


def native_confidence() -> Callable:
    """``edgeinf.confidence.confidence``: the native N x C kernel (see :func:`edgeinf.local.native_confidence`)."""
    return L.native_confidence()


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
    """All widths and exits of the digits package, resident: a thin layer over
    :func:`edgeinf.local.executors` that takes a batch ``x`` and returns a :class:`Result`."""

    def __init__(self, pkg, threads: Optional[int] = 1, confidence: Optional[Callable] = None):
        self.pkg, self.variants = pkg, V.read(pkg)
        conf = confidence or native_confidence()
        self.executors: Dict[Plan, L.LocalExecutor] = {
            p: e for p, e in L.executors(pkg, threads, confidence=conf).items() if p.variant in self.variants.widths}
        self.width = self.variants.width(None).id

    # -- choices -----------------------------------------------------------------------
    @property
    def widths(self) -> List[str]:
        return sorted(self.variants.widths, key=lambda k: self.variants.widths[k].mult)

    def set_width(self, width: str) -> None:
        """Make ``width`` the default for plans that name none; a check and an assignment."""
        self.width = self.variants.width(width).id

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
        ex = self.executors.get(Plan("local", variant=w.id, exit=plan.exit))
        if ex is None:
            w.profile(plan.exit)  # raises, naming the profiles there are
        out, info = ex.run({"x": x})
        n = len(x)
        if "exit" not in info:  # the width's single full graph
            return Result(out["logits"], np.full(n, len(w.stages) - 1), np.full(n, float(w.full_macs)))
        return Result(out["logits"], info["exit"], info["macs"])

    def _staged(self, width: Optional[str]) -> L.StagedExit:
        w = self.variants.width(width or self.width)
        return self.executors[Plan("local", variant=w.id, exit=self.variants.exits[0])]

    def exit_logits(self, x: np.ndarray, width: Optional[str] = None) -> List[np.ndarray]:
        """Logits of every exit for every sample (no stopping): what calibration needs."""
        return [o["logits"] for o in self._staged(width).exit_outputs({"x": x})]

    def confidences(self, exit_logits: List[np.ndarray]) -> np.ndarray:
        """(K-1) x N confidence of the early exits, with the kernel the runtime uses."""
        staged = self._staged(None)
        return np.stack([staged.score(lg) for lg in exit_logits[:-1]])
