"""Calibrate a package's declared variants and staged exits on the user's own inputs.

Every sample runs through the full model (the reference), every model variant, and every
exit of every staged variant (no stopping). Agreement with the reference is the package
profile's fidelity metric (:func:`edgeinf.profiling.metric_for`: ``top1`` or ``1-rel_l2``): top-1 for a classifier,
else 1 - relative output error, counted as agreeing when the error is at most ``tol``.
Exit thresholds come from :func:`edgeinf.dynamic.calibrate.fit`: the cheapest per-exit
thresholds whose agreement stays within ``max_drop`` of running every stage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from .. import local as L
from ..errors import ConfigError
from ..plan import LOCAL, Plan
from ..profiling.fidelity import TOP1, fidelity, metric_for
from ..profiling.samples import check_inputs, generated, load_inputs_npz, unstack
from . import calibrate as C
from .declare import _open

Inputs = Union[None, str, Path, Mapping[str, np.ndarray]]


def profile_name(max_drop: float) -> str:
    """``0.01`` -> ``"drop1"``: points of agreement given up, as the digits profiles are named."""
    return f"drop{max_drop * 100:g}"


def _samples(inputs: Inputs, specs, n: int):
    if inputs is None:
        stacked, kinds = generated(specs, n)
        return unstack(stacked), "generated (" + ", ".join(f"{k}: {v}" for k, v in kinds.items()) + ")"
    if isinstance(inputs, (str, Path)):
        return unstack(load_inputs_npz(inputs, specs)), str(inputs)
    return unstack(check_inputs(inputs, specs)), "arrays"


def _agree(metric: str, ref, got, tol: float) -> bool:
    return fidelity(metric, [ref], [got]) >= (1.0 if metric == TOP1 else 1.0 - tol)


def _fit_staged(entry: dict, ex: L.StagedExit, feeds, refs, metric: str, max_drop: float, z: float,
                tol: float, source: str) -> dict:
    per = [ex.exit_outputs(f) for f in feeds]  # N x K outputs
    k = len(entry["stages"])
    conf = np.array([[float(ex.score(p[j][ex.logits]).min()) for p in per] for j in range(k - 1)])
    correct = np.array([[_agree(metric, r, p[j], tol) for r, p in zip(refs, per)] for j in range(k)])
    cost = ex.cost if ex.cost is not None else np.arange(1.0, k + 1)  # no MACs: stages run stand in
    thr = C.fit(conf, correct, cost, max_drop, z=z)
    r = C.evaluate(conf, correct, cost, thr)
    entry["fidelity"] = {"metric": metric, "value": round(fidelity(metric, refs, [p[-1] for p in per]), 4),
                         "per_exit": [round(fidelity(metric, refs, [p[j] for p in per]), 4) for j in range(k)],
                         "samples": len(feeds), "inputs": source}
    rec = {"thresholds": [float(t) if np.isfinite(t) else None for t in thr], "target_drop": max_drop * 100,
           "fit_z": z, "metric": metric, "tol": tol,
           "calib": {"agreement": round(r["accuracy"], 4), "last_exit_agreement": round(float(correct[-1].mean()), 4),
                     "exit_rate": [round(float(e), 4) for e in r["exit_rate"]],
                     ("macs" if ex.cost is not None else "stages"): round(r["cost"], 3),
                     "samples": len(feeds), "inputs": source}}
    entry.setdefault("profiles", {})[profile_name(max_drop)] = rec
    return rec


def calibrate_variants(pkg_dir: Union[str, Path], inputs: Inputs = None, max_drop: float = 0.01, z: float = 1.0,
              tol: float = 0.05, samples: int = 64, threads: Optional[int] = 1) -> dict:
    """Fit exit thresholds and record every variant's fidelity, from calibration inputs.

    Parameters
    ----------
    pkg_dir : the package directory (rewritten: its manifest, and so its hash, changes).
    inputs : a ``.npz`` path or ``{input name: N x input shape}`` arrays (one sample per
        row); None: ``samples`` inputs generated from the specs (photos for image inputs).
    max_drop : agreement with the full model that the exits may give up, as a fraction
        (0.01: one point); names the profile (``drop1``).
    z : noise margin of the fit, in standard errors (see :func:`edgeinf.dynamic.calibrate.fit`).
    tol : for non-classifiers, the relative output error still counted as agreeing.

    Returns
    -------
    dict
        ``inputs``, ``samples``, ``metric``, ``models`` {name: fidelity}, ``staged`` {name: profile}.
    """
    if not 0.0 <= max_drop < 1.0 or not 0.0 < tol < 1.0:
        raise ConfigError(f"max_drop must be in [0, 1) and tol in (0, 1); got {max_drop}, {tol}")
    pkg, w, sec = _open(pkg_dir)
    if not sec.get("models") and not sec.get("staged"):
        raise ConfigError(f"package {pkg.name!r} declares no variants or staged exits to calibrate "
                          "(add them with `edgeinf variant add` / `add-exits`)")
    feeds, source = _samples(inputs, pkg.session("full").inputs, samples)
    ex = L.executors(pkg, threads)
    refs = [ex[LOCAL].run(f)[0] for f in feeds]
    metric = metric_for(refs[0])
    report = {"inputs": source, "samples": len(feeds), "metric": metric, "models": {}, "staged": {}}
    for m in sec.get("models", []):
        gots = [ex[Plan("local", variant=m["name"])].run(f)[0] for f in feeds]
        m["fidelity"] = {"metric": metric, "value": round(fidelity(metric, refs, gots), 4),
                         "samples": len(feeds), "inputs": source}
        report["models"][m["name"]] = m["fidelity"]
    for s in sec.get("staged", []):
        staged = ex[Plan("local", variant=s["name"])]
        report["staged"][s["name"]] = _fit_staged(s, staged, feeds, refs, metric, max_drop, z, tol, source)
    w.save()
    return report
