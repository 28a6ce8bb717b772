"""The bundled photographs: the one loader for every image model's sample inputs.

Six real photographs ship in ``edgeinf/data/photos`` (public-domain/CC0 scikit-image
samples, see the README there), so profiling, verification, demos and benchmarks get real
images on any install. :func:`load` gives ``n`` of them, centre-cropped to the target
aspect ratio and resized with area averaging; beyond six it repeats them mirrored, then
zoomed in, so every sample is a different array::

    x = photos.load(8, 224)                          # (8, 224, 224, 3) float32 in [0, 1]
    x = photos.load(4, (96, 128), layout="NCHW")     # (4, 3, 96, 128)
    x = photos.load(2, 64, dtype=np.uint8)           # (2, 64, 64, 3) uint8 0..255
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from .errors import ConfigError

DIR = Path(__file__).resolve().parent / "data" / "photos"
NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "page")
MAX_N = 4096  # bounds the allocation: a sample set, not a data set


@lru_cache(maxsize=None)
def _read(name: str) -> np.ndarray:
    import cv2

    path = DIR / f"{name}.jpg"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grayscale files come back as 3 equal channels
    if img is None:
        raise ConfigError(f"bundled photograph {path} is missing or unreadable; reinstall edgeinf")
    img = np.ascontiguousarray(img[..., ::-1])  # OpenCV reads BGR
    img.flags.writeable = False  # cached and shared by every caller
    return img


def image(which: Union[int, str] = 0) -> np.ndarray:
    """One photograph at its own size, ``(H, W, 3)`` uint8 RGB (read-only; copy to modify).

    ``which`` is an index (taken modulo the number of photographs) or a name in :data:`NAMES`.
    """
    if isinstance(which, str):
        if which not in NAMES:
            from .errors import nearest

            raise ConfigError(f"no bundled photograph {which!r}; nearest: {nearest(which, NAMES)} (all: {NAMES})")
        return _read(which)
    return _read(NAMES[int(which) % len(NAMES)])


def _fit(img: np.ndarray, h: int, w: int, zoom: float) -> np.ndarray:
    """Centre crop of ``1/zoom`` of the largest h:w window, resized to (h, w)."""
    import cv2

    ih, iw = img.shape[:2]
    scale = min(ih / h, iw / w) / zoom
    ch, cw = max(int(round(h * scale)), 1), max(int(round(w * scale)), 1)
    dy, dx = (ih - ch) // 2, (iw - cw) // 2
    crop = img[dy:dy + ch, dx:dx + cw]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if scale >= 1 else cv2.INTER_CUBIC)


def load(n: int = 8, size: Union[int, Tuple[int, int]] = 224, layout: str = "NHWC",
         dtype=np.float32, channels: int = 3) -> np.ndarray:
    """``n`` photographs stacked on a new leading axis.

    Parameters
    ----------
    n : int
        How many (1..4096). Photographs repeat mirrored, then zoomed in (x1.25 per round), after the first six.
    size : int or (height, width)
        Output spatial size.
    layout : 'NHWC' or 'NCHW'
        Channel position of the result.
    dtype : numpy dtype
        Floats are scaled to [0, 1]; integer types keep 0..255.
    channels : 1 or 3
        3: RGB; 1: luminance (the mean of the channels).

    Returns
    -------
    np.ndarray
        ``(n, H, W, C)`` or ``(n, C, H, W)``.
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if not 1 <= int(n) <= MAX_N or h < 1 or w < 1 or h * w > 4096 * 4096:
        raise ConfigError(f"photos.load: need 1 <= n <= {MAX_N} and a size up to 4096x4096; got n={n}, size={size}")
    if layout not in ("NHWC", "NCHW") or channels not in (1, 3):
        raise ConfigError(f"photos.load: layout must be 'NHWC' or 'NCHW' and channels 1 or 3; "
                          f"got {layout!r}, {channels}")
    out = []
    for i in range(int(n)):
        rnd, k = divmod(i, len(NAMES))
        img = _fit(image(k), h, w, zoom=1.25 ** (rnd // 2))
        if rnd % 2:
            img = img[:, ::-1]
        out.append(img.mean(-1, keepdims=True) if channels == 1 else img)
    arr = np.stack(out).astype(np.float32)
    arr = arr.transpose(0, 3, 1, 2) if layout == "NCHW" else arr
    dt = np.dtype(dtype)
    return np.ascontiguousarray(arr / 255.0 if dt.kind == "f" else np.rint(arr)).astype(dt)
