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
