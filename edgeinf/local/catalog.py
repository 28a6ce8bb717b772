"""The local plans a package declares, built into resident executors (:func:`executors`)."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Tuple

from ..backends import Model, load
from ..dynamic import branch as B
from ..dynamic import variants as V
from ..errors import ConfigError
from ..plan import LOCAL, Plan
from .executors import BranchPair, FullModel, LocalExecutor, StagedExit, Variant

FULL = "full"  # the package's own model, as a branch-pair member


class _Loader:
    """One session per package file, shared by every executor that uses it."""

    def __init__(self, pkg, threads):
        self.pkg, self.threads, self.cache = pkg, threads, {}

    def __call__(self, rel: str) -> Model:
        if rel not in self.cache:
            self.cache[rel] = (self.pkg.session("full", threads=self.threads) if rel == self.pkg.model.file
                               else load(self.pkg.root / rel, threads=self.threads))
        return self.cache[rel]


def _widths(v: V.Variants, get: _Loader, full: FullModel, confidence) -> Dict[Plan, LocalExecutor]:
    """The digits example: per width its full graph, every calibrated profile, every forced early exit."""
    out = {}
    for w in v.widths.values():
        out[Plan("local", variant=w.id)] = Variant(Plan("local", variant=w.id), get(w.full_file), w.full_macs)
        stages = [get(s.file) for s in w.stages]
        for name in [*w.profiles, *v.exits[:-1]]:
            plan = Plan("local", variant=w.id, exit=name)
            thr = V.exit_thresholds(name, v.exits, w.profiles, f"width {w.id}")
            out[plan] = StagedExit(plan, stages, thr, full.outputs, "logits", [s.macs for s in w.stages],
                                   v.confidence, confidence, full.inputs)
    return out


def _staged(s: V.StagedVariant, get: _Loader, full: FullModel, confidence) -> Dict[Plan, LocalExecutor]:
    stages, out = [get(f) for f in s.files], {}
    for name in [None, *s.profiles, *s.exits[:-1]]:
        plan = Plan("local", variant=s.name, exit=name)
        thr = V.exit_thresholds(name, s.exits, s.profiles, f"staged variant {s.name!r}")
        out[plan] = StagedExit(plan, stages, thr, full.outputs, s.logits, s.macs, s.confidence, confidence,
                               full.inputs)
        out[plan].fidelity = _fidelity(s, name)
    return out


def _fidelity(s: V.StagedVariant, exit: Optional[str]) -> Optional[float]:
    """What calibration measured for this exit choice (None before calibration)."""
    if exit is None:
        return s.fidelity.get("value")
    if exit in s.profiles:
        return s.profiles[exit].get("calib", {}).get("agreement")
    per = s.fidelity.get("per_exit") or []
    k = s.exits.index(exit)
    return per[k] if k < len(per) else None


def variant_plan(name: str) -> Plan:
    """The plan of a variant name; ``"full"`` is the package's own model."""
    return LOCAL if name == FULL else Plan("local", variant=name)


def executors(pkg, threads: Optional[int] = 1, measures: Optional[Mapping[Tuple[str, str], object]] = None,
              confidence: Optional[Callable] = None) -> Dict[Plan, LocalExecutor]:
    """Every local plan ``pkg`` declares, resident: ``{plan: executor}``.

    Parameters
    ----------
    pkg : an opened :class:`~edgeinf.package.Package`.
    threads : intra-op threads per session.
    measures : ``{(small, big): measure}`` overriding a branch pair's manifest measure
        (a callable ``distance(a, b)`` or a :class:`~edgeinf.dynamic.branch.Consistency`).
    confidence : the exit-confidence function (default: the native kernel).

    Returns
    -------
    dict
        Always ``Plan("local")`` (the full model); then widths, model variants, staged exits
        (``exit=None``: every stage; a profile; a forced ``exitK``) and branch pairs.
    """
    full = FullModel(pkg, threads)
    out: Dict[Plan, LocalExecutor] = {LOCAL: full}
    if V.KEY not in pkg.manifest:
        return out
    v, get = V.read(pkg), _Loader(pkg, threads)
    out.update(_widths(v, get, full, confidence))
    for m in v.models.values():
        out[Plan("local", variant=m.name)] = ex = Variant(Plan("local", variant=m.name), get(m.file), m.macs)
        ex.fidelity = m.fidelity.get("value")
    for s in v.staged.values():
        out.update(_staged(s, get, full, confidence))
    for b in v.branches:
        parts = [out.get(variant_plan(n)) for n in (b.small, b.big)]
        if None in parts:
            raise ConfigError(f"branch ({b.small}, {b.big}) names a variant the package does not have; "
                              f"it has {[FULL, *v.names()]}")
        plan = Plan("local", branch=(b.small, b.big))
        measure = (measures or {}).get((b.small, b.big), b.measure)
        out[plan] = BranchPair(plan, *parts, measure=measure, config=B.BranchConfig.from_dict(b.config))
    return out
