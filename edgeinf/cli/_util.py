"""Small helpers shared by CLI commands."""
from __future__ import annotations

import json
import sys

import numpy as np


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=_default)
    sys.stdout.write("\n")


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.dtype):
        return o.name
    return str(o)


def percentiles_ms(samples_s) -> dict:
    a = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {"median_ms": round(float(np.median(a)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "min_ms": round(float(a.min()), 3), "n": int(a.size)}


#: Optional modules -> (distribution to install, the extra that brings it). A command that
#: imports one of these on a plain install gets this hint instead of a traceback.
OPTIONAL = {
    "skimage": ("scikit-image", "demo"),
    "sklearn": ("scikit-learn", "demo"),
    "matplotlib": ("matplotlib", "demo"),
    "blosc2": ("blosc2", "demo"),
    "torch": ("torch", "train"),
    "llama_cpp": ("llama-cpp-python", "llm"),
}


def missing_extra(e: ImportError):
    """The one-line install hint for an optional module ``e`` failed to import, else None."""
    top = (getattr(e, "name", None) or "").split(".")[0]
    if top not in OPTIONAL:
        return None
    dist, extra = OPTIONAL[top]
    note = " (the CPU build of torch is enough)" if top == "torch" else ""
    return f'this command needs {dist}, which is not installed: pip install "edgeinf[{extra}]"{note}'


def require(*modules: str) -> None:
    """Fail now, with :func:`missing_extra`'s hint, if an optional module is not installed.

    For commands that would otherwise run for a minute and then fail at the import (a
    plot at the end of a benchmark): call it first, e.g. ``require("matplotlib")``.
    """
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def llm_specs(specs) -> dict:
    """``--llm NAME=GGUF`` values as ``{name: absolute path}``; a clear error for each mistake."""
    from pathlib import Path

    from ..errors import ConfigError

    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--llm takes NAME=GGUF (e.g. smollm2=/models/smollm2.gguf); got {spec!r}")
        if name in out:
            raise ConfigError(f"--llm {name} given twice")
        if not Path(path).is_file():
            raise ConfigError(f"--llm {name}: no file {path}")
        out[name] = str(Path(path).resolve())
    return out
