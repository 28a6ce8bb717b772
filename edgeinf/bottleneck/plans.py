"""Reading a bottleneck package: its widths as split plans, checks, and the landmark agreement.

A bottleneck width is a **cut** of the package (``bn-w4``: head = teacher up to the cut +
encoder at width 4, tail = decoder + teacher after it), so ``Plan("split", cut="bn-w4",
codec="int8-pc+lz4")`` is an ordinary split plan: the runtime, the worker, the profile and
the controller need nothing new. The manifest's ``bottleneck`` section says which cuts are
widths, which teacher they were trained for (its SHA-256) and what calibration measured.
No torch here: this is what a device or a worker imports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from ..errors import ConfigError, PackageError, nearest
from ..plan import Plan

SECTION = "bottleneck"
PCK_ALPHA = 0.05  # a landmark agrees when within 5% of the teacher's hand size (bbox diagonal)


@dataclass(frozen=True)
class Width:
    """One width of the slimmable encoder: its cut id, channel count and calibrated agreement."""

    cut: str
    width: int
    bytes_raw: int
    agreement: Dict[str, float]  # codec -> PCK vs the teacher on the held-out photographs


def section(pkg) -> dict:
    """The manifest's bottleneck section; a clear error for a package without one."""
    sec = pkg.manifest.get(SECTION)
    if not isinstance(sec, dict):
        raise PackageError(f"package {pkg.name!r} has no bottleneck section: build it with "
                           "`python splits/train_bottleneck.py` (edgeinf.bottleneck.build.ensure)")
    return sec


def widths(pkg) -> List[Width]:
    """Every width, narrowest first."""
    out = []
    for w in section(pkg)["widths"]:
        pkg.cut(w["cut"])  # a width names a cut the package really has
        out.append(Width(str(w["cut"]), int(w["width"]), int(w["bytes_raw"]),
                         {str(k): float(v) for k, v in w.get("agreement", {}).items()}))
    return sorted(out, key=lambda w: w.width)


def check_teacher(pkg, sha256: str) -> None:
    """Refuse a package trained for another teacher (its recorded SHA-256 differs)."""
    got = section(pkg).get("teacher", {}).get("sha256")
    if got != sha256:
        raise PackageError(f"package {pkg.name!r} was trained for teacher {str(got)[:12]}..., "
                           f"not {sha256[:12]}...: rebuild it for this model")
    if pkg.model.sha256 != sha256:
        raise PackageError(f"package {pkg.name!r} ships a model ({pkg.model.sha256[:12]}...) other than "
                           f"the teacher its bottleneck was trained for ({sha256[:12]}...)")


def plan(pkg, width: int, codec: str) -> Plan:
    """The split plan of ``width`` under ``codec``; names the valid choices otherwise."""
    ws = {w.width: w for w in widths(pkg)}
    if width not in ws:
        raise ConfigError(f"package {pkg.name!r} has no bottleneck width {width!r}; widths: {sorted(ws)}")
    codecs = section(pkg).get("codecs", [])
    if codec not in codecs:
        raise ConfigError(f"bottleneck codec must be one of {codecs}; got {codec!r} "
                          f"(nearest: {nearest(str(codec), codecs)})")
    return Plan("split", cut=ws[width].cut, codec=codec)


def check_input(pkg, x: np.ndarray) -> None:
    """An input whose shape or dtype is not the teacher's gets a clear error before any work."""
    spec = pkg.inputs[0]
    want = spec.concrete_shape(1)
    if tuple(np.shape(x)) != tuple(want) or np.asarray(x).dtype != np.dtype(spec.dtype):
        raise ConfigError(f"bottleneck input {spec.name!r} must be {spec.dtype}{list(want)}; "
                          f"got {np.asarray(x).dtype}{list(np.shape(x))}")


def pck(ref: np.ndarray, got: np.ndarray, alpha: float = PCK_ALPHA) -> float:
    """Fraction of 2-D landmarks within ``alpha`` x the reference hand size of the reference.

    ``ref``, ``got``: ``(N, 63)`` hand_landmark outputs (21 x (x, y, z) in pixels); the
    hand size is the diagonal of the reference landmarks' bounding box, per sample.
    """
    a = np.asarray(ref, np.float64).reshape(-1, 21, 3)[..., :2]
    b = np.asarray(got, np.float64).reshape(-1, 21, 3)[..., :2]
    if a.shape != b.shape:
        raise ConfigError(f"pck: shapes differ ({a.shape} vs {b.shape})")
    size = np.linalg.norm(a.max(1) - a.min(1), axis=1)
    return float((np.linalg.norm(a - b, axis=2) <= alpha * np.maximum(size, 1e-6)[:, None]).mean())


def costs(pkg, device: str = "raspberry-pi-4", floor: Optional[float] = None) -> tuple:
    """(the controller's plan costs from ``profile.json``, paced to ``device``; the pace)."""
    from ..profiling import load_profile
    from ..profiling.host import pace_for

    prof = load_profile(pkg)
    pace = pace_for(prof, device)[0]
    return prof.costs(pace, floor), pace
