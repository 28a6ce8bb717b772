"""Device profiles: published compute, memory and power figures of target devices.

Profiles ship inside the package, ``edgeinf/data/devices/<name>.toml`` (sources cited in
comments there), so wheel and sdist installs find them; ``$EDGEINF_DEVICES`` names an
extra folder searched first, for boards of your own. They scale
timings measured on this machine to a target by the ratio of sustained CPU throughput
(``cpu.gflops``, fp64 Linpack-style for every profile so ratios compare like with like)::

    pi = load_device("raspberry-pi-4")
    host = load_device("dev-x86")
    pi.slowdown_vs(host)          # ~3.6: the Pi needs 3.6x this machine's time
    pi.scale_ms(2.0, host)        # 2 ms measured here -> ~7.2 ms scaled to the Pi

Scaled numbers are estimates; say so wherever they are shown.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import List, Optional, Union

from .. import config
from ..errors import ConfigError, nearest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

#: The bundled profiles: package data, present in every install (checkout, sdist, wheel).
DEVICES_DIR = Path(__file__).resolve().parents[1] / "data" / "devices"
HOST = "dev-x86"


@dataclass(frozen=True)
class DeviceProfile:
    """One device's published (or measured) figures. Units are in the field names."""

    name: str
    description: str
    arch: str
    cores: int
    clock_ghz: float
    simd: str
    cpu_gflops: float
    ram_gb: float
    mem_bandwidth_gbs: float
    idle_w: float
    active_w: float
    gpu: Optional[str] = None
    gpu_gflops_fp16: Optional[float] = None

    def slowdown_vs(self, host: "DeviceProfile") -> float:
        """How many times longer this device takes than ``host`` for the same CPU work."""
        return host.cpu_gflops / self.cpu_gflops

    def scale_ms(self, ms: float, host: "DeviceProfile") -> float:
        """A time measured on ``host`` scaled to this device (an estimate)."""
        return ms * self.slowdown_vs(host)

    def energy_mj(self, ms: float) -> float:
        """Energy above idle of ``ms`` of full-load compute, in millijoules."""
        return (self.active_w - self.idle_w) * ms

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# field -> (TOML table, key, type); None marks an optional field
_SCHEMA = {
    "description": ("", "description", str), "arch": ("cpu", "arch", str), "cores": ("cpu", "cores", int),
    "clock_ghz": ("cpu", "clock_ghz", float), "simd": ("cpu", "simd", str),
    "cpu_gflops": ("cpu", "gflops", float), "ram_gb": ("memory", "ram_gb", float),
    "mem_bandwidth_gbs": ("memory", "bandwidth_gbs", float), "idle_w": ("power", "idle_w", float),
    "active_w": ("power", "active_w", float), "gpu": ("gpu", "name", None),
    "gpu_gflops_fp16": ("gpu", "gflops_fp16", None),
}


def search_path() -> List[Path]:
    """Folders searched for ``<name>.toml``, in order: ``$EDGEINF_DEVICES``, then the bundled ones."""
    extra = config.get("EDGEINF_DEVICES")
    return ([Path(extra).expanduser()] if extra else []) + [DEVICES_DIR]


def names() -> List[str]:
    """Every known device name (user folder and bundled profiles)."""
    return sorted({p.stem for d in search_path() for p in d.glob("*.toml")})


def _find(name: str) -> Optional[Path]:
    return next((d / f"{name}.toml" for d in search_path() if (d / f"{name}.toml").is_file()), None)


def load_device(name: Union[str, Path]) -> DeviceProfile:
    """Load the profile called ``name`` (see :func:`search_path`), or a path to a TOML file.

    Raises
    ------
    ConfigError
        Unknown device (names the nearest), or a missing/mistyped field (names the field).
    """
    path = Path(name) if Path(name).suffix == ".toml" else _find(str(name))
    if path is None or not path.is_file():
        where = " and ".join(str(d) for d in search_path())
        raise ConfigError(f"unknown device {str(name)!r}; nearest: {nearest(str(name), names())} "
                          f"(all: {', '.join(names())}; files in {where})")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    values = {"name": doc.get("name", path.stem)}
    for field_name, (table, key, typ) in _SCHEMA.items():
        where = f"{table}.{key}" if table else key
        v = doc.get(table, {}).get(key) if table else doc.get(key)
        if v is None:
            if typ is None:
                values[field_name] = None
                continue
            raise ConfigError(f"{path}: missing field '{where}' ({typ.__name__})")
        want = typ or (str if key == "name" else float)
        if want in (int, float) and (isinstance(v, bool) or not isinstance(v, (int, float))) \
                or want is str and not isinstance(v, str):
            raise ConfigError(f"{path}: field '{where}' must be {want.__name__}; got {v!r}")
        if want in (int, float) and v <= 0:
            raise ConfigError(f"{path}: field '{where}' must be > 0; got {v!r}")
        values[field_name] = want(v)
    return DeviceProfile(**values)
