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

Every file named here must also be in the manifest's hashed ``files`` list, so
``open_package`` has checked it; :func:`read` refuses a name that is not.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import PackageError, nearest
from ..types import TensorSpec

VERSION = 1
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
class Variants:
    widths: Dict[str, Width]
    exits: Tuple[str, ...]
    classes: int
    confidence: str
    input: TensorSpec
    data: dict
    raw: dict

    def width(self, wid: Optional[str]) -> Width:
        """A width by id (``"w0.5"``); None means the widest."""
        if wid is None:
            return max(self.widths.values(), key=lambda w: w.mult)
        if wid not in self.widths:
            raise PackageError(f"no width {wid!r} in this package; choose one of {sorted(self.widths)}")
        return self.widths[wid]


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
        widths = {}
        for w in raw["widths"]:
            stages = tuple(Stage(checked(s["file"]), s["input"],
                                 TensorSpec.from_dict(s["cut"]) if s.get("cut") else None, int(s["macs"]))
                           for s in w["stages"])
            widths[w["id"]] = Width(w["id"], float(w["mult"]), checked(w["full"]["file"]),
                                    int(w["full"]["macs"]), stages, w.get("accuracy", {}), w.get("profiles", {}))
        for part in raw.get("data", {}).values():
            for path in part.values():
                checked(path)
        return Variants(widths, tuple(raw["exits"]), int(raw["classes"]), raw.get("confidence", "max_prob"),
                        TensorSpec.from_dict(raw["input"]), raw.get("data", {}), raw)
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"package {pkg.name!r}: malformed {KEY!r} section ({type(e).__name__}: {e})") from None


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
