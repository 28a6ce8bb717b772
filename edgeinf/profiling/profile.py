"""The package profile (``profile.json``): what every plan costs, measured on this host.

``profile.json`` sits in the package directory but outside the hashed manifest, so the
device and the worker keep the same :attr:`Package.hash` whichever side profiled. It names
the package hash and model SHA-256 it was measured against; :func:`load_profile` refuses a
profile whose package has changed since. Format: ``docs/package.md`` ("profile.json").
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..controller.costmodel import PlanCost
from ..errors import ConfigError, PackageError, nearest
from ..plan import Plan

FILE = "profile.json"
FORMAT, VERSION = "edgeinf-profile", 1
MAX_BYTES = 16 * 2**20


@dataclass(frozen=True)
class PlanProfile:
    """One measured plan: host ms (unpaced), bytes each way, and fidelity to the unsplit model."""

    plan: Plan
    device_ms: float  # fastest of `repeat` runs on this host: head, full model or variant; 0 for offload
    encode_ms: float = 0.0  # fastest encode on this host
    up_bytes: int = 0  # mean over the samples, plus the header allowance
    server_ms: float = 0.0  # median decode + tail (split) or decode + full model (offload)
    down_bytes: int = 0
    accuracy: float = 1.0  # fidelity under the profile's metric
    lossless: Tuple[str, ...] = ()  # integer/bool tensors that crossed raw whatever the codec

    def cost(self, pace: float = 1.0) -> PlanCost:
        """The cost model's view, device-side times x ``pace`` (server times are not paced)."""
        return PlanCost(self.plan, self.device_ms * pace, self.encode_ms * pace, self.up_bytes,
                        self.server_ms, self.accuracy, self.down_bytes)

    def to_dict(self) -> dict:
        d = {"plan": self.plan.to_dict(), "label": self.plan.label(), "device_ms": round(self.device_ms, 6),
             "encode_ms": round(self.encode_ms, 6), "up_bytes": int(self.up_bytes),
             "server_ms": round(self.server_ms, 6), "down_bytes": int(self.down_bytes),
             "accuracy": round(self.accuracy, 6)}
        return {**d, "lossless": list(self.lossless)} if self.lossless else d

    @classmethod
    def from_dict(cls, d: dict) -> "PlanProfile":
        return cls(Plan.from_dict(d["plan"]), float(d["device_ms"]), float(d.get("encode_ms", 0.0)),
                   int(d.get("up_bytes", 0)), float(d.get("server_ms", 0.0)), int(d.get("down_bytes", 0)),
                   float(d.get("accuracy", 1.0)), tuple(d.get("lossless", ())))


@dataclass
class Profile:
    """Everything ``profile.json`` holds; see :func:`edgeinf.profiling.profile_package`.

    ``cuts`` maps cut id (and ``"offload"``) to its codec table:
    ``{"codecs": {codec: {"bytes", "fidelity", "encode_ms", "decode_ms"}}, "best": codec,
    "lossless": [tensor, ...], "axes": {tensor: axis}}``.
    """

    package_hash: str
    model_sha256: str
    metric: str
    accuracy_floor: float
    inputs: dict
    host: dict
    plans: List[PlanProfile]
    cuts: Dict[str, dict] = field(default_factory=dict)
    threads: Optional[int] = 1
    repeat: int = 9
    device: Optional[dict] = None
    package: str = ""

    # -- queries ---------------------------------------------------------------------------
    def costs(self, pace: float = 1.0, floor: Optional[float] = None) -> List[PlanCost]:
        """Plan costs for the controller, device-side ms x ``pace``.

        Split and offload plans whose codec fidelity is under ``floor`` (default: the
        profile's ``accuracy_floor``) are left out; local plans are always kept (a variant's
        accuracy is the controller's trade, not a codec's).
        """
        floor = self.accuracy_floor if floor is None else floor
        return [p.cost(pace) for p in self.plans if not p.plan.remote or p.accuracy >= floor]

    def plan(self, plan: Union[Plan, str]) -> PlanProfile:
        """The measured entry for ``plan`` (a Plan or its label)."""
        for p in self.plans:
            if p.plan == plan or p.plan.label() == plan:
                return p
        labels = [p.plan.label() for p in self.plans]
        raise PackageError(f"the profile of {self.package or 'this package'} has no plan {str(plan)!r}; "
                           f"nearest: {nearest(str(plan), labels)}")

    def best_codec(self, cut_id: Optional[str] = None) -> str:
        """Fewest bytes among the codecs of ``cut_id`` (None: full offload) meeting the floor."""
        key = "offload" if cut_id is None else str(cut_id)
        if key not in self.cuts:
            raise PackageError(f"the profile of {self.package or 'this package'} has no cut {key!r}; "
                               f"nearest: {nearest(key, self.cuts)} (all: {sorted(self.cuts)})")
        return self.cuts[key]["best"]

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "package": self.package, "package_hash": self.package_hash,
                "model_sha256": self.model_sha256, "metric": self.metric, "accuracy_floor": self.accuracy_floor,
                "inputs": self.inputs, "host": self.host, "threads": self.threads, "repeat": self.repeat,
                "device": self.device, "cuts": self.cuts, "plans": [p.to_dict() for p in self.plans]}

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise PackageError(f"not an edgeinf profile: 'format' must be {FORMAT!r}")
        if not isinstance(d.get("version"), int) or d["version"] > VERSION:
            raise PackageError(f"profile version {d.get('version')!r} is newer than this edgeinf reads ({VERSION})")
        try:
            return cls(str(d["package_hash"]), str(d["model_sha256"]), str(d["metric"]), float(d["accuracy_floor"]),
                       dict(d["inputs"]), dict(d["host"]), [PlanProfile.from_dict(p) for p in d["plans"]],
                       dict(d.get("cuts", {})), d.get("threads"), int(d.get("repeat", 0)), d.get("device"),
                       str(d.get("package", "")))
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise PackageError(f"malformed profile ({type(e).__name__}: {e})") from None



def save_profile(pkg, prof: Profile) -> Path:
    """Write ``pkg.root / profile.json`` atomically (a reader never sees half a file)."""
    path = Path(pkg.root) / FILE
    tmp = path.with_name(FILE + f".{os.getpid()}.part")
    tmp.write_text(json.dumps(prof.to_dict(), indent=1))
    os.replace(tmp, path)
    return path


def load_profile(pkg) -> Profile:
    """The profile of ``pkg`` (a Package or its directory).

    Raises
    ------
    PackageError
        No ``profile.json`` yet, an unreadable one, or one measured on a different package
        (its package hash or model SHA-256 differs from the package's now).
    """
    from ..package import Package, open_package, read_json

    pkg = pkg if isinstance(pkg, Package) else open_package(pkg)
    path = Path(pkg.root) / FILE
    if not path.is_file():
        raise PackageError(f"package {pkg.name!r} has no {FILE}: run `edgeinf profile {pkg.root}`")
    _, doc = read_json(path, MAX_BYTES, f": run `edgeinf profile {pkg.root}` again")
    prof = Profile.from_dict(doc)
    if prof.model_sha256 != pkg.model.sha256:
        raise PackageError(f"{path} is stale: profiled model sha256 {prof.model_sha256[:12]}..., the package's is "
                           f"{pkg.model.sha256[:12]}...; run `edgeinf profile {pkg.root}` again")
    if prof.package_hash != pkg.hash:
        raise PackageError(f"{path} is stale: profiled package hash {prof.package_hash[:12]}..., the package's is "
                           f"{pkg.hash[:12]}... (its manifest changed); run `edgeinf profile {pkg.root}` again")
    return prof
