"""Fused image preprocessing: a uint8 camera frame to model input in one native pass.

``preprocess(img, size)`` resizes (bilinear, OpenCV ``INTER_LINEAR`` geometry and
fixed-point weights: results agree with ``cv2.resize`` + numpy normalization within one
pixel level, 1/255 in [0, 1] units), optionally center-crops or letterboxes, normalizes
``(pixel * scale - mean) / std`` per channel, swaps R and B, and writes NCHW or NHWC,
float32 or saturated uint8/int8, each output element once, with the GIL released.

The input is ``(H, W, 3)`` uint8 in BGR or RGB order; row-strided views (crops of a
larger frame) are read in place, other layouts are copied first.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ._native import kernels
from .errors import InputError

__all__ = ["letterbox_geometry", "preprocess", "reference_preprocess"]

MODES = ("stretch", "crop", "letterbox")
LAYOUTS = ("NCHW", "NHWC")
OUT_DTYPES = (np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int8))
Floats = Union[float, Sequence[float]]


def _three(v: Floats, name: str) -> np.ndarray:
    a = np.broadcast_to(np.asarray(v, np.float64), (3,)) if np.ndim(v) == 0 else np.asarray(v, np.float64)
    if a.shape != (3,):
        raise InputError(f"{name} must be a number or 3 numbers, got {v!r}")
    return a


def center_crop(shape: Tuple[int, int], size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """(y0, x0, h, w) of the largest centred source window with the aspect of ``size``."""
    (sh, sw), (dh, dw) = shape, size
    if sw * dh > sh * dw:
        ch, cw = sh, max(1, min(sw, round(sh * dw / dh)))
    else:
        ch, cw = max(1, min(sh, round(sw * dh / dw))), sw
    return (sh - ch) // 2, (sw - cw) // 2, ch, cw


def letterbox_geometry(shape: Tuple[int, int], size: Tuple[int, int]) -> Tuple[float, int, int, int, int]:
    """(scale, top, left, h, w): where a letterboxed image of ``shape`` lands in ``size``.

    A point (y, x) of the source maps to (top + y * scale, left + x * scale).
    """
    (sh, sw), (dh, dw) = shape, size
    r = min(dh / sh, dw / sw)
    nh, nw = max(1, min(dh, round(sh * r))), max(1, min(dw, round(sw * r)))
    return r, (dh - nh) // 2, (dw - nw) // 2, nh, nw


def _check(img, size, layout, mode, out_dtype) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape:
        raise InputError(f"img must be a non-empty uint8 (H, W, 3) array, got {img.dtype} {img.shape}")
    if layout not in LAYOUTS:
        raise InputError(f"layout {layout!r} unknown; choose from {LAYOUTS}")
    if mode not in MODES:
        raise InputError(f"mode {mode!r} unknown; choose from {MODES}")
    if np.dtype(out_dtype) not in OUT_DTYPES:
        raise InputError(f"out_dtype {out_dtype!r} unsupported; choose float32, uint8 or int8")
    if len(size) != 2 or min(size) < 1:
        raise InputError(f"size must be (height, width) >= 1, got {size!r}")
    return img


def _affine(mean, std, scale, swap_rb, quant, out_dtype):
    """Per output channel (a, b) with out = pixel * a + b, in output units."""
    mean, std = _three(mean, "mean"), _three(std, "std")
    if np.any(std == 0):
        raise InputError("std must be non-zero")
    a, b = scale / std, -mean / std
    if np.dtype(out_dtype) != np.float32:
        qs, zp = quant if quant is not None else (1.0, 0)
        a, b = a / qs, b / qs + zp
    return a, b


def preprocess(img: np.ndarray, size: Tuple[int, int], layout: str = "NCHW", mean: Floats = 0.0,
               std: Floats = 1.0, scale: float = 1 / 255, swap_rb: bool = False,
               mode: str = "stretch", pad_value: Floats = 0.0, out_dtype=np.float32,
               quant: Optional[Tuple[float, int]] = None, out: Optional[np.ndarray] = None,
               isa: str = "") -> np.ndarray:
    """Resize, crop/letterbox, normalize and lay out an image in one native pass.

    Parameters
    ----------
    img : np.ndarray
        ``(H, W, 3)`` uint8, any row stride.
    size : (int, int)
        Output (height, width).
    layout : {"NCHW", "NHWC"}
        Output ``(1, 3, h, w)`` or ``(1, h, w, 3)``.
    mean, std : float or 3 floats
        Per output channel (after ``swap_rb``), in units of ``pixel * scale``.
    scale : float
        Pixel scale before normalization (1/255: pixels in [0, 1]).
    swap_rb : bool
        Output channel c reads input channel 2 - c (BGR <-> RGB).
    mode : {"stretch", "crop", "letterbox"}
        Stretch to size; center-crop the source to the target aspect first; or keep the
        aspect and pad (see :func:`letterbox_geometry`) with ``pad_value`` (pixel units).
    out_dtype : float32, uint8 or int8
        Integer outputs are ``round(value / quant[0] + quant[1])``, saturated.
    quant : (float, int), optional
        Output quantization (scale, zero point); default (1, 0).
    out : np.ndarray, optional
        C-contiguous array of the output shape and dtype to write into.
    isa : str, optional
        Kernel path (``"generic"``, ``"sse4.1"``, ``"avx2"``, ``"neon"``); default: the
        best this CPU runs. For tests and benchmarks.
    """
    img = _check(img, size, layout, mode, out_dtype)
    if img.strides[2] != 1 or img.strides[1] != 3 or img.strides[0] < 3 * img.shape[1]:
        img = np.ascontiguousarray(img)  # NOTE: only row strides are read in place
    (dh, dw), nchw = size, layout == "NCHW"
    roi = (0, 0, dh, dw)
    if mode == "crop":
        y0, x0, ch, cw = center_crop(img.shape[:2], size)
        img = img[y0:y0 + ch, x0:x0 + cw]
    elif mode == "letterbox":
        roi = letterbox_geometry(img.shape[:2], size)[1:]
    a, b = _affine(mean, std, scale, swap_rb, quant, out_dtype)
    pad = _three(pad_value, "pad_value") * a + b
    if np.dtype(out_dtype) != np.float32:
        lo, hi = (0, 255) if np.dtype(out_dtype) == np.uint8 else (-128, 127)
        pad = np.clip(np.rint(pad), lo, hi)
    shape = (1, 3, dh, dw) if nchw else (1, dh, dw, 3)
    if out is None:
        out = np.empty(shape, out_dtype)
    elif out.shape != shape or out.dtype != np.dtype(out_dtype):
        raise InputError(f"out must have shape {shape} and dtype {np.dtype(out_dtype)}, got {out.shape} {out.dtype}")
    kernels.preprocess(img, out, roi, nchw, bool(swap_rb), a.tolist(), b.tolist(), pad.tolist(), isa)
    return out


def reference_preprocess(img: np.ndarray, size: Tuple[int, int], layout: str = "NCHW", mean: Floats = 0.0,
                         std: Floats = 1.0, scale: float = 1 / 255, swap_rb: bool = False,
                         mode: str = "stretch", pad_value: Floats = 0.0, out_dtype=np.float32,
                         quant: Optional[Tuple[float, int]] = None) -> np.ndarray:
    """The same pipeline written as a user would: ``cv2.resize`` then numpy."""
    import cv2

    img = _check(img, size, layout, mode, out_dtype)
    (dh, dw) = size
    if mode == "crop":
        y0, x0, ch, cw = center_crop(img.shape[:2], size)
        img = img[y0:y0 + ch, x0:x0 + cw]
    a, b = _affine(mean, std, scale, swap_rb, quant, out_dtype)
    canvas = np.empty((dh, dw, 3), np.float32)
    canvas[:] = (_three(pad_value, "pad_value") * a + b).astype(np.float32)
    top, left, nh, nw = (0, 0, dh, dw) if mode != "letterbox" else letterbox_geometry(img.shape[:2], size)[1:]
    r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if swap_rb:
        r = r[..., ::-1]
    canvas[top:top + nh, left:left + nw] = r.astype(np.float32) * a.astype(np.float32) + b.astype(np.float32)
    if np.dtype(out_dtype) != np.float32:
        info = np.iinfo(out_dtype)
        canvas = np.clip(np.rint(canvas), info.min, info.max).astype(out_dtype)
    out = canvas.transpose(2, 0, 1) if layout == "NCHW" else canvas
    return np.ascontiguousarray(out[None])
