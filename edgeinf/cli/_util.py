"""Small helpers shared by CLI commands."""
from __future__ import annotations

import argparse
import json
import math
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


# -- argparse types: a number out of its range is refused before any work starts ------------
# NOTE: as a ``type=``, argparse reports the error as ``edgeinf CMD: error: argument --X: ...``
# (exit 2); checked in the command's body instead, a negative --seconds ran a benchmark on
# nonsense and a zero --resolution-ms died in a ZeroDivisionError a minute in
def _number(cast, ok, what: str):
    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return v

    parse.__name__ = what
    return parse


positive = _number(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
non_negative = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
fraction = _number(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")  # NaN fails both
share = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
