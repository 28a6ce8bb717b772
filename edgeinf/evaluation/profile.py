"""Measured per-plan costs and calibrated accuracy, on real photographs.

For a model package (full model + cuts) this measures, on this machine, every candidate
plan: local (the full model, and smaller local variants such as ``hand_landmark_lite``),
split at each cut with each available tensor codec, and full offload of the frame as
JPEG/WebP. Device-side times are multiplied by ``pace`` (the EMULATED target device:
``pace`` = how many times slower it is than this machine); server-side times are not.

The models have no labels here, so "accuracy" is AGREEMENT with the unsplit
full-precision model on the same photograph: for landmark models PCK@0.05 (the fraction
of keypoints within 5% of the image width, 11 px on 224 px, of the reference's), else the
fraction of output values within 5% of the reference output's range.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..plan import Plan
from .. import imagecodec
from ..controller.costmodel import PlanCost

HEADER_BYTES = 400  # protocol header + JSON metadata per request (measured: 300-450)
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "immunohistochemistry"]


def photos(size: int = 224, n: int = 8) -> List[np.ndarray]:
    """Real photographs (the bundled set, :mod:`edgeinf.photos`) as (1, size, size, 3) float32 in [0, 1]."""
    from .. import photos as _photos

    return [x[None] for x in _photos.load(n, size)]


def agreement(ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray], width: int = 224, tol: float = 0.05) -> float:
    """Agreement of ``got`` with the reference outputs ``ref``, 0..1.

    Landmark models (an output of 21 x 3 values, mediapipe's hand layout): PCK@``tol``, the
    fraction of the 21 keypoints within ``tol`` x the input width of the reference's. Other
    models: the fraction of output values within ``tol`` x the reference output's range.
    """
    for k, r in ref.items():
        if np.asarray(r).size == 63:
            a = np.asarray(r, np.float64).reshape(21, 3)[:, :2]
            b = np.asarray(got[k], np.float64).reshape(21, 3)[:, :2]
            return float(np.mean(np.linalg.norm(a - b, axis=1) <= tol * width))
    fr = []
    for k, r in ref.items():
        r, g = np.asarray(r, np.float64), np.asarray(got[k], np.float64)
        scale = max(float(np.ptp(r)), float(np.abs(r).max()), 1e-6)
        fr.append(float(np.mean(np.abs(r - g) <= tol * scale)))
    return float(np.mean(fr))


def _time(fn, repeat: int, best: bool = False) -> float:
    """Median ms of ``repeat`` runs; ``best=True`` gives the fastest run instead.

    On-device stages use the fastest run: the runtime paces them to pace x the fastest time
    it has seen (see ``EdgeRuntime``), so the cost model must predict the same quantity.
    """
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.min(ts) if best else np.median(ts)) * 1e3


def tensor_codecs() -> List[str]:
    """Tensor codecs for split plans available in this build (``edgeinf.codec`` if present)."""
    try:
        from .. import codec
    except ImportError:
        return ["raw"]
    names = set(codec.names())
    pick = [c for c in ("int8-pc+lz4", "int8-pc", "int8", "fp16") if c in names][:1]
    return pick + ["raw"] if pick else ["raw"]


def profile_plans(pkg, pace: float = 1.0, cuts: Optional[Sequence[str]] = None,
                  image_codecs: Sequence[str] = ("jpeg90", "jpeg75", "webp75"),
                  variants: Optional[Dict[str, object]] = None, repeat: int = 9, n_photos: int = 6,
                  threads: Optional[int] = 1) -> List[PlanCost]:
    """Measure every candidate plan of ``pkg``; see the module docstring.

    ``threads`` must match the runtime's, so both use the same cached sessions."""
    full = pkg.session("full", threads=threads)
    name = full.inputs[0].name
    xs = photos(full.inputs[0].shape[1], n_photos)
    refs = [full.run({name: x}) for x in xs]
    full_ms = _time(lambda: full.run({name: xs[0]}), repeat, best=True)
    down = sum(int(np.prod(s.shape)) * 4 for s in full.outputs) + HEADER_BYTES
    plans = [PlanCost(Plan("local"), full_ms * pace, accuracy=1.0)]
    for vname, model in (variants or {}).items():
        ms = _time(lambda: model.run({model.inputs[0].name: xs[0]}), repeat, best=True)
        acc = np.mean([agreement(r, model.run({model.inputs[0].name: x})) for r, x in zip(refs, xs)])
        plans.append(PlanCost(Plan("local", variant=vname), ms * pace, accuracy=float(acc)))
    for c in image_codecs:
        bufs = [imagecodec.encode(x, c) for x in xs]
        enc_ms = _time(lambda: imagecodec.encode(xs[0], c), repeat, best=True)
        srv_ms = _time(lambda: full.run({name: imagecodec.decode(bufs[0])}), repeat)
        acc = np.mean([agreement(r, full.run({name: imagecodec.decode(b)})) for r, b in zip(refs, bufs)])
        plans.append(PlanCost(Plan("offload", codec=c), 0.0, enc_ms * pace, int(np.mean([len(b) for b in bufs])) + HEADER_BYTES,
                              srv_ms, float(acc), down))
    for cut_id in (cuts if cuts is not None else sorted(pkg.cuts)):
        plans += _split_plans(pkg, cut_id, xs, refs, name, pace, repeat, down, threads)
    return plans


def _split_plans(pkg, cut_id, xs, refs, name, pace, repeat, down, threads) -> List[PlanCost]:
    head, tail = pkg.session("head", cut_id, threads=threads), pkg.session("tail", cut_id)
    mids = [head.run({name: x}) for x in xs]
    head_ms = _time(lambda: head.run({name: xs[0]}), repeat, best=True)
    out = []
    for c in tensor_codecs():
        if c == "raw":
            enc = dec = lambda v: v  # noqa: E731
        else:
            from .. import codec as _codec

            enc = lambda v, c=c: {k: _codec.encode(np.ascontiguousarray(a), c) for k, a in v.items()}  # noqa: E731
            dec = lambda v: {k: _codec.decode(b) for k, b in v.items()}  # noqa: E731
        encoded = [enc(m) for m in mids]
        nbytes = int(np.mean([sum(memoryview(b).nbytes for b in e.values()) for e in encoded])) + HEADER_BYTES
        enc_ms = _time(lambda: enc(mids[0]), repeat, best=True) if c != "raw" else 0.0
        srv_ms = _time(lambda: tail.run(dec(encoded[0])), repeat)
        acc = np.mean([agreement(r, tail.run(dec(e))) for r, e in zip(refs, encoded)])
        out.append(PlanCost(Plan("split", cut=cut_id, codec=c), head_ms * pace, enc_ms * pace, nbytes, srv_ms,
                            float(acc), down))
    return out
