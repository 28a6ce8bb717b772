"""The local plans a dynamic package offers the controller, with accuracy and cost.

Each width offers: the full graph (``exit=None``), every calibrated exit profile
(``"drop0.5"``, ``"drop1"``, ...) and every forced exit (``"exit1"``, ...). Accuracy and
MACs come from the package (measured on its held-out test split when it was built); the
milliseconds are measured here, now, on this device, because they are what differs
between devices.
"""
from __future__ import annotations

import time
from typing import List, NamedTuple, Optional

import numpy as np

from ..plan import Plan
from .runtime import DynamicModel
from .variants import load_split


class LocalPlan(NamedTuple):
    plan: Plan
    accuracy: float  # top-1 on the package's test split
    ms: Optional[float]  # mean per-sample latency here (batch 1); None when not measured
    macs: float  # mean MACs per sample


def _catalogue(model: DynamicModel):
    """(plan, accuracy, macs) from the manifest, for every width x exit choice."""
    for wid in model.widths:
        w = model.variants.width(wid)
        acc = w.accuracy["test"]
        yield Plan("local", variant=wid), acc[-1], float(w.full_macs)
        for name, prof in w.profiles.items():
            yield Plan("local", variant=wid, exit=name), prof["test"]["accuracy"], float(prof["test"]["macs"])
        for k, exit_id in enumerate(model.variants.exits[:-1]):
            yield Plan("local", variant=wid, exit=exit_id), acc[k], float(w.exit_cost()[k])


def mean_ms(model: DynamicModel, plan: Plan, x: np.ndarray, warmup: int = 5, repeats: int = 3) -> float:
    """Mean milliseconds per sample, one sample per request (the edge case: batch 1).

    The best of ``repeats`` passes over ``x``: on a shared machine other processes only
    ever add time, so the fastest pass is the closest to the plan's own cost.
    """
    for i in range(min(warmup, len(x))):
        model.run(x[i:i + 1], plan)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(len(x)):
            model.run(x[i:i + 1], plan)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / len(x)


def local_plans(source, measure: bool = True, samples: int = 200) -> List[LocalPlan]:
    """Every local plan of a dynamic package with its expected accuracy and cost.

    source : a :class:`DynamicModel`, or an opened package (a model is loaded for it)
    measure : time each plan on ``samples`` calibration inputs here (else ``ms`` is None)
    """
    model = source if isinstance(source, DynamicModel) else DynamicModel(source)
    x = load_split(model.pkg, "calib")[0][:samples] if measure else None
    out = []
    for plan, acc, macs in _catalogue(model):
        ms = mean_ms(model, plan, x) if measure else None
        out.append(LocalPlan(plan, float(acc), ms, macs))
    return out
