"""Sample inputs for profiling: the user's (a ``.npz``), photographs, or values from the specs.

Stacked form: ``{input name: array}`` with N samples on a new leading axis, so each
array is ``(N, *input shape)``; sample ``i`` is ``{name: a[i]}``. Symbolic dims of the
specs (a batch dim, say) take any value in user inputs and 1 in generated ones.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from ..types import TensorSpec, shape_str

MAX_NPZ_BYTES = 2 << 30  # uncompressed, checked from the zip directory before reading
Stacked = Dict[str, np.ndarray]


def _want(s: TensorSpec) -> str:
    dims = "x".join(str(d) if isinstance(d, int) and d >= 0 else "?" for d in s.shape) or "scalar"
    return f"{s.name}: Nx{dims} {np.dtype(s.dtype).name}"


def check_inputs(inputs: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], where: str = "inputs") -> Stacked:
    """Validate stacked inputs against ``specs``; one :class:`InputError` naming expected vs got."""
    expected = "; ".join(_want(s) for s in specs)
    got = "; ".join(f"{k}: {shape_str(np.shape(v))} {np.asarray(v).dtype.name}" for k, v in inputs.items())
    bad = set(inputs) != {s.name for s in specs}
    out, counts = {}, set()
    for s in specs if not bad else ():
        a = np.asarray(inputs[s.name])
        if a.ndim != len(s.shape) + 1 or not s.matches(a.shape[1:]) or a.dtype != np.dtype(s.dtype) or len(a) < 1:
            bad = True
            break
        out[s.name] = np.ascontiguousarray(a)
        counts.add(len(a))
    if bad or len(counts) > 1:
        why = "different sample counts" if not bad else "names, shapes or dtypes differ"
        raise InputError(f"{where} do not match the model ({why}): expected {expected} "
                         f"(N samples stacked on a new leading axis); got {got or 'nothing'}")
    return out


def load_inputs_npz(path: Union[str, Path], specs: Sequence[TensorSpec]) -> Stacked:
    """Read a ``.npz`` of stacked sample inputs (one array per model input, named as the input).

    Raises
    ------
    InputError
        Missing or unreadable file, too large, or names/shapes/dtypes that do not match ``specs``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--inputs file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            size = sum(i.file_size for i in zf.infolist())
        if size > MAX_NPZ_BYTES:
            raise InputError(f"{path} holds {size} bytes uncompressed; the limit is {MAX_NPZ_BYTES}")
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise InputError(f"{path} is not a readable .npz of arrays (np.savez): {e}") from None
    return check_inputs(arrays, specs, where=f"inputs in {path}")


def shapes_of(pkg) -> Dict[str, Tuple[int, ...]]:
    """Concrete input shapes: those the package's cuts were found for (``split.input_shapes``,
    set by ``--shape``), else the specs' with symbolic dims set to 1 (batch 1 per sample)."""
    split = (getattr(pkg, "manifest", None) or {}).get("split") or {}
    known = {k: tuple(int(d) for d in v) for k, v in (split.get("input_shapes") or {}).items() if v}
    return {s.name: known.get(s.name) or s.concrete_shape(1) for s in pkg.inputs}


def generated(specs: Sequence[TensorSpec], n: int,
              shapes: Optional[Mapping[str, Tuple[int, ...]]] = None) -> Tuple[Stacked, Dict[str, str]]:
    """``n`` samples: photographs for image inputs, seeded values from the specs otherwise."""
    from ..split.inputs import is_image, sample_inputs

    shapes = {s.name: tuple((shapes or {}).get(s.name) or s.concrete_shape(1)) for s in specs}
    feeds = [sample_inputs(list(specs), shapes, index=i) for i in range(n)]
    kinds = {s.name: "photos" if is_image(shapes[s.name], s.dtype) else "random" for s in specs}
    return {s.name: np.stack([f[s.name] for f in feeds]) for s in specs}, kinds


def unstack(stacked: Stacked) -> List[Dict[str, np.ndarray]]:
    n = len(next(iter(stacked.values()))) if stacked else 0
    return [{k: v[i] for k, v in stacked.items()} for i in range(n)]


def sample_inputs(pkg, index: int = 0) -> Dict[str, np.ndarray]:
    """One feed dict for ``pkg`` (batch 1): the profile's kind of input, generated here."""
    stacked, _ = generated(pkg.inputs, index + 1, shapes_of(pkg))
    return {k: v[index] for k, v in stacked.items()}
