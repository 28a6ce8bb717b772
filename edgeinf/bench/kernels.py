"""``edgeinf bench kernels``: native kernels against what a user would otherwise write.

Each kernel is timed against its baseline in the same process, on one core (this process
pinned to one CPU, ``cv2.setNumThreads(1)``), median of many interleaved repeats:

- codecs: an idiomatic numpy quantize/pack (and unpack/dequantize) of a 1x96x56x56
  float32 activation (1.2 MB), per tensor; ours is the public ``codec.encode``/``decode``;
- preprocessing: ``cv2.resize`` (INTER_LINEAR) + numpy normalize + transpose of a real
  photograph (the bundled astronaut, upscaled once) 1920x1080 -> 224x224 and 640x480 -> 256x256;
- confidence: numpy float32 softmax, top-2 and entropy of 64 x 1000 logits;
- a real hand_landmark_full activation (see :mod:`.lossless`): per-channel along the last
  axis (NHWC) against the same tensor as NCHW, and the lossless stages against blosc2 and
  lz4/zstd on the raw bytes.

``_meta`` names the ISA path that ran (``--isa`` picks another) and the CPU model, so
figures from different machines can be told apart.

``gbps`` is GB/s of the kernel's input (for decoders: of the float32 tensor they produce);
``copy_fraction`` is ``gbps`` over ``np.copyto`` of that same buffer.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

TARGETS = {"encode_int8": 3, "decode_int8": 3, "encode_int4": 5, "decode_int4": 5, "encode_int2": 5,
           "decode_int2": 5, "preprocess_1080p_224": 3, "preprocess_480p_256": 3}
COPY_TARGETS = {"encode_int8": 0.25}


def register(sub) -> None:
    p = sub.add_parser("kernels", help="native codec, preprocessing and confidence kernels vs numpy/OpenCV")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeat", type=int, default=200, help="timed repeats per kernel and baseline")
    p.add_argument("--isa", default="", help="kernel path to run (default: the best this CPU runs)")
    p.set_defaults(func=run)


def _median_pair(ours, base, repeat: int):
    """Interleave blocks of both so drift on a shared machine hits them alike."""
    to, tb = [], []
    for f in (ours, base):
        f()  # warm-up
    for _ in range(max(1, repeat // 20)):
        for f, acc in ((ours, to), (base, tb)):
            for _ in range(20):
                t0 = time.perf_counter()
                f()
                acc.append(time.perf_counter() - t0)
    return float(np.median(to)), float(np.median(tb))


def _copy_time(nbytes: int, repeat: int) -> float:
    a, b = np.ones(nbytes // 4, np.float32), np.empty(nbytes // 4, np.float32)
    return _median_pair(lambda: np.copyto(b, a), lambda: None, repeat)[0]


def _np_encode(x: np.ndarray, bits: int):
    qmax = (1 << bits) - 1
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / qmax or 1.0
    zp = round(-lo / scale)
    q = np.rint(x * np.float32(1 / scale))
    q += zp
    np.clip(q, 0, qmax, out=q)
    c = q.astype(np.uint8).reshape(-1)
    if bits == 4:
        c = c[0::2] | (c[1::2] << 4)
    elif bits == 2:
        c = c[0::4] | (c[1::4] << 2) | (c[2::4] << 4) | (c[3::4] << 6)
    return c.tobytes(), scale, zp


def _np_decode(payload: bytes, n: int, bits: int, scale: float, zp: int, shape):
    b = np.frombuffer(payload, np.uint8)
    if bits == 4:
        q = np.empty(2 * b.size, np.uint8)
        q[0::2], q[1::2] = b & 15, b >> 4
    elif bits == 2:
        q = np.empty(4 * b.size, np.uint8)
        for k in range(4):
            q[k::4] = (b >> (2 * k)) & 3
    else:
        q = b
    x = q[:n].astype(np.float32)
    x -= zp
    x *= np.float32(scale)
    return x.reshape(shape)


def _np_confidence(z: np.ndarray):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    ent = -(p * np.log(np.maximum(p, 1e-30))).sum(axis=1)
    return top2[:, 1], top2[:, 1] - top2[:, 0], ent


def _entry(t_ours, t_base, nbytes, t_copy, key):
    gbps = nbytes / t_ours / 1e9
    e = {"ratio": round(t_base / t_ours, 2), "gbps": round(gbps, 2),
         "copy_fraction": round(t_copy / t_ours, 3), "ms": round(t_ours * 1e3, 4),
         "baseline_ms": round(t_base * 1e3, 4)}
    if key in TARGETS:
        e["target_ratio"] = TARGETS[key]
    if key in COPY_TARGETS:
        e["target_copy_fraction"] = COPY_TARGETS[key]
    e["met"] = e["ratio"] >= TARGETS.get(key, 0) and e["copy_fraction"] >= COPY_TARGETS.get(key, 0)
    return e


def _codec_results(repeat: int) -> dict:
    from .. import codec

    x = np.random.default_rng(0).standard_normal((1, 96, 56, 56)).astype(np.float32)
    x = np.maximum(x, 0) - 0.1 * x  # activation-like: skewed, mostly small
    t_copy, res = _copy_time(x.nbytes, repeat), {}
    for bits in (8, 4, 2):
        name = f"int{bits}"
        buf = codec.encode(x, name)
        payload, scale, zp = _np_encode(x, bits)
        to, tb = _median_pair(lambda: codec.encode(x, name), lambda: _np_encode(x, bits), repeat)
        res[f"encode_{name}"] = _entry(to, tb, x.nbytes, t_copy, f"encode_{name}")
        to, tb = _median_pair(lambda: codec.decode(buf),
                              lambda: _np_decode(payload, x.size, bits, scale, zp, x.shape), repeat)
        res[f"decode_{name}"] = _entry(to, tb, x.nbytes, t_copy, f"decode_{name}")
    return res


def _frame(h: int, w: int) -> np.ndarray:
    import cv2

    from .. import photos

    return np.ascontiguousarray(cv2.resize(photos.image("astronaut"), (w, h), interpolation=cv2.INTER_CUBIC))


def _preprocess_results(repeat: int) -> dict:
    from ..preprocess import preprocess, reference_preprocess

    res = {}
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for key, (h, w), size in [("preprocess_1080p_224", (1080, 1920), (224, 224)),
                              ("preprocess_480p_256", (480, 640), (256, 256))]:
        img = _frame(h, w)
        out = np.empty((1, 3) + size, np.float32)
        to, tb = _median_pair(lambda: preprocess(img, size, mean=mean, std=std, swap_rb=True, out=out),
                              lambda: reference_preprocess(img, size, mean=mean, std=std, swap_rb=True), repeat)
        res[key] = _entry(to, tb, img.nbytes, _copy_time(img.nbytes, repeat), key)
    return res


def _confidence_results(repeat: int) -> dict:
    from ..confidence import confidence

    z = (np.random.default_rng(1).standard_normal((64, 1000)) * 3).astype(np.float32)
    to, tb = _median_pair(lambda: confidence(z), lambda: _np_confidence(z), repeat)
    return {"confidence": _entry(to, tb, z.nbytes, _copy_time(z.nbytes, repeat), "confidence")}


def cpu_model() -> str:
    """The CPU model with x86 family and model (``profiling.host.cpu_model``)."""
    from ..profiling.host import cpu_model as model

    return model()


def collect(repeat: int = 200, isa: str = "") -> dict:
    import cv2

    from .. import _native
    from . import lossless

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as targeted
    cv2.setNumThreads(1)
    prev = _native.kernels.set_default_isa(isa)
    try:
        res = {**_codec_results(repeat), **_preprocess_results(repeat), **_confidence_results(repeat)}
        real = lossless.results(_median_pair, repeat)
        info = _native.build_info()
    finally:
        _native.kernels.set_default_isa(prev)
    res["_real"] = real
    res["_meta"] = {"isa": info["isa"], "isas": info["isas"], "cpu": cpu_model(), "threads": 1,
                    "repeat": repeat, "tensor": "1x96x56x56 float32", "logits": "64x1000 float32",
                    "real_tensor": real.pop("_tensor")}
    return res


def _print_real(real: dict) -> None:
    for k, e in real.items():
        if k.startswith("nhwc"):
            print(f"{k:24s} {e['ms']:9.4f} {e['nchw_ms']:9.4f} {e['ratio_vs_nchw']:7.2f}  (base = same tensor as NCHW, axis=1)")
    print(f"\nlossless on the real activation: {'codec':28s} {'bytes':>8s} {'enc ms':>8s} {'dec ms':>8s}")
    for k, e in real["lossless"].items():
        vs = f"  vs {e['vs']}: {'met' if e['met'] else 'MISSED'}" if "vs" in e else ""
        print(f"{'':33s} {k:28s} {e['bytes']:8d} {e['encode_ms']:8.4f} {e['decode_ms']:8.4f}{vs}")


def run(args) -> int:
    from .. import _native
    from ..errors import ConfigError

    if args.repeat < 1:
        raise ConfigError(f"--repeat must be at least 1, got {args.repeat}")
    isas = _native.build_info()["isas"]
    if args.isa and args.isa not in isas:
        raise ConfigError(f"--isa {args.isa!r} does not run here; this CPU and build run: {', '.join(isas)}")
    res = collect(args.repeat, args.isa)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    m = res["_meta"]
    print(f"CPU {m['cpu']}; one core, ISA path {m['isa']} (runs here: {', '.join(m['isas'])}); "
          "ratio = baseline time / ours")
    print(f"{'kernel':24s} {'ours ms':>9s} {'base ms':>9s} {'ratio':>7s} {'GB/s':>7s} {'copy':>6s}  target")
    for k, e in res.items():
        if k.startswith("_"):
            continue
        tgt = f">= {e['target_ratio']}x" if "target_ratio" in e else ""
        if "target_copy_fraction" in e:
            tgt += f", copy >= {e['target_copy_fraction']}"
        mark = ("met" if e["met"] else "MISSED") if tgt else ""
        print(f"{k:24s} {e['ms']:9.4f} {e['baseline_ms']:9.4f} {e['ratio']:7.2f} {e['gbps']:7.2f} "
              f"{e['copy_fraction']:6.3f}  {tgt} {mark}")
    _print_real(res["_real"])
    return 0
