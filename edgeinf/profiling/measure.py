"""Measure every plan of a package on sample inputs: :func:`profile_package`.

Plans: local (the full model), each given local variant, split at every cut x each tensor
codec, full offload with lossless and fp16 codecs, and JPEG/WebP for NHWC RGB image
models. Device-side times are the fastest of ``repeat`` runs on this host, UNPACED (a
slower target is emulated later: :func:`~edgeinf.profiling.pace_for`); server-side times
the median. Float tensors go through the codec; integer and bool tensors (shapes,
indices, masks) always cross raw, and the profile lists them under ``lossless``.
"""
from __future__ import annotations

import logging
import time
from functools import partial
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError
from ..plan import LOCAL, Plan
from . import fidelity as F
from .crossing import TensorCodec, codecs_for
from .profile import PlanProfile, Profile, save_profile
from .samples import check_inputs, generated, shapes_of, unstack

log = logging.getLogger("edgeinf")

HEADER_BYTES = 400  # protocol header + JSON metadata per request (measured: 300-450)
TENSOR_CODECS = ("raw", "raw+lz4", "fp16+lz4", "int8+lz4", "int8-pc+lz4", "int4-pc+lz4")
OFFLOAD_CODECS = ("raw+lz4", "fp16+lz4")
IMAGE_CODECS = ("jpeg90", "jpeg75", "webp75")
Feeds = Dict[str, np.ndarray]


def _best_ms(fn, repeat: int) -> float:
    return min(_times(fn, repeat))


def _median_ms(fn, repeat: int) -> float:
    return float(np.median(_times(fn, repeat)))


def _times(fn, repeat: int) -> List[float]:
    fn()  # warm: first runs allocate
    out = []
    for _ in range(max(repeat, 1)):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def _axes(pkg, cut_id: str, tensors: Feeds) -> Dict[str, Optional[int]]:
    """Channel axis per crossing tensor: the split engine's record, else the format's default."""
    getter = getattr(pkg.cut(cut_id), "channel_axes", None)
    recorded = getter() if callable(getter) else None
    if recorded:
        return dict(recorded)
    fmt = pkg.model.format
    return {k: (-1 if fmt == "tflite" else 1 if a.ndim == 4 else None) for k, a in tensors.items()}


class _Run:
    """State shared by the plan measurements of one profile."""

    def __init__(self, pkg, samples: List[Feeds], repeat: int, threads, floor: float):
        self.pkg, self.samples, self.repeat, self.threads, self.floor = pkg, samples, repeat, threads, floor
        full = pkg.session("full", threads=threads)
        self.full = full
        self.refs = [full.run(f) for f in samples]
        self.metric = F.metric_for(self.refs[0])
        self.down = sum(np.asarray(v).nbytes for v in self.refs[0].values()) + HEADER_BYTES
        self.tables: Dict[str, dict] = {}

    def local(self) -> PlanProfile:
        return PlanProfile(LOCAL, _best_ms(lambda: self.full.run(self.samples[0]), self.repeat))

    def variant(self, plan: Plan, fn: Callable[[Feeds], Feeds]) -> PlanProfile:
        ms = _best_ms(lambda: fn(self.samples[0]), self.repeat)
        acc = F.fidelity(self.metric, self.refs, [fn(f) for f in self.samples])
        return PlanProfile(plan, ms, accuracy=acc)

    def crossing(self, key: str, make_plan, mids: List[Feeds], run_rest, device_ms: float,
                 codecs: Sequence[str], axes) -> List[PlanProfile]:
        """Plans for one crossing point (a cut, or the inputs for offload), one per codec."""
        rest_ms = _median_ms(lambda: run_rest(mids[0]), self.repeat)
        table = {"codecs": {}, "axes": {k: v for k, v in axes.items() if v is not None}}
        out = []
        for name in codecs_for(mids[0], codecs):
            c = TensorCodec(name, axes)
            encoded = [c.encode(m) for m in mids]
            enc_ms = _best_ms(partial(c.encode, mids[0]), self.repeat) if name != "raw" else 0.0
            dec_ms = _median_ms(partial(c.decode, encoded[0]), self.repeat) if name != "raw" else 0.0
            acc = F.fidelity(self.metric, self.refs, [run_rest(c.decode(e)) for e in encoded])
            nbytes = int(np.mean([c.nbytes(e) for e in encoded]))
            table["codecs"][name] = {"bytes": nbytes, "fidelity": round(acc, 6), "encode_ms": round(enc_ms, 4),
                                     "decode_ms": round(dec_ms, 4)}
            out.append(PlanProfile(make_plan(name), device_ms, enc_ms, nbytes + HEADER_BYTES, dec_ms + rest_ms,
                                   self.down, acc, tuple(c.lossless(mids[0]))))
        ok = {n: v for n, v in table["codecs"].items() if v["fidelity"] >= self.floor}
        # NOTE: never bytes alone: a codec under the floor is never "best" (raw always qualifies)
        table["best"] = min(ok, key=lambda n: (ok[n]["bytes"], n)) if ok else "raw"
        table["lossless"] = list(out[0].lossless) if out else []
        self.tables[key] = table
        return out

    def split(self, cut_id: str, codecs: Sequence[str]) -> List[PlanProfile]:
        head = self.pkg.session("head", cut_id, threads=self.threads)
        tail = self.pkg.session("tail", cut_id, threads=self.threads)
        mids = [head.run(f) for f in self.samples]
        head_ms = _best_ms(lambda: head.run(self.samples[0]), self.repeat)
        return self.crossing(cut_id, lambda c: Plan("split", cut=cut_id, codec=c), mids, tail.run, head_ms,
                             codecs, _axes(self.pkg, cut_id, mids[0]))

    def offload(self, codecs: Sequence[str]) -> List[PlanProfile]:
        from ..split.inputs import image_layout

        axes = {s.name: {"NCHW": 1, "NHWC": -1}.get(image_layout(s.concrete_shape(1), s.dtype))
                for s in self.pkg.inputs}
        return self.crossing("offload", lambda c: Plan("offload", codec=c), self.samples, self.full.run, 0.0,
                             codecs, axes)


