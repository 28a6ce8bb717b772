"""Harder digits: scikit-learn's ``load_digits`` rendered into cluttered 32x32 images.

The 8x8 originals are nearly solved by any CNN, which would leave nothing for early exits
to save or lose. Each sample here gets a *difficulty* ``d`` drawn uniformly from [0, 1],
and ``d`` scales every corruption, so a test set holds easy and hard inputs side by side:

- upscaled (bicubic) to 14-22 px, rotated by up to +-(10 + 35 d) degrees, shifted;
- contrast down to 0.35 of full scale, a grey background up to 0.3;
- clutter: up to ``4 d`` random strokes and, for ``d > 0.5``, a fragment of another digit
  of the same split pasted nearby;
- Gaussian noise of standard deviation ``0.03 + 0.17 d``.

Splits are made over the 1,797 *source* digits (60/20/20: train, calib, test), so a digit
seen in training never appears, however transformed, in calibration or evaluation.
Rendering is deterministic from a seed. Needs scikit-learn (the ``train``/``test`` extras).
"""
from __future__ import annotations

from typing import Dict, Tuple

import cv2
import numpy as np

SIZE = 32
SPLITS = {"train": 0.6, "calib": 0.2, "test": 0.2}


def sources() -> Tuple[np.ndarray, np.ndarray]:
    """The 1,797 original 8x8 digits as float32 in [0, 1], and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        from ..errors import ConfigError
        raise ConfigError('the digits data needs scikit-learn: pip install "edgeinf[train]"') from None
    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def split_indices(n: int, seed: int) -> Dict[str, np.ndarray]:
    """Disjoint index sets over the source digits, by :data:`SPLITS` fractions."""
    perm = np.random.default_rng(seed).permutation(n)
    a = int(n * SPLITS["train"])
    b = a + int(n * SPLITS["calib"])
    return {"train": perm[:a], "calib": perm[a:b], "test": perm[b:]}


def _place(img8: np.ndarray, px: int, angle: float, shift: np.ndarray) -> np.ndarray:
    """The digit upscaled to ``px`` pixels, rotated and shifted, on a 32x32 canvas."""
    up = cv2.resize(img8, (px, px), interpolation=cv2.INTER_CUBIC)
    canvas = np.zeros((SIZE, SIZE), np.float32)
    o = (SIZE - px) // 2
    canvas[o:o + px, o:o + px] = np.clip(up, 0, 1)
    m = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), angle, 1.0)
    m[:, 2] += shift
    return cv2.warpAffine(canvas, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR)


def _clutter(rng: np.random.Generator, d: float, pool: np.ndarray) -> np.ndarray:
    out = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(rng.poisson(4 * d)):
        p1, p2 = rng.integers(0, SIZE, 2), rng.integers(0, SIZE, 2)
        cv2.line(out, tuple(int(v) for v in p1), tuple(int(v) for v in p2),
                 float(rng.uniform(0.3, 0.9)), int(rng.integers(1, 3)))
    if d > 0.5:
        # a fragment of another digit: the hardest distractor, since it looks like signal
        other = pool[rng.integers(len(pool))]
        frag = _place(other, int(rng.integers(14, 20)), rng.uniform(-30, 30), rng.uniform(-14, 14, 2))
        out = np.maximum(out, frag * rng.uniform(0.4, 0.8) * (rng.random((SIZE, SIZE)) < 0.7))
    return out


def render(images8: np.ndarray, seed, pool: np.ndarray = None) -> Tuple[np.ndarray, np.ndarray]:
    """Render each 8x8 digit once; returns ``(uint8 N x 32 x 32, difficulty N)``.

    ``pool`` supplies the clutter fragments (default: ``images8`` itself), so callers keep
    fragments inside the split.
    """
    rng = np.random.default_rng(seed)
    pool = images8 if pool is None else pool
    out = np.empty((len(images8), SIZE, SIZE), np.uint8)
    diff = rng.random(len(images8)).astype(np.float32)
    for i, (img, d) in enumerate(zip(images8, diff)):
        px = int(round(rng.uniform(14, 22) - 4 * d))
        angle = rng.uniform(-1, 1) * (10 + 35 * d)
        digit = _place(img, px, angle, rng.uniform(-1, 1, 2) * (1.5 + 4 * d))
        contrast = rng.uniform(1.0 - 0.65 * d, 1.0)
        x = rng.uniform(0, 0.3 * d) + contrast * digit
        x = np.maximum(x, _clutter(rng, d, pool))
        x = x + rng.normal(0, 0.03 + 0.17 * d, x.shape)
        out[i] = np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
    return out, diff


def make_split(name: str, seed: int, copies: int = 1):
    """``(x uint8 N x 32 x 32, y, difficulty)`` for split ``name``, ``copies`` renderings each."""
    if name not in SPLITS:
        from ..errors import ConfigError
        raise ConfigError(f"split must be one of {sorted(SPLITS)}; got {name!r}")
    imgs, labels = sources()
    idx = split_indices(len(imgs), seed)[name]
    xs, ys, ds = [], [], []
    for c in range(copies):
        x, d = render(imgs[idx], seed=[seed, list(SPLITS).index(name), c], pool=imgs[idx])
        xs.append(x), ys.append(labels[idx]), ds.append(d)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ds)


def to_input(x_uint8: np.ndarray) -> np.ndarray:
    """uint8 N x 32 x 32 -> the models' float32 N x 1 x 32 x 32 input in [0, 1]."""
    return (x_uint8.astype(np.float32) / 255.0)[:, None]
