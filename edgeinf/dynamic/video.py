"""A deterministic synthetic hand video for branch-switching demos and tests.

Each frame is a 224x224 RGB crop of a real photograph (the bundled ``coffee``, moving
slowly) with a hand-like shape drawn over it by OpenCV: forearm, palm and five tapered,
jointed fingers in a skin tone, that moves, scales, rotates and curls its fingers. The clip cycles
through phases, so the small branch meets both easy and hard stretches:

====== ====================================================================
calm    slow drift, small rotation, steady light
fast    quick rotation and shake, scale changes, motion blur
dark    low light, sensor noise and a bar moving across the hand (occlusion)
====== ====================================================================

Everything is drawn from ``seed``: the same seed gives the same pixels. The photograph
is one of the bundled ones (:mod:`edgeinf.photos`).
"""
from __future__ import annotations

from typing import Iterator, List, Tuple

import cv2
import numpy as np

SIZE = 224
#: (phase, frames) in order; the clip is this schedule
SCHEDULE: List[Tuple[str, int]] = [("calm", 50), ("fast", 40), ("calm", 50), ("dark", 40), ("calm", 50)]
SKIN = np.array([230, 180, 160], np.float32)  # RGB


def _background() -> np.ndarray:
    from .. import photos

    img = photos.image("coffee")  # 400 x 600 RGB photograph (bundled)
    return cv2.resize(img, (600 * 2 // 3 * 2, 400 * 2 // 3 * 2)).astype(np.float32)


def _hand_points(cx, cy, scale, angle, curl) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Palm polygon and per-finger joint chains, in pixels."""
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    palm = np.array([[-0.45, 0.55], [0.45, 0.55], [0.55, -0.15], [0.3, -0.45], [-0.35, -0.45], [-0.55, -0.1]])
    bases = [(-0.55, 0.1, -1.1), (-0.32, -0.45, -0.3), (-0.05, -0.5, 0.0), (0.2, -0.47, 0.15), (0.42, -0.38, 0.35)]
    lengths = [0.32, 0.38, 0.42, 0.38, 0.3]
    fingers = []
    for (bx, by, a0), ln, c in zip(bases, lengths, curl):
        pts, p, a = [np.array([bx, by])], np.array([bx, by]), a0
        for _ in range(3):
            p = p + ln * np.array([np.sin(a), -np.cos(a)])
            pts.append(p)
            a += c  # curl bends each joint further
        fingers.append(np.array(pts))
    to_px = lambda q: (q * scale) @ rot.T + np.array([cx, cy])  # noqa: E731
    return to_px(palm), [to_px(f) for f in fingers]


def _draw_hand(img: np.ndarray, cx, cy, scale, angle, curl, light: float) -> None:
    """Forearm, palm (hull of the palm and finger bases) and tapered fingers, then softened."""
    palm, fingers = _hand_points(cx, cy, scale, angle, curl)
    color = tuple(float(v) for v in SKIN * light)
    crease = tuple(float(v) for v in SKIN * light * 0.8)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    # NOTE: the forearm matters: without one, hand_landmark_full scores the shape as "no hand"
    arm = np.array([[-0.4, 0.5], [0.4, 0.5], [0.45, 2.5], [-0.45, 2.5]]) * scale @ rot.T + [cx, cy]
    cv2.fillPoly(img, [arm.astype(np.int32)], color, cv2.LINE_AA)
    hull = cv2.convexHull(np.concatenate([palm] + [f[:1] for f in fingers]).astype(np.int32))
    cv2.fillPoly(img, [hull], color, cv2.LINE_AA)
    for i, f in enumerate(fingers):
        width = max(2, int(scale * 0.26 * (1.2 if i == 0 else 1.0)))
        for j, (a, b) in enumerate(zip(f[:-1], f[1:])):
            cv2.line(img, tuple(a.astype(int)), tuple(b.astype(int)), color, int(width * (1 - 0.12 * j)), cv2.LINE_AA)
        cv2.circle(img, tuple(f[-1].astype(int)), int(width * 0.375), color, -1, cv2.LINE_AA)
        for b in f[1:-1]:
            cv2.circle(img, tuple(b.astype(int)), 1, crease, -1, cv2.LINE_AA)
    img[:] = cv2.GaussianBlur(img, (3, 3), 0)  # no cartoon-sharp edges


def frames(seed: int = 0) -> Iterator[Tuple[np.ndarray, str]]:
    """Yield ``(frame, phase)``: frame is 1x224x224x3 float32 RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    bg = _background()
    t = 0
    pos, angle, scale = np.array([112.0, 120.0]), 0.0, 70.0
    for phase, n in SCHEDULE:
        for _ in range(n):
            t += 1
            fast = phase == "fast"
            pos = 0.9 * pos + 0.1 * np.array([112.0, 120.0]) + rng.normal(0, 9 if fast else 1.2, 2)
            angle = 0.85 * angle + rng.normal(0, 0.45 if fast else 0.03)
            scale = float(np.clip(scale + rng.normal(0, 6 if fast else 0.8), 55, 85))
            curl = 0.25 + 0.2 * np.sin(t / 9 + np.arange(5))
            ox, oy = int(100 + 60 * np.sin(t / 70)), int(80 + 40 * np.cos(t / 90))
            img = bg[oy:oy + SIZE, ox:ox + SIZE].copy()
            light = 0.45 if phase == "dark" else 1.0
            _draw_hand(img, pos[0], pos[1], scale, angle, curl, light)
            img *= light if phase == "dark" else 1.0
            if fast:
                k = int(rng.integers(5, 11))
                img = cv2.filter2D(img, -1, np.eye(k, dtype=np.float32) / k)  # motion blur
            if phase == "dark":
                y0 = int((t * 7) % (SIZE + 40)) - 40
                img[max(0, y0):max(0, y0 + 28)] *= 0.15  # a bar sweeping over the hand
                img += rng.normal(0, 18, img.shape)
            yield np.clip(img / 255.0, 0, 1).astype(np.float32)[None], phase


def clip(seed: int = 0) -> Tuple[np.ndarray, List[str]]:
    """The whole clip as an N x 224 x 224 x 3 array (N = sum of SCHEDULE) and phase names."""
    fs, ph = zip(*frames(seed))
    return np.concatenate(fs), list(ph)
