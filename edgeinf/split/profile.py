"""Profile every cut: head and tail time measured here, crossing bytes per codec, MACs,
and the same times scaled to a target device (``devices/*.toml``).

Every number in the result says where it comes from: ``measured`` (timed here, median and
p90 over ``repeat`` runs after ``warmup``), ``estimated`` (MACs/FLOPs counted from shapes)
or ``scaled`` (a measured time times the target's slowdown, see :mod:`.devices`).
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


def profile_model(m: SplitModel, cuts: Optional[List[CutInfo]] = None, device: Optional[str] = None,
                  repeat: int = 10, warmup: int = 3, codecs: Optional[List[str]] = None,
                  threads: Optional[int] = None, progress: bool = False) -> dict:
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

    Returns
    -------
    dict
        JSON-ready: ``model``, ``host``, ``device``, ``full`` and one entry per cut in ``cuts``.
    """
    from ..backends import load
    from .devices import HOST, load_device
    from .inputs import sample_inputs
    from .verify import _progress

    cuts = list(m.cuts if cuts is None else cuts)
    host = load_device(HOST)
    target = load_device(device) if device else None
    feeds = sample_inputs(m.input_specs(), m.concrete_shapes())
    full = load(m.data if m.format == "tflite" else m.path, threads=threads)
    report = {"model": str(m.path), "format": m.format, "input_shapes": m.input_shapes,
              "repeat": repeat, "warmup": warmup, "host": host.to_dict(),
              "device": target.to_dict() if target else None,
              "slowdown": round(target.slowdown_vs(host), 4) if target else None,
              "full": _time(full, feeds, warmup, repeat),
              "sources": {"measured": "head, tail, full: timed here (ms); bytes, codec_bytes: encoded here",
                          "estimated": "head_macs, tail_macs, head_flops, tail_flops: counted from shapes",
                          "scaled": "device_head_ms, device_tail_ms: measured ms x slowdown "
                                    "(host cpu.gflops / device cpu.gflops)"},
              "cuts": []}
    macs = cut_macs(m)
    for cut in _progress(cuts, progress, f"profile {m.name}"):
        head_b, tail_b = m.extract(cut)
        head, tail = load(head_b, threads=threads), load(tail_b, threads=threads)
        mid = head.run(feeds)
        row = {"id": cut.id, "name": cut.name, "position": cut.position, "tensors": list(cut.tensors),
               "bytes": int(sum(a.nbytes for a in mid.values())),
               "codec_bytes": codec_sizes(mid.values(), codecs),
               "head": _time(head, feeds, warmup, repeat), "tail": _time(tail, mid, warmup, repeat),
               **macs.get(cut.id, {})}
        if target:
            row["device_head_ms"] = round(target.scale_ms(row["head"]["median_ms"], host), 4)
            row["device_tail_ms"] = round(target.scale_ms(row["tail"]["median_ms"], host), 4)
        report["cuts"].append(row)
    return report
