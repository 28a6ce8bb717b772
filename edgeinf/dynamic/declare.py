"""Declare a user's local variants in a package: other models, staged exits, branch pairs.

Each function opens the package (hash-checked), checks the new graphs against the
package model's input/output contract *before* touching anything, copies and hashes
them into the package, updates the manifest's ``"variants"`` section (``docs/package.md``,
Variants) and writes the manifest back atomically.

The manifest changes, so ``Package.hash`` changes: a worker must load the updated package
too (both sides always open the same package; a stale worker refuses requests by hash).
"""
from __future__ import annotations

import copy
import logging
import re
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from .. import local as L
from ..backends import load
from ..errors import BackendError, ConfigError, ModelError
from ..package import PackageWriter, open_package
from ..plan import LOCAL, Plan
from . import branch as B
from . import variants as V

log = logging.getLogger("edgeinf")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_STAGES = 4  # calibrate.fit searches up to three early exits exhaustively
PathLike = Union[str, Path]


def _open(pkg_dir: PathLike):
    pkg = open_package(pkg_dir)
    w = PackageWriter(pkg.root, pkg.name)
    w.manifest = copy.deepcopy(pkg.manifest)
    sec = w.manifest.setdefault(V.KEY, {})
    sec["version"] = V.VERSION
    return pkg, w, sec


def _names(pkg) -> List[str]:
    return V.read(pkg).names() if V.KEY in pkg.manifest else []


def _claim(pkg, w: PackageWriter, sec: dict, name: str, replace: bool) -> None:
    """Check ``name`` is free (or, with ``replace``, drop the old entry and its files)."""
    if not NAME.match(name or "") or name == L.FULL:
        raise ConfigError(f"variant name {name!r}: use letters, digits, '_', '.', '-' (up to 64), not {L.FULL!r}")
    if name not in _names(pkg):
        return
    if not replace:
        raise ConfigError(f"package {pkg.name!r} already has a variant {name!r}; choose another name "
                          "or replace it (--replace, replace=True)")
    if any(wd.get("id") == name for wd in sec.get("widths", [])):
        raise ConfigError(f"{name!r} is a built-in width of this package; it cannot be replaced")
    old = {e["file"] for e in sec.get("models", []) if e["name"] == name}
    old |= {st["file"] for e in sec.get("staged", []) if e["name"] == name for st in e["stages"]}
    for key in ("models", "staged"):
        sec[key] = [e for e in sec.get(key, []) if e["name"] != name]
    w.manifest["files"] = [f for f in w.manifest.get("files", []) if f["file"] not in old]


def _macs(path: Path) -> Optional[int]:
    if path.suffix.lower() != ".onnx":
        return None  # NOTE: MACs are counted from ONNX graphs only; TFLite variants carry none
    from . import macs

    try:
        return int(macs.count(path))
    except (KeyError, IndexError, ValueError) as e:  # an op whose shapes inference leaves unknown
        log.info("no MAC count for %s: %s", path, e)
        return None


def _load(path: PathLike, what: str):
    path = Path(path)
    if path.suffix.lower() not in (".onnx", ".tflite"):
        raise ModelError(f"{what}: {path} is not an .onnx or .tflite file")
    return path, load(path, threads=1)


def _smoke(run, what: str, feeds) -> None:
    """A graph that loads but cannot run fails here, once, rather than on a request."""
    try:
        run(feeds)
    except BackendError as e:
        raise ModelError(f"{what} loads but does not run on inputs drawn from the model's specs: {e}") from None


def add_variant(pkg_dir: PathLike, name: str, model: PathLike, replace: bool = False) -> dict:
    """Add ``model`` (same inputs and outputs as the package model) as ``Plan("local", variant=name)``.

    Returns the manifest entry. Raises ModelError naming every mismatch of the contract.
    """
    pkg, w, sec = _open(pkg_dir)
    _claim(pkg, w, sec, name, replace)
    path, m = _load(model, f"variant {name!r}")
    full = pkg.session("full")
    L.check_contract(full.inputs, full.outputs, m.inputs, m.outputs, f"variant {name!r} ({path})")
    _smoke(m.run, f"variant {name!r} ({path})", L.sample_feeds(m.inputs))
    ref = w.add_file(f"variants/{name}/model{path.suffix.lower()}", path)
    entry = {"name": name, "file": ref.file, "macs": _macs(path)}
    sec.setdefault("models", []).append(entry)
    w.save()
    return entry


def classifier_output(outputs) -> str:
    """The first (N, C) float output: the one exit confidence is scored on."""
    for s in outputs:
        if np.dtype(s.dtype).kind == "f" and len(s.shape) == 2:
            return s.name
    raise ModelError("staged exits score confidence on an (N, C) float output (logits); the model returns "
                     f"[{'; '.join(s.describe() for s in outputs)}]: name one with logits=")


def _check_stages(models, paths, inputs, outputs, logits: str) -> None:
    """Stage k takes model inputs or earlier stages' outputs by name; every stage returns the model's outputs."""
    if logits not in {s.name for s in outputs}:
        raise ModelError(f"logits={logits!r} is not a model output; outputs are {[s.name for s in outputs]}")
    avail = {s.name: s for s in inputs}
    for k, (m, p) in enumerate(zip(models, paths)):
        what = f"stage {k} ({p})"
        for s in m.inputs:
            r = avail.get(s.name)
            if r is None:
                raise ModelError(f"{what} takes input {s.describe()}, which neither the model inputs nor an "
                                 f"earlier stage's outputs provide (available: {sorted(avail)})")
            L.check_contract([r], [], [s], [], what)
        L.check_contract([], outputs, [], m.outputs, what, outputs_subset=True)
        avail.update({s.name: s for s in m.outputs})


