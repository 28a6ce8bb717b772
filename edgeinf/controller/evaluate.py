"""Live evaluation of the controller against baselines on a replayed trace.

The adaptive policy runs LIVE: real ``edgeinf worker`` process, real ZeroMQ, every byte
through the trace-driven proxy. The baselines (always-local, always-offload, best single
static plan in hindsight, per-request oracle) are computed EXACTLY from the same measured
per-plan costs over the same trace segment and request arrivals
(:mod:`edgeinf.controller.replay`); the report says so next to each. The same replay of
the adaptive controller ("adaptive (replayed)") shows how far the live run is from the
model the baselines live in.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from ..netem import Link, LinkProxy, Trace
from ..plan import LOCAL
from . import replay as R
from .loop import Controller
from .policy import Objective
from .setup import DEFAULT_TRACE

METRIC = ("agreement with the unsplit full-precision model on real photographs "
          "(PCK@0.05 of the 21 hand landmarks); no labels exist for these inputs")


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


def baselines(link: Link, costs, arrivals, obj: Objective, local_ms: float) -> dict:
    """Exact replays: local, offload, every static plan (best kept), oracle, adaptive."""
    allowed = [c for c in costs if c.accuracy >= obj.accuracy_floor]
    timeout = max(obj.deadline_ms - 1.5 * local_ms - 5.0, 1.0) if math.isfinite(obj.deadline_ms) else None
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
            "adaptive_replayed": (run(choose, feedback=feedback), f"{ctl.switches} switches")}


def evaluate(cfg: EvalConfig, on_request: Optional[Callable] = None, say: Callable[[str], None] = print) -> dict:
    from ..package import open_package
    from ..runtime import EdgeRuntime
    from . import setup
    from .live import LiveEdge, stream
    from .profile import photos, profile_plans

    trace = Trace.load(cfg.trace)
    pace, power, label = setup.device(cfg.device)
    pkg_dir = setup.package(cfg.model)
    pkg = open_package(pkg_dir)
    variants = setup.variants(cfg.model)
    pace, label = setup.anchored_pace(cfg.device, pkg, pace)
    say(f"profiling plans of {cfg.model} on {label} ...")
    costs = profile_plans(pkg, pace, cuts=setup.small_cuts(pkg), variants=variants)
    local_ms = costs[0].device_ms
    # NOTE: the runtime reserves 1.5x its (upward-biased) local estimate + 5 ms for a fallback
    # out of the deadline; 4x leaves the link at least about two local runs' worth of time
    deadline = cfg.deadline_ms or round(4.0 * local_ms, 1)
    obj = Objective(cfg.objective, deadline, cfg.accuracy_floor)
    acc = {c.plan: c.accuracy for c in costs}
    frames = photos(pkg.inputs[0].shape[1], 8)
    n = max(int(cfg.duration_s * cfg.rate), 1)
    with setup.worker(pkg_dir) as wport:
        proxy = LinkProxy(("127.0.0.1", wport), up=trace, delay_ms=cfg.delay_ms, offset_s=max(cfg.offset_s - 3.0, 0.0))
        proxy.start()
        try:
            rt = EdgeRuntime(pkg, f"tcp://127.0.0.1:{proxy.port}", compute_pace=pace, threads=1,
                             variants=variants, heartbeat_s=1.0, dead_after=5)
            with rt:
                if pace > 1.0:  # the EMULATED device runs exactly as profiled (pace x host time)
                    for c in costs:
                        if c.plan.kind == "local":
                            if c.plan.variant:
                                rt.set_pace_reference("variant", c.device_ms / pace, cut=c.plan.variant)
                            else:
                                rt.set_pace_reference("full", c.device_ms / pace)
                        elif c.plan.kind == "split":
                            rt.set_pace_reference("head", c.device_ms / pace, cut=c.plan.cut)
                        if c.plan.remote and c.encode_ms > 0:
                            rt.set_pace_reference("encode", c.encode_ms / pace, cut=c.plan.cut, codec=c.plan.codec)
                rt.client.wait_ready(5.0)
                for c in costs:  # sessions on both sides created before the clock starts
                    if c.plan.remote or c.plan == LOCAL:
                        rt.warmup(c.plan)
                        rt.run({pkg.inputs[0].name: frames[0]}, plan=c.plan, deadline=5.0)
                while proxy.now_ms() < cfg.offset_s * 1000.0:
                    time.sleep(0.01)
                t0 = proxy.now_ms() / 1000.0
                for s, d in cfg.outages:
                    proxy.add_outage(t0 - proxy.offset_ms / 1000.0 + s, d)
                ctl = Controller(costs, obj, power)
                edge = LiveEdge(rt, pace)
                say(f"streaming {n} requests at {cfg.rate:g}/s over {trace.name} from {t0:.1f} s ...")
                recs = stream(edge, ctl, frames, cfg.rate, n, deadline, lambda: proxy.now_ms() / 1000.0,
                              lambda p, o: acc[LOCAL] if o == "local_fallback" else acc.get(p, 1.0), on_request)
        finally:
            proxy.stop()
    link = Link(trace, cfg.delay_ms, [(t0 * 1e3 + s * 1e3, (t0 + s + d) * 1e3) for s, d in cfg.outages])
    arrivals = [r.served.arrival_ms for r in recs]
    base = baselines(link, costs, arrivals, obj, local_ms)
    policies = {"adaptive": {**R.summary([r.served for r in recs], deadline), "mode": "live", "plan": f"{ctl.switches} switches"}}
    for k, (served, what) in base.items():
        policies[k] = {**R.summary(served, deadline), "mode": "replayed exactly from measured costs", "plan": what}
    return {"trace": trace.name, "offset_s": cfg.offset_s, "duration_s": cfg.duration_s, "rate": cfg.rate,
            "model": cfg.model, "device": label, "pace": pace, "delay_ms": cfg.delay_ms, "deadline_ms": deadline,
            "objective": cfg.objective, "accuracy_floor": cfg.accuracy_floor, "accuracy_metric": METRIC,
            "outages": cfg.outages, "plans": [c.to_dict() for c in costs], "policies": policies,
            "timeline": [{"t_s": r.t_s, "plan": str(r.served.plan), "latency_ms": r.served.latency_ms,
                          "outcome": r.outcome, "predicted_ms": r.predicted_ms, "reason": r.reason} for r in recs],
            "oracle_timeline": [{"plan": str(s.plan), "latency_ms": s.latency_ms} for s in base["oracle"][0]],
            "capacity": {"t0_s": t0, "mbps": list(trace.series(t0, t0 + n / cfg.rate, 0.5))}}
