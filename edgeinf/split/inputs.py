"""Real inputs for verification and profiling: photographs resized to the model's input.

scikit-image ships a few photographs (astronaut, coffee, a printed page...). Image-like inputs
(rank 4 with 1 or 3 channels, NCHW or NHWC) get a photo scaled to [0, 1]; any other input
gets seeded random values of its dtype, so every model can still be checked.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

import numpy as np

from ..types import TensorSpec

PHOTOS = ("astronaut", "coffee", "page", "chelsea", "rocket")


def photo(index: int = 0) -> np.ndarray:
    """A real RGB photograph (HxWx3 uint8); falls back to a smooth pattern without scikit-image."""
    try:
        from skimage import data
    except ImportError:  # NOTE: scikit-image is a test extra; the library still works without it
        y, x = np.mgrid[0:256, 0:256]
        return np.stack([x, y, (x + y) // 2], -1).astype(np.uint8)
    img = getattr(data, PHOTOS[index % len(PHOTOS)])()
    return np.stack([img] * 3, -1) if img.ndim == 2 else img


def _image(shape: Tuple[int, ...], dtype: np.dtype, index: int) -> np.ndarray:
    import cv2

    nchw = shape[1] in (1, 3) and shape[3] not in (1, 3)
    h, w = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    c = shape[1] if nchw else shape[3]
    batch = []
    for b in range(shape[0]):
        img = cv2.resize(photo(index + b), (w, h), interpolation=cv2.INTER_AREA)
        img = img.mean(-1, keepdims=True) if c == 1 else img
        batch.append(img.transpose(2, 0, 1) if nchw else img)
    arr = np.stack(batch)
    return (arr / 255.0).astype(dtype) if dtype.kind == "f" else arr.astype(dtype)


def sample_inputs(specs: List[TensorSpec], shapes: Mapping[str, Tuple[int, ...]],
                  index: int = 0, seed: int = 0) -> Dict[str, np.ndarray]:
    """One feed dict: photos for image-like inputs, seeded random values otherwise.

    Parameters
    ----------
    specs : list of TensorSpec
        The model's inputs.
    shapes : mapping
        Concrete shape for each input.
    index : int
        Which photograph to start from (several calls give several real inputs).
    """
    rng = np.random.default_rng(seed + index)
    feeds = {}
    for s in specs:
        shape, dt = tuple(shapes[s.name]), np.dtype(s.dtype)
        if len(shape) == 4 and (shape[1] in (1, 3) or shape[3] in (1, 3)) and dt.kind in "fu":
            feeds[s.name] = _image(shape, dt, index)
        elif dt.kind == "f":
            feeds[s.name] = rng.standard_normal(shape).astype(dt)
        elif dt == np.bool_:
            feeds[s.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[s.name] = rng.integers(0, 10, shape).astype(dt)
    return feeds
