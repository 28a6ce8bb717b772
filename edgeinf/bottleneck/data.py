"""Label-free training frames: real photographs shipped by packages, heavily augmented.

Training draws from the photographs scikit-image and scikit-learn ship (:data:`TRAIN`);
the held-out set is edgeinf's six bundled photographs (:data:`edgeinf.photos.NAMES`), which
are never trained on. They are also what ``edgeinf profile``, the demo and the controller
benchmarks feed the model, so every fidelity those report for a bottleneck plan is a
held-out figure. The same scikit-image files are excluded from training by name.

Augmentation (one affine warp per frame, then photometric changes), all from one seeded
``numpy`` generator: crops of 12-100% of the short side, aspect 3:4-4:3, rotation up to
±30°, horizontal flips, brightness/contrast/saturation and per-channel gains, grey frames,
Gaussian blur (σ up to 2 px) and noise (σ up to 0.05).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import List, Tuple

import numpy as np

from .. import photos
from ..errors import ConfigError

# NOTE: skimage's names for the six bundled photographs (held out): never in TRAIN
HELD_OUT_SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "ihc", "page")
TRAIN = ("camera", "coins", "moon", "text", "brick", "grass", "gravel", "clock_motion", "hubble_deep_field",
         "motorcycle_left", "motorcycle_right", "retina", "sklearn:china", "sklearn:flower")
MAX_FRAMES = 20_000  # bounds the allocation: 224x224x3 float32 is 0.6 MB a frame


@lru_cache(maxsize=None)
def source(name: str) -> np.ndarray:
    """One training photograph, ``(H, W, 3)`` uint8 RGB (read-only)."""
    if name in HELD_OUT_SOURCES:
        raise ConfigError(f"{name!r} is a held-out photograph; it must not be trained on")
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(name.split(":", 1)[1] + ".jpg")
    else:  # NOTE: the files themselves: skimage.data's loaders may try to fetch what is missing
        import cv2
        import skimage.data

        d = Path(skimage.data.__file__).parent
        path = next((p for p in (d / f"{name}.png", d / f"{name}.jpg") if p.is_file()), None)
        img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path is not None else None
        if img is None:
            raise ConfigError(f"scikit-image sample {name!r} not found in {d}; reinstall scikit-image")
        img = img[..., ::-1]
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3])
    if img.dtype != np.uint8:  # some skimage samples are bool or float
        img = (img.astype(np.float32) / max(float(img.max()), 1e-6) * 255).astype(np.uint8)
    img.flags.writeable = False
    return img


def _warp(img: np.ndarray, size: int, rng: np.random.Generator, scale: Tuple[float, float],
          max_deg: float) -> np.ndarray:
    """A random crop, rotated and flipped, resized to ``size`` in one affine warp."""
    import cv2

    h, w = img.shape[:2]
    side = min(h, w) * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = side * np.sqrt(aspect), side / np.sqrt(aspect)
    cx, cy = rng.uniform(cw / 2, max(w - cw / 2, cw / 2)), rng.uniform(ch / 2, max(h - ch / 2, ch / 2))
    a = np.deg2rad(rng.uniform(-max_deg, max_deg))
    sx, sy = size / cw, size / ch
    flip = -1.0 if rng.random() < 0.5 else 1.0
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = np.diag([sx * flip, sy]) @ rot
    t = np.array([size / 2, size / 2]) - m @ np.array([cx, cy])
    return cv2.warpAffine(img, np.hstack([m, t[:, None]]).astype(np.float32), (size, size),
                          flags=cv2.INTER_AREA if min(sx, sy) < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _photometric(x: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    import cv2

    x = x.astype(np.float32) / 255.0
    if rng.random() < 0.15 * strength:
        x = np.repeat(x.mean(-1, keepdims=True), 3, axis=2)
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * rng.uniform(1 - 0.6 * strength, 1 + 0.6 * strength)  # saturation
    x = x * rng.uniform(1 - 0.15 * strength, 1 + 0.15 * strength, size=3)  # colour cast
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - 0.5 * strength, 1 + 0.4 * strength) + mean  # contrast
    x = x + rng.uniform(-0.25, 0.25) * strength  # brightness
    if rng.random() < 0.3 * strength:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 2.0))
    if rng.random() < 0.5 * strength:
        x = x + rng.normal(0, rng.uniform(0.005, 0.05), x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def train_frames(n: int, seed: int, size: int = 224) -> np.ndarray:
    """``n`` augmented training frames ``(n, size, size, 3)`` float32 in [0, 1], seeded."""
    if not 1 <= n <= MAX_FRAMES:
        raise ConfigError(f"train_frames: n must be in 1..{MAX_FRAMES}; got {n}")
    rng = np.random.default_rng([seed, 15])
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        img = source(TRAIN[int(rng.integers(len(TRAIN)))])
        out[i] = _photometric(_warp(img, size, rng, (0.12, 1.0), 30.0), rng, 1.0)
    return out


def held_out(size: int = 224, views: int = 6, seed: int = 0) -> np.ndarray:
    """The fixed held-out set: the six bundled photographs as ``photos.load`` gives them (the
    frames the demo and profiles use), their mirror images, then ``views`` milder random views
    of each (crops of 40-100%, ±15°, half-strength photometric changes). ``(12 + 6*views, ...)``."""
    rng = np.random.default_rng([seed, 1515])
    base = photos.load(12, size)
    extra: List[np.ndarray] = []
    for _ in range(views):
        for k in range(len(photos.NAMES)):
            extra.append(_photometric(_warp(photos.image(k), size, rng, (0.4, 1.0), 15.0), rng, 0.5))
    return np.concatenate([base, np.stack(extra)]) if extra else base
