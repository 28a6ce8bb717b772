"""The ``"variants"`` section of a model package: widths, exits, cuts and calibration.

Layout (see ``docs/package.md``, "Variants")::

    "variants": {
      "version": 1, "classes": 10, "confidence": "max_prob",
      "input": {"name": "x", "shape": ["batch", 1, 32, 32], "dtype": "float32"},
      "exits": ["exit1", "exit2", "exit3"],
      "widths": [{"id": "w1.0", "mult": 1.0, "full": {"file": ..., "macs": ...},
                  "stages": [{"file": ..., "input": "x", "cut": {TensorSpec} | null,
                              "macs": ...}, ...],
                  "accuracy": {"calib": [per exit], "test": [per exit]},
                  "profiles": {"drop1": {"thresholds": [...], "target_drop": 1.0,
                                         "calib": {...}, "test": {...}}}}],
      "data": {"calib": {"x": ..., "y": ...}, "test": {...}}, "training": {...}}

User-declared entries (version 2, added by :mod:`edgeinf.dynamic.declare`; the digits
keys above are then optional)::

      "models": [{"name": "small", "file": "variants/small/model.onnx", "macs": ...,
                  "fidelity": {...}}],
      "staged": [{"name": "ee", "logits": "logits", "confidence": "max_prob",
                  "stages": [{"file": "variants/ee/stage0.onnx", "macs": ...}, ...],
                  "profiles": {"drop1": {"thresholds": [...], "target_drop": 1.0, ...}}}],
      "branches": [{"small": "small", "big": "full", "measure": "range", "config": {...}}]

Every file named here must also be in the manifest's hashed ``files`` list, so
``open_package`` has checked it; :func:`read` refuses a name that is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import PackageError, nearest
from ..types import TensorSpec

VERSION = 2  # 1: the digits widths only; 2: user models, staged exits, branches
KEY = "variants"


@dataclass(frozen=True)
class Stage:
    file: str
    input: str
    cut: Optional[TensorSpec]  # the tensor handed to the next stage (None for the last)
    macs: int  # this segment: its body and its exit head


@dataclass(frozen=True)
class Width:
    id: str
    mult: float
    full_file: str
    full_macs: int
    stages: Tuple[Stage, ...]
    accuracy: Dict[str, List[float]] = field(default_factory=dict)
    profiles: Dict[str, dict] = field(default_factory=dict)

    def exit_cost(self) -> np.ndarray:
        """Cumulative MACs of leaving at exit k (stages 1..k, heads included)."""
        return np.cumsum([s.macs for s in self.stages]).astype(np.float64)

    def profile(self, name: str) -> dict:
        if name not in self.profiles:
            raise PackageError(f"width {self.id} has no exit profile {name!r}; nearest "
                               f"{nearest(name, self.profiles)} (all: {sorted(self.profiles)})")
        return self.profiles[name]


@dataclass(frozen=True)
class ModelVariant:
    """Another model with the package model's input/output contract (a width, a smaller model)."""

    name: str
    file: str
    macs: Optional[int] = None
    fidelity: Dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedVariant:
    """Stage graphs with an exit after each; see docs/package.md, Variants, for the contract."""

    name: str
    files: Tuple[str, ...]
    macs: Tuple[Optional[int], ...]
    logits: str
    confidence: str = "max_prob"
    profiles: Dict[str, dict] = field(default_factory=dict)
    fidelity: Dict[str, object] = field(default_factory=dict)

    @property
    def exits(self) -> Tuple[str, ...]:
        return tuple(f"exit{k + 1}" for k in range(len(self.files)))

    def exit_cost(self) -> Optional[np.ndarray]:
        if any(m is None for m in self.macs):
            return None
        return np.cumsum(self.macs).astype(np.float64)


@dataclass(frozen=True)
class BranchDecl:
    small: str
    big: str
    measure: str = "range"
    config: Dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Variants:
    widths: Dict[str, Width]
    exits: Tuple[str, ...]
    classes: int
    confidence: str
    input: Optional[TensorSpec]
    data: dict
    raw: dict
    models: Dict[str, ModelVariant] = field(default_factory=dict)
    staged: Dict[str, StagedVariant] = field(default_factory=dict)
    branches: Tuple[BranchDecl, ...] = ()

    def width(self, wid: Optional[str]) -> Width:
        """A width by id (``"w0.5"``); None means the widest."""
        if not self.widths:
            raise PackageError("this package has no widths (only the digits example has them)")
        if wid is None:
            return max(self.widths.values(), key=lambda w: w.mult)
        if wid not in self.widths:
            raise PackageError(f"no width {wid!r} in this package; choose one of {sorted(self.widths)}")
        return self.widths[wid]

    def names(self) -> List[str]:
        """Every local variant name: widths, models and staged variants."""
        return [*self.widths, *self.models, *self.staged]


