"""Live evaluation of the adaptive runtime against baselines on a replayed trace.

The adaptive policy runs LIVE: an :class:`edgeinf.AdaptiveRuntime` over a real ``edgeinf
worker`` process, real ZeroMQ, every byte through the trace-driven proxy. The baselines
(always-local, always-offload, best static plan in hindsight, per-request oracle) are
computed EXACTLY from the same measured per-plan costs over the same trace segment and
request arrivals (:mod:`edgeinf.evaluation.replay`); with ``live_baselines`` always-local
and always-offload also run live, each over a fresh proxy at the same trace offset. The same
replay of the adaptive controller ("adaptive (replayed)") shows how far the live run is
from the model the baselines live in.

Works for any ONNX/TFLite model file or zoo name: its package and profile are built once
and cached (keyed by the file's hash); inputs are the user's samples (``inputs``: an npz
of N stacked samples per input), the bundled photographs for image models, or values
drawn from the input specs; the report says which.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..controller.loop import Controller
from ..controller.policy import Objective
from ..netem import Link, LinkProxy, Trace
from ..plan import LOCAL, remote_budget_ms
from . import replay as R
from .setup import DEFAULT_TRACE


@dataclass
class EvalConfig:
    trace: Path = DEFAULT_TRACE
    offset_s: float = 60.0
    duration_s: float = 30.0
    rate: float = 10.0
    model: str = "hand_landmark_full"
    device: str = "raspberry-pi-4"
    delay_ms: float = 10.0  # one-way, each direction (RTT 20 ms: an edge server nearby)
    deadline_ms: Optional[float] = None  # default 4 x the device's full-model time
    objective: str = "latency"
    accuracy_floor: float = 0.9
    outages: List[Tuple[float, float]] = field(default_factory=list)  # (start_s, dur_s) from stream start
    shapes: Optional[Dict[str, str]] = None  # fixes symbolic input dims of a model file
    inputs: Optional[Path] = None  # npz: one array per input, N samples stacked on axis 0
    live_baselines: bool = False
    max_cut_bytes: int = 130_000  # cuts crossing more than this raw never pay on these links


def baselines(link: Link, costs, arrivals, obj: Objective, local_ms: float, probe_bytes) -> dict:
    """Exact replays: local, offload, every static plan (best kept), oracle, adaptive."""
    allowed = [c for c in costs if c.accuracy >= obj.accuracy_floor]
    timeout = max(remote_budget_ms(obj.deadline_ms, local_ms), 1.0) if math.isfinite(obj.deadline_ms) else None
    run = lambda chooser, **kw: R.run(link, costs, arrivals, chooser, fallback=LOCAL, **kw)  # noqa: E731
    statics = {c.plan: run(R.static(c.plan, timeout)) for c in allowed}
    mean = lambda s: sum(x.latency_ms for x in s) / len(s)  # noqa: E731
    best = min(statics, key=lambda p: mean(statics[p]))
    offl = [c.plan for c in allowed if c.plan.kind == "offload"]
    offload = min(offl, key=lambda p: mean(statics[p])) if offl else best
    ctl = Controller(costs, obj)
    choose, feedback = R.adaptive(ctl)
    return {"local": (statics.get(LOCAL) or run(R.static(LOCAL)), "local"),
            "offload": (statics[offload], str(offload)),
            "best_static": (statics[best], str(best)),
            "oracle": (run(R.oracle([c.plan for c in allowed])), "per request"),
            "adaptive_replayed": (run(choose, feedback=feedback, probe_bytes=probe_bytes), f"{ctl.switches} switches")}


def _inputs(cfg: EvalConfig, pkg, n: int = 8) -> Tuple[List[Dict[str, np.ndarray]], str]:
    from .. import profiling

    if cfg.inputs is not None:
        stacked = profiling.load_inputs_npz(cfg.inputs, pkg.inputs)
        k = len(next(iter(stacked.values())))
        return [{name: a[i] for name, a in stacked.items()} for i in range(k)], f"user inputs {cfg.inputs} ({k})"
    from .setup import sample_set

    return sample_set(pkg, n)


def _profile(cfg: EvalConfig, pkg, say):
    from .. import profiling
    from ..errors import PackageError

    try:
        return profiling.load_profile(pkg)
    except PackageError:
        say(f"profiling {pkg.name} on this machine (once; cached in the package) ...")
        stacked = profiling.load_inputs_npz(cfg.inputs, pkg.inputs) if cfg.inputs is not None else None
        return profiling.profile_package(pkg, stacked, accuracy_floor=cfg.accuracy_floor, progress=False)


def evaluate(cfg: EvalConfig, on_request: Optional[Callable] = None, say: Callable[[str], None] = print) -> dict:
    from .. import profiling
    from ..package import open_package
    from . import setup

    trace = Trace.load(cfg.trace)
    pkg_dir = setup.package(cfg.model, cfg.shapes)
    pkg = open_package(pkg_dir)
    prof = _profile(cfg, pkg, say)
    pace, label = profiling.pace_for(prof, cfg.device) if cfg.device != "native" else (1.0, "real speed (this machine)")
    costs = [c for c in prof.costs(1.0, floor=cfg.accuracy_floor)
             if c.plan.kind != "split" or pkg.cut(c.plan.cut).bytes <= cfg.max_cut_bytes]
    frames, source = _inputs(cfg, pkg)
    n = max(int(cfg.duration_s * cfg.rate), 1)
    with setup.worker(pkg_dir) as wport:
        t0, recs, art, live_base = _live(cfg, trace, wport, pkg, costs, frames, n, on_request, say, label)
    paced = art.costs
    local_ms = next(c.device_ms for c in paced if c.plan == LOCAL)
    deadline = art.objective.deadline_ms
    link = Link(trace, cfg.delay_ms, [(t0 * 1e3 + s * 1e3, (t0 + s + d) * 1e3) for s, d in cfg.outages])
    arrivals = [r.served.arrival_ms for r in recs]
    base = baselines(link, paced, arrivals, art.objective, local_ms, art.probe_sizes())
    decide = np.array([h.decide_ms for h in art.history[-len(recs):]] or [0.0])
    policies = {"adaptive": {**R.summary([r.served for r in recs], deadline), "mode": "live",
                             "plan": f"{art.ctl.switches} switches",
                             "decide_ms": {"median": round(float(np.median(decide)), 4),
                                           "p99": round(float(np.percentile(decide, 99)), 4),
                                           "plans_priced": len(art.ctl.candidates), "plans": len(art.ctl.costs)}}}
    for k, (served, what) in base.items():
        policies[k] = {**R.summary(served, deadline), "mode": "replayed exactly from measured costs", "plan": what}
    for k, (served, what) in live_base.items():
        policies[f"{k}_live"] = {**R.summary(served, deadline), "mode": "live", "plan": what}
    return {"trace": trace.name, "offset_s": cfg.offset_s, "duration_s": cfg.duration_s, "rate": cfg.rate,
            "model": cfg.model, "device": label, "pace": pace, "delay_ms": cfg.delay_ms, "deadline_ms": deadline,
            "objective": cfg.objective, "accuracy_floor": cfg.accuracy_floor,
            "accuracy_metric": _metric(prof), "inputs": source,
            "outages": cfg.outages, "plans": [c.to_dict() for c in paced], "policies": policies,
            "baselines_live": bool(live_base) or "replayed exactly (pass --live-baselines to also run them live)",
            "timeline": [{"t_s": r.t_s, "plan": str(r.served.plan), "latency_ms": r.served.latency_ms,
                          "outcome": r.outcome, "predicted_ms": r.predicted_ms, "reason": r.reason,
                          "estimates": r.estimates} for r in recs],
            "oracle_timeline": [{"plan": str(s.plan), "latency_ms": s.latency_ms} for s in base["oracle"][0]],
            "capacity": {"t0_s": t0, "mbps": list(trace.series(t0, t0 + n / cfg.rate, 0.5))}}


def _metric(prof) -> str:
    from .. import profiling

    what = {profiling.TOP1: "top-1 agreement with the unsplit model",
            profiling.REL_L2: "1 - relative L2 error of the outputs against the unsplit model"}.get(prof.metric, prof.metric)
    return f"{what}, on the profile's samples (no labels: fidelity to the unsplit full-precision model)"


def _live(cfg, trace, wport, pkg, costs, frames, n, on_request, say, label):
    """The adaptive run (and, with ``live_baselines``, local and offload) over the proxy."""
    from ..adaptive import AdaptiveRuntime
    from .live import stream

    acc = {c.plan: c.accuracy for c in costs}
    accuracy = lambda p, o: acc[LOCAL] if o == "local_fallback" else acc.get(p, 1.0)  # noqa: E731
    proxy = _proxy(cfg, trace, wport)
    try:
        art = AdaptiveRuntime(pkg, f"tcp://127.0.0.1:{proxy.port}", objective=cfg.objective,
                              deadline_ms=cfg.deadline_ms, accuracy_floor=cfg.accuracy_floor, device=cfg.device
                              if cfg.device != "native" else None, costs=costs, samples=frames[0],
                              clock=lambda: proxy.now_ms() / 1000.0)
        with art:
            t0 = _start(cfg, proxy)
            say(f"streaming {n} requests at {cfg.rate:g}/s over {trace.name} from {t0:.1f} s on {label} ...")
            recs = stream(art, frames, cfg.rate, n, lambda: proxy.now_ms() / 1000.0, accuracy, on_request)
            live_base = {}
            if cfg.live_baselines:
                offl = _best_offload(cfg, trace, t0, art, [r.served.arrival_ms for r in recs])
                for name, plan in (("local", LOCAL), ("offload", offl)):
                    if plan is None:
                        continue
                    proxy.stop()
                    proxy = _proxy(cfg, trace, wport)
                    art.rt.client.close()
                    art.rt.client = _client(proxy)
                    _start(cfg, proxy)
                    say(f"live baseline: always {plan} ...")
                    rs = stream(art, frames, cfg.rate, n, lambda: proxy.now_ms() / 1000.0, accuracy, static=plan)
                    live_base[name] = ([r.served for r in rs], str(plan))
    finally:
        proxy.stop()
    return t0, recs, art, live_base


def _best_offload(cfg, trace, t0, art, arrivals):
    """The offload plan the replayed 'offload' baseline picks (best mean over this segment)."""
    link = Link(trace, cfg.delay_ms, [(t0 * 1e3 + s * 1e3, (t0 + s + d) * 1e3) for s, d in cfg.outages])
    local_ms = next(c.device_ms for c in art.costs if c.plan == LOCAL)
    obj = art.objective
    timeout = max(remote_budget_ms(obj.deadline_ms, local_ms), 1.0) if math.isfinite(obj.deadline_ms) else None
    offl = [c.plan for c in art.costs if c.plan.kind == "offload" and c.accuracy >= obj.accuracy_floor]
    if not offl:
        return None
    mean = lambda p: np.mean([x.latency_ms for x in R.run(link, art.costs, arrivals, R.static(p, timeout),  # noqa: E731
                                                          fallback=LOCAL)])
    return min(offl, key=mean)


def _proxy(cfg, trace, wport) -> LinkProxy:
    proxy = LinkProxy(("127.0.0.1", wport), up=trace, delay_ms=cfg.delay_ms, offset_s=max(cfg.offset_s - 3.0, 0.0))
    proxy.start()
    return proxy


def _client(proxy):
    from ..transport.client import Client

    c = Client(f"tcp://127.0.0.1:{proxy.port}", heartbeat_s=1.0, dead_after=5)
    c.wait_ready(5.0)
    return c


def _start(cfg, proxy) -> float:
    """Wait for the trace offset, then schedule the outages; the stream's t0 (s, link clock)."""
    while proxy.now_ms() < cfg.offset_s * 1000.0:
        time.sleep(0.01)
    t0 = proxy.now_ms() / 1000.0
    for s, d in cfg.outages:
        proxy.add_outage(t0 - proxy.offset_ms / 1000.0 + s, d)
    return t0