def _rgb_nhwc(specs) -> bool:
    from ..split.inputs import image_layout

    return bool(specs) and all(image_layout(s.concrete_shape(1), s.dtype) == "NHWC" and s.concrete_shape(1)[3] == 3
                               for s in specs)


def _inputs(pkg, inputs, n: int) -> Tuple[List[Feeds], dict]:
    if inputs is not None:
        stacked = check_inputs(inputs, pkg.inputs)
        per = {s.name: "user" for s in pkg.inputs}
        source = "user"
    else:
        stacked, per = generated(pkg.inputs, n, shapes_of(pkg))
        source = "photos" if "photos" in per.values() else "random"
    samples = unstack(stacked)
    return samples, {"source": source, "n": len(samples), "per_input": per}


def _model_macs(pkg) -> Optional[int]:
    """MACs of the full model (edgeinf's one MAC rule), or None when its shapes are not known."""
    from ..split import flops

    try:
        if pkg.model.format == "onnx":
            return flops.onnx_macs(pkg.path(pkg.model))
        from ..split.model import SplitModel

        return sum(c["macs"] for c in flops.node_costs(SplitModel(pkg.path(pkg.model))))
    except Exception:  # noqa: BLE001 - a count is informative only; never fail a profile over it
        log.info("could not count the MACs of %s", pkg.name, exc_info=True)
        return None


def profile_package(pkg, inputs: Optional[Mapping[str, np.ndarray]] = None, *, device: Optional[str] = None,
                    codecs: Optional[Sequence[str]] = None, accuracy_floor: float = 0.99, repeat: int = 9,
                    threads: Optional[int] = 1, local_variants: Optional[Mapping[Plan, Callable]] = None,
                    progress: bool = False, cuts: Optional[Sequence[str]] = None, n_samples: int = 8) -> Profile:
    """Measure every plan of ``pkg`` on this host, write ``pkg.root/profile.json``, return it.

    Parameters
    ----------
    pkg : Package or path
        The model package (``edgeinf split MODEL -o DIR``).
    inputs : dict, optional
        ``{input name: (N, *input shape) array}``: the user's samples. Default: the bundled
        photographs for image inputs, seeded values from the specs for the rest.
    device : str, optional
        A target device profile; recorded with its pace (see :func:`pace_for`). Times stay unpaced.
    codecs : list of str, optional
        Tensor codecs for split plans (default :data:`TENSOR_CODECS`, those this build has).
    accuracy_floor : float
        Fidelity a codec needs to be chosen (``best_codec``) or offered (``Profile.costs``).
    repeat : int
        Timed runs per measurement (device side: fastest; server side: median).
    threads : int, optional
        Engine threads; match the runtime's so both share the package's cached sessions.
    local_variants : dict, optional
        ``{Plan: callable(feeds) -> outputs}``: local executors measured like the full model.
    cuts : list of str, optional
        Only these cuts (default: every cut of the package).
    n_samples : int
        Generated samples when ``inputs`` is None.
    """
    from ..package import Package, open_package
    from .host import measure_host, pace_for

    pkg = pkg if isinstance(pkg, Package) else open_package(pkg)
    if not 0.0 <= accuracy_floor <= 1.0 or repeat < 1:
        raise ConfigError(f"accuracy_floor must be in [0, 1] and repeat >= 1; got {accuracy_floor}, {repeat}")
    cut_ids = [pkg.cut(c).id for c in cuts] if cuts is not None else sorted(pkg.cuts)
    samples, source = _inputs(pkg, inputs, n_samples)
    run = _Run(pkg, samples, repeat, threads, accuracy_floor)
    steps = [("local", None)] + [("variant", p) for p in (local_variants or {})] + [("offload", None)] \
        + [("split", c) for c in cut_ids]
    plans: List[PlanProfile] = []
    for kind, arg in _progress(steps, progress, f"profile {pkg.name}"):
        if kind == "local":
            plans.append(run.local())
        elif kind == "variant":
            plans.append(run.variant(arg, local_variants[arg]))
        elif kind == "offload":
            plans += run.offload(OFFLOAD_CODECS + (IMAGE_CODECS if _rgb_nhwc(pkg.inputs) else ()))
        else:
            plans += run.split(arg, codecs or TENSOR_CODECS)
    host = measure_host()
    macs = _model_macs(pkg)
    host = {**host, "model_macs": macs, "model_gflops": round(2 * macs / plans[0].device_ms / 1e6, 2)
            if macs and plans[0].device_ms > 0 else None, "model_threads": threads}
    prof = Profile(pkg.hash, pkg.model.sha256, run.metric, float(accuracy_floor), source, host, plans,
                   run.tables, threads, repeat, None, pkg.name)
    if device:
        pace, label = pace_for(prof, device)
        prof.device = {"name": device, "pace": round(pace, 4), "label": label}
    save_profile(pkg, prof)
    return prof


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="plan", leave=False)
