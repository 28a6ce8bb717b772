"""Profile every cut of a model file: head and tail time measured here, crossing bytes and
fidelity per codec, the best codec under an accuracy floor, MACs, and the same times
scaled to a target device (``edgeinf.split.devices``).

Every number in the result says where it comes from: ``measured`` (timed here, median and
p90 over ``repeat`` runs after ``warmup``; this host's float64 GFLOPS too), ``estimated``
(MACs/FLOPs counted from shapes) or ``scaled`` (a measured time times host GFLOPS / device
GFLOPS). A cut's ``best_codec`` is the fewest bytes among codecs whose fidelity to the
unsplit model (``edgeinf.profiling``'s metric) reaches ``accuracy_floor``: never bytes alone.
For a package's plans (what the controller reads) see :func:`edgeinf.profiling.profile_package`.
"""
from __future__ import annotations

import logging
import time
from typing import Dict, Iterable, List, Optional

import numpy as np

from .flops import cut_macs
from .graph import CutInfo
from .model import SplitModel

log = logging.getLogger("edgeinf")

FIDELITY_SAMPLES = 4  # photographs (or seeded inputs) each codec's fidelity is measured on


def _time(session, feeds, warmup: int, repeat: int) -> dict:
    for _ in range(warmup):
        session.run(feeds)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        session.run(feeds)
        ts.append(time.perf_counter() - t0)
    a = np.asarray(ts) * 1e3
    return {"median_ms": round(float(np.median(a)), 4), "p90_ms": round(float(np.percentile(a, 90)), 4)}


def codec_sizes(arrays: Iterable[np.ndarray], codecs: Optional[List[str]] = None) -> Dict[str, int]:
    """Bytes on the wire for each codec of ``edgeinf.codec`` (``{}`` when it is not built).

    Non-float tensors (shape computations) are counted raw under every codec.
    """
    try:
        from .. import codec
    except ImportError:  # NOTE: the codec module is optional here; raw bytes are still reported
        return {}
    arrays = list(arrays)
    out = {}
    for name in codecs or codec.names():
        total = 0
        for a in arrays:
            total += len(codec.encode(np.ascontiguousarray(a), name)) if a.dtype in (np.float32, np.float16) \
                else a.nbytes
        out[name] = total
    return out


def codec_fidelity(tail, mids: List[Dict[str, np.ndarray]], refs: List[Dict[str, np.ndarray]], codecs: List[str],
                   axes: Dict[str, Optional[int]], metric: str) -> Dict[str, float]:
    """Fidelity of ``tail``'s outputs when ``mids`` cross under each codec (ints cross raw)."""
    from .. import codec
    from ..profiling import fidelity as M
    from ..profiling.crossing import TensorCodec

    out = {}
    for name in codecs:
        if not codec.known(name):
            continue
        c = TensorCodec(name, axes)
        out[name] = round(M.fidelity(metric, refs, [tail.run(c.decode(c.encode(m))) for m in mids]), 6)
    return out


def best_codec(sizes: Dict[str, int], fidelity: Dict[str, float], floor: float) -> str:
    """Fewest bytes among codecs with fidelity >= ``floor`` (``raw`` if none: it is exact)."""
    ok = [n for n in sizes if fidelity.get(n, 0.0) >= floor]
    return min(ok, key=lambda n: (sizes[n], n)) if ok else "raw"


def _host() -> dict:
    from ..profiling.host import measure_host

    h = measure_host()
    return {"name": "this host (measured)", **h, "cpu_gflops": h["gflops_fp64"]}


def profile_model(m: SplitModel, cuts: Optional[List[CutInfo]] = None, device: Optional[str] = None,
                  repeat: int = 10, warmup: int = 3, codecs: Optional[List[str]] = None,
                  threads: Optional[int] = None, progress: bool = False, accuracy_floor: float = 0.99) -> dict:
    """Time head and tail of every cut of ``m`` here; optionally scale to ``device``.

    Parameters
    ----------
    m : SplitModel
        From :func:`edgeinf.split.open_model`.
    cuts : list of CutInfo, optional
        Default: every cut.
    device : str, optional
        A device profile name (``devices/<name>.toml``) to scale measured times to.
    repeat, warmup : int
        Timed runs (median and p90 reported) after ``warmup`` untimed ones.
    accuracy_floor : float
        Fidelity a codec needs to be a cut's ``best_codec``.

    Returns
    -------
    dict
        JSON-ready: ``model``, ``host``, ``device``, ``full`` and one entry per cut in ``cuts``.
    """
    from ..backends import load
    from ..profiling import fidelity as M
    from .devices import load_device
    from .inputs import sample_inputs
    from .verify import _progress

    cuts = list(m.cuts if cuts is None else cuts)
    host = _host()
    target = load_device(device) if device else None
    slowdown = host["gflops_fp64"] / target.cpu_gflops if target else None
    specs, shapes = m.input_specs(), m.concrete_shapes()
    samples = [sample_inputs(specs, shapes, index=i) for i in range(FIDELITY_SAMPLES)]
    feeds = samples[0]
    full = load(m.data if m.format == "tflite" else m.path, threads=threads)
    refs = [full.run(f) for f in samples]
    metric = M.metric_for(refs[0])
    report = {"model": str(m.path), "format": m.format, "input_shapes": m.input_shapes,
              "repeat": repeat, "warmup": warmup, "host": host,
              "device": target.to_dict() if target else None,
              "slowdown": round(slowdown, 4) if target else None,
              "metric": metric, "accuracy_floor": accuracy_floor,
              "full": _time(full, feeds, warmup, repeat),
              "sources": {"measured": "head, tail, full: timed here (ms); bytes, codec_bytes, codec_fidelity: "
                                      "encoded and run here; host.gflops_fp64: a float64 matmul here",
                          "estimated": "head_macs, tail_macs, head_flops, tail_flops: counted from shapes",
                          "scaled": "device_head_ms, device_tail_ms: measured ms x slowdown "
                                    "(host gflops_fp64 measured / device cpu.gflops published)"},
              "cuts": []}
    macs = cut_macs(m)
    for cut in _progress(cuts, progress, f"profile {m.name}"):
        head_b, tail_b = m.extract(cut)
        head, tail = load(head_b, threads=threads), load(tail_b, threads=threads)
        mids = [head.run(f) for f in samples]
        mid = mids[0]
        sizes = codec_sizes(mid.values(), codecs)
        axes = {k: -1 if m.format == "tflite" else 1 if a.ndim == 4 else None for k, a in mid.items()}
        fid = codec_fidelity(tail, mids, refs, list(sizes), axes, metric)
        row = {"id": cut.id, "name": cut.name, "position": cut.position, "tensors": list(cut.tensors),
               "bytes": int(sum(a.nbytes for a in mid.values())),
               "codec_bytes": sizes, "codec_fidelity": fid, "best_codec": best_codec(sizes, fid, accuracy_floor),
               "head": _time(head, feeds, warmup, repeat), "tail": _time(tail, mid, warmup, repeat),
               **macs.get(cut.id, {})}
        if target:
            row["device_head_ms"] = round(row["head"]["median_ms"] * slowdown, 4)
            row["device_tail_ms"] = round(row["tail"]["median_ms"] * slowdown, 4)
        report["cuts"].append(row)
    return report