def exit_thresholds(exit: Optional[str], exits: Tuple[str, ...], profiles: Dict[str, dict],
                    owner: str) -> np.ndarray:
    """Per-early-exit thresholds of ``exit``: None runs to the end, an exit id stops there,
    a profile name uses its calibrated thresholds (None in JSON: never leave there)."""
    n = len(exits) - 1
    if exit is None:
        return np.full(n, np.inf)
    if exit in exits:
        stop = exits.index(exit)
        return np.array([-np.inf if j == stop else np.inf for j in range(n)])
    if exit not in profiles:
        raise PackageError(f"{owner} has no exit profile {exit!r}; nearest {nearest(exit, profiles)} "
                           f"(profiles: {sorted(profiles)}, exits: {list(exits[:-1])})")
    thr = profiles[exit]["thresholds"]
    if len(thr) != n:
        raise PackageError(f"{owner}: profile {exit!r} has {len(thr)} thresholds for {n} early exits")
    return np.array([np.inf if t is None else float(t) for t in thr])


def read(pkg) -> Variants:
    """Parse ``pkg.manifest["variants"]``; a package without one is a PackageError saying so."""
    raw = pkg.manifest.get(KEY)
    if raw is None:
        raise PackageError(f"package {pkg.name!r} has no {KEY!r} section: it holds one model, "
                           "not early exits or widths (see docs/package.md, Variants)")
    if raw.get("version", 0) > VERSION:
        raise PackageError(f"variants version {raw.get('version')} is newer than this edgeinf reads ({VERSION})")
    hashed = {f["file"] for f in pkg.manifest.get("files", [])} | {pkg.model.file}

    def checked(path: str) -> str:
        if path not in hashed:
            raise PackageError(f"variants file {path!r} is not in the package's hashed 'files' list")
        return path

    try:
        widths = {w["id"]: _width(w, checked) for w in raw.get("widths", [])}
        for part in raw.get("data", {}).values():
            for path in part.values():
                checked(path)
        models = {m["name"]: ModelVariant(m["name"], checked(m["file"]), m.get("macs"), m.get("fidelity", {}))
                  for m in raw.get("models", [])}
        staged = {s["name"]: StagedVariant(s["name"], tuple(checked(st["file"]) for st in s["stages"]),
                                           tuple(st.get("macs") for st in s["stages"]), s["logits"],
                                           s.get("confidence", "max_prob"), s.get("profiles", {}),
                                           s.get("fidelity", {}))
                  for s in raw.get("staged", [])}
        branches = tuple(BranchDecl(b["small"], b["big"], b.get("measure", "range"), b.get("config", {}))
                         for b in raw.get("branches", []))
        inp = TensorSpec.from_dict(raw["input"]) if "input" in raw else None
        return Variants(widths, tuple(raw.get("exits", ())), int(raw.get("classes", 0)),
                        raw.get("confidence", "max_prob"), inp, raw.get("data", {}), raw, models, staged, branches)
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"package {pkg.name!r}: malformed {KEY!r} section ({type(e).__name__}: {e})") from None


def _width(w: dict, checked) -> Width:
    stages = tuple(Stage(checked(s["file"]), s["input"],
                         TensorSpec.from_dict(s["cut"]) if s.get("cut") else None, int(s["macs"]))
                   for s in w["stages"])
    return Width(w["id"], float(w["mult"]), checked(w["full"]["file"]), int(w["full"]["macs"]), stages,
                 w.get("accuracy", {}), w.get("profiles", {}))


def load_split(pkg, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """The package's stored ``calib`` or ``test`` split: float32 inputs and int64 labels."""
    v = read(pkg)
    if name not in v.data:
        raise PackageError(f"package has no {name!r} data; it has {sorted(v.data)}")
    files = v.data[name]
    # allow_pickle=False: the arrays are plain numeric .npy files, never objects
    x = np.load(pkg.root / files["x"], allow_pickle=False)
    y = np.load(pkg.root / files["y"], allow_pickle=False)
    return (x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64)
