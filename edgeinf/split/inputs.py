"""Real inputs for verification and profiling: photographs for image inputs, seeded values
drawn from the specs for the rest.

An input is an image when it is rank 4 with 1 or 3 channels first or last (NCHW or NHWC)
and float or uint8: it gets one of the bundled photographs (:mod:`edgeinf.photos`), scaled
to [0, 1] for floats. Any other input gets seeded random values of its dtype, so every
model can still be checked. :func:`is_image` is the one statement of that rule.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..types import TensorSpec


def image_layout(shape: Tuple[int, ...], dtype) -> Optional[str]:
    """'NCHW' or 'NHWC' when ``shape``/``dtype`` is an image input (see the module docstring), else None."""
    dt = np.dtype(dtype)
    if len(shape) != 4 or not (dt.kind == "f" or dt == np.uint8):
        return None
    if shape[1] in (1, 3) and shape[3] not in (1, 3) and min(shape[2], shape[3]) >= 4:
        return "NCHW"
    if shape[3] in (1, 3) and min(shape[1], shape[2]) >= 4:
        return "NHWC"
    return None


def is_image(shape: Tuple[int, ...], dtype) -> bool:
    return image_layout(tuple(shape), dtype) is not None


def _image(shape: Tuple[int, ...], dtype: np.dtype, index: int) -> np.ndarray:
    from .. import photos

    layout = image_layout(shape, dtype)
    hw = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    c = shape[1] if layout == "NCHW" else shape[3]
    # NOTE: photos.load(index + batch) then keep the tail: sample i is the same photo whatever the batch
    arr = photos.load(index + shape[0], hw, layout=layout, dtype=dtype, channels=c)[index:]
    return np.ascontiguousarray(arr)


def sample_inputs(specs: List[TensorSpec], shapes: Mapping[str, Tuple[int, ...]],
                  index: int = 0, seed: int = 0) -> Dict[str, np.ndarray]:
    """One feed dict: photos for image inputs, seeded random values otherwise.

    Parameters
    ----------
    specs : list of TensorSpec
        The model's inputs.
    shapes : mapping
        Concrete shape for each input.
    index : int
        Which sample: photograph ``index`` (and onwards for a batch), random seed ``seed + index``.
    """
    rng = np.random.default_rng(seed + index)
    feeds = {}
    for s in specs:
        shape, dt = tuple(shapes[s.name]), np.dtype(s.dtype)
        if is_image(shape, dt):
            feeds[s.name] = _image(shape, dt, index)
        elif dt.kind == "f":
            feeds[s.name] = rng.standard_normal(shape).astype(dt)
        elif dt == np.bool_:
            feeds[s.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[s.name] = rng.integers(0, 10, shape).astype(dt)
    return feeds
