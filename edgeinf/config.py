"""Every ``EDGEINF_*`` environment variable, declared once.

Other modules read settings through :func:`get`, never ``os.environ`` directly, so this
table is the complete list of knobs (``edgeinf info`` prints it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    help: str


ENV = {
    v.name: v
    for v in [
        EnvVar("EDGEINF_CACHE", str(Path.home() / ".cache" / "edgeinf"),
               "where built and downloaded models are cached"),
        EnvVar("EDGEINF_THREADS", "", "default intra-op threads for backend sessions (empty: engine default)"),
        EnvVar("EDGEINF_FORCE_GENERIC", "0", "1 forces the portable (non-SIMD) kernel paths"),
        EnvVar("EDGEINF_DEVICES", "", "extra folder of device profiles (<name>.toml), searched before "
               "the bundled ones"),
        EnvVar("EDGEINF_LOG", "WARNING", "log level of the 'edgeinf' logger for the CLI"),
    ]
}


def get(name: str) -> str:
    """Value of a declared ``EDGEINF_*`` variable, or its default."""
    var = ENV[name]  # KeyError here means an undeclared knob: declare it above
    return os.environ.get(name, var.default)


def cache_dir() -> Path:
    p = Path(get("EDGEINF_CACHE")).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p