def add_exits(pkg_dir: PathLike, name: str, stages: Sequence[PathLike], logits: Optional[str] = None,
              confidence: str = "max_prob", replace: bool = False) -> dict:
    """Add stage graphs with an exit after each as ``Plan("local", variant=name, exit=...)``.

    Stage 0 takes the model's inputs; each later stage takes, by name, outputs of earlier
    stages (features) or model inputs; every stage returns all the model's outputs (its exit's
    answer). ``logits`` names the (N, C) output whose confidence decides (default: the first).
    Thresholds come from :func:`~edgeinf.dynamic.recalibrate.calibrate_variants`; until then
    the variant offers forced exits and ``exit=None`` only.
    """
    if not 2 <= len(stages) <= MAX_STAGES:
        raise ConfigError(f"staged exits need 2 to {MAX_STAGES} stage graphs; got {len(stages)}")
    pkg, w, sec = _open(pkg_dir)
    _claim(pkg, w, sec, name, replace)
    loaded = [_load(p, f"stage {k} of {name!r}") for k, p in enumerate(stages)]
    full = pkg.session("full")
    logits = logits or classifier_output(full.outputs)
    _check_stages([m for _, m in loaded], [p for p, _ in loaded], full.inputs, full.outputs, logits)
    staged = L.StagedExit(Plan("local", variant=name), [m for _, m in loaded], [np.inf] * (len(stages) - 1),
                          full.outputs, logits, measure=confidence, inputs=full.inputs)
    _smoke(staged.exit_outputs, f"staged variant {name!r}", L.sample_feeds(full.inputs))
    entry = {"name": name, "logits": logits, "confidence": confidence, "profiles": {}, "stages": []}
    for k, (p, _) in enumerate(loaded):
        ref = w.add_file(f"variants/{name}/stage{k}{p.suffix.lower()}", p)
        entry["stages"].append({"file": ref.file, "macs": _macs(p)})
    sec.setdefault("staged", []).append(entry)
    w.save()
    return entry


def add_branch(pkg_dir: PathLike, small: str, big: str, measure: str = "range", replace: bool = False,
               **config) -> dict:
    """Declare ``Plan("local", branch=(small, big))``: two variant names (``"full"``: the package model).

    ``measure`` names a built-in consistency measure (``branch.MEASURES``); a callable one
    is given at run time (``edgeinf.local.executors(pkg, measures=...)``). ``config``:
    :class:`~edgeinf.dynamic.branch.BranchConfig` fields (jump, agree, probe_every, ...).
    """
    pkg, w, sec = _open(pkg_dir)
    names = [L.FULL, *_names(pkg)]
    for n in (small, big):
        if n not in names:
            raise ConfigError(f"branch member {n!r} is not a variant of package {pkg.name!r}; it has {names} "
                              "(add one with `edgeinf variant add`)")
    if small == big:
        raise ConfigError(f"a branch pair needs two different variants; got {small!r} twice")
    if measure not in B.MEASURES:
        raise ConfigError(f"measure {measure!r} is not built in ({sorted(B.MEASURES)}); pass a callable "
                          "at run time instead")
    cfg = B.BranchConfig(**config)
    same = [b for b in sec.get("branches", []) if (b["small"], b["big"]) == (small, big)]
    if same and not replace:
        raise ConfigError(f"package already has branch pair ({small}, {big}); replace it "
                          "(--replace, replace=True) to change its config")
    sec["branches"] = [b for b in sec.get("branches", []) if b not in same]
    entry = {"small": small, "big": big, "measure": measure, "config": asdict(cfg)}
    sec["branches"].append(entry)
    w.save()
    return entry


def describe(pkg_dir: PathLike) -> List[dict]:
    """Every local plan the package declares: plan, label, kind and what the manifest says of it."""
    pkg = open_package(pkg_dir)
    rows = [{"plan": LOCAL.to_dict(), "label": LOCAL.label(), "kind": "full", "file": pkg.model.file}]
    if V.KEY not in pkg.manifest:
        return rows
    v = V.read(pkg)

    def row(plan: Plan, kind: str, **extra) -> None:
        rows.append({"plan": plan.to_dict(), "label": plan.label(), "kind": kind, **extra})

    for wd in v.widths.values():
        row(Plan("local", variant=wd.id), "variant", file=wd.full_file, macs=wd.full_macs)
        for ex in [*wd.profiles, *v.exits[:-1]]:
            row(Plan("local", variant=wd.id, exit=ex), "staged", profile=wd.profiles.get(ex))
    for m in v.models.values():
        row(Plan("local", variant=m.name), "variant", file=m.file, macs=m.macs, fidelity=m.fidelity or None)
    for s in v.staged.values():
        row(Plan("local", variant=s.name), "staged", files=list(s.files), macs=s.macs, fidelity=s.fidelity or None)
        for ex in [*s.profiles, *s.exits[:-1]]:
            row(Plan("local", variant=s.name, exit=ex), "staged", profile=s.profiles.get(ex))
    for b in v.branches:
        row(Plan("local", branch=(b.small, b.big)), "branch", measure=b.measure, config=b.config)
    return rows
