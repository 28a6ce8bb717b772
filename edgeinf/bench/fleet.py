"""``edgeinf bench fleet``: the cloud request stream of N simulated devices, and what it needs.

Each device replays the link trace from its own offset with the real controller in replay
mode (:func:`edgeinf.evaluation.replay.adaptive`: the same ``Controller`` the
``AdaptiveRuntime`` runs, fed by the replay's clock and measurements) over the package's
measured plan costs, paced to the emulated device. The requests it sends to the cloud
(split and offload plans that got their answer) form, over all devices, the cloud stream:

* cloud requests/s over time;
* replicas needed at a per-replica service time (mean and peak second, at a utilisation),
  and Ray Serve's autoscaling rule replayed second by second (:func:`edgeinf.scale.policy.decide`);
* deadline misses a capacity limit would add: the stream through K FIFO replicas
  (:func:`edgeinf.scale.policy.capacity_misses`), each request with the part of its
  deadline its device left for the cloud.

Offsets are drawn at ``--resolution-ms`` (default 1 s): devices with the same offset have
the same link history, so their streams are the same replay (deterministic), run once and
shifted per device by a random phase within one request period (so they do not arrive in
lockstep). A 140 s trace gives at most 140 distinct histories at 1 s; a longer trace or a
finer resolution gives more, at a proportional cost (about 0.5 ms per replayed request).
The capacity model is in docs/scale.md.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..cli._util import fraction, non_negative, positive, positive_int, share


def register(sub) -> None:
    p = sub.add_parser("fleet", help="N simulated devices replaying a trace: cloud requests/s, replicas "
                                     "needed, misses from a capacity limit")
    p.add_argument("--devices", type=int, default=1000, help="simulated devices (1..100000; default 1000)")
    p.add_argument("--trace", type=Path, default=None, help="mahimahi uplink trace (default: the bundled T-Mobile LTE)")
    p.add_argument("--model", default="hand_landmark_full", help="zoo model or model file (its cached package and profile)")
    p.add_argument("--device", default="raspberry-pi-4", help="emulated device (pace) or 'native'")
    p.add_argument("--rate", type=positive, default=10.0, help="requests/s per device (default 10)")
    p.add_argument("--duration", type=positive, default=60.0, help="seconds simulated (default 60)")
    p.add_argument("--delay-ms", type=non_negative, default=10.0, help="one-way link delay (default 10)")
    p.add_argument("--deadline-ms", type=positive, default=None, help="per-request deadline (default 4x local)")
    p.add_argument("--objective", default="latency", choices=["latency", "accuracy", "energy"])
    p.add_argument("--accuracy-floor", type=fraction, default=0.9)
    p.add_argument("--service-ms", type=positive, default=None,
                   help="per-replica service time of one cloud request (default: the mix's measured mean)")
    p.add_argument("--replicas", type=positive_int, action="append", default=None,
                   help="capacity limits to replay the stream through (repeatable; default: half, 1x and "
                        "the peak-second need)")
    p.add_argument("--utilisation", type=share, default=0.7, help="utilisation replicas are sized for (default 0.7)")
    p.add_argument("--resolution-ms", type=positive, default=1000.0, help="offset resolution (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _costs(model: str, device: str, floor: float, max_cut_bytes: int = 130_000):
    """Plan costs of the cached package, paced to ``device``; cuts crossing more than
    ``max_cut_bytes`` raw left out (as ``bench controller``: they never pay on these links)."""
    from .. import profiling
    from ..evaluation import setup
    from ..package import open_package

    pkg = open_package(setup.package(model), verify=False)
    try:
        prof = profiling.load_profile(pkg)
    except Exception:  # noqa: BLE001 - no profile yet: measure it once (cached in the package)
        prof = profiling.profile_package(pkg, None, accuracy_floor=floor, progress=False)
    pace, label = profiling.pace_for(prof, device) if device != "native" else (1.0, "real speed (this machine)")
    costs = [c for c in prof.costs(pace, floor=floor)
             if c.plan.kind != "split" or pkg.cut(c.plan.cut).bytes <= max_cut_bytes]
    return costs, label


def replay_device(costs, trace, offset_ms: float, rate: float, duration_s: float, delay_ms: float, obj) -> dict:
    """One device from ``offset_ms`` on the trace: its served requests and its cloud requests
    (time since its start, s; the cloud's share of the deadline, ms; the server time, ms)."""
    from ..controller.loop import Controller
    from ..evaluation import replay as R
    from ..netem import Link
    from ..plan import LOCAL

    n = max(1, int(duration_s * rate))
    arrivals = [offset_ms + k * 1000.0 / rate for k in range(n)]
    ctl = Controller(costs, obj)
    choose, feedback = R.adaptive(ctl)
    served = R.run(Link(trace, delay_ms), costs, arrivals, choose, fallback=LOCAL, feedback=feedback)
    table = {c.plan: c for c in costs}
    t, budget, server = [], [], []
    for s in served:
        if s.plan.remote and not s.fell_back:
            sm = table[s.plan].server_ms
            reach = s.finish_ms - delay_ms - sm  # when it reached the server
            t.append((reach - offset_ms) / 1e3)
            budget.append(obj.deadline_ms - (s.latency_ms - sm))  # what the device left for the cloud
            server.append(sm)
    plans: Dict[str, int] = {}
    for s in served:
        k = "fallback" if s.fell_back else s.plan.kind
        plans[k] = plans.get(k, 0) + 1
    lat = np.array([s.latency_ms for s in served])
    return {"t": np.array(t), "budget": np.array(budget), "server": np.array(server), "plans": plans,
            "misses": int(np.sum(lat > obj.deadline_ms)), "n": len(served)}


def simulate(costs, trace, devices: int, rate: float, duration_s: float, delay_ms: float, obj,
             resolution_ms: float = 1000.0, seed: int = 0) -> dict:
    """The fleet's cloud stream: arrival times (s, sorted), budgets (ms), server ms, and totals."""
    if not 1 <= devices <= 100_000:
        from ..errors import ConfigError

        raise ConfigError(f"--devices must be in 1..100000; got {devices}")
    rng = np.random.default_rng(seed)
    slots = max(1, int(trace.period_ms // resolution_ms))
    offsets = rng.integers(0, slots, devices) * resolution_ms
    phases = rng.uniform(0, 1.0 / rate, devices)
    uniq, inverse = np.unique(offsets, return_inverse=True)
    runs = [replay_device(costs, trace, float(o), rate, duration_s, delay_ms, obj) for o in uniq]
    t = np.concatenate([runs[i]["t"] + phases[d] for d, i in enumerate(inverse)]) if devices else np.array([])
    budget = np.concatenate([runs[i]["budget"] for i in inverse])
    server = np.concatenate([runs[i]["server"] for i in inverse])
    order = np.argsort(t, kind="stable")
    plans: Dict[str, int] = {}
    for i in inverse:
        for k, v in runs[i]["plans"].items():
            plans[k] = plans.get(k, 0) + v
    return {"t": t[order], "budget": budget[order], "server": server[order], "plans": plans,
            "requests": int(sum(runs[i]["n"] for i in inverse)),
            "device_misses": int(sum(runs[i]["misses"] for i in inverse)), "distinct_offsets": len(uniq)}


def analyse(stream: dict, duration_s: float, service_ms: Optional[float], deadline_ms: float,
            replicas: Optional[List[int]], utilisation: float, rate: float, devices: int) -> dict:
    from ..scale import policy

    t = stream["t"]
    n = len(t)
    service = service_ms if service_ms is not None else (float(stream["server"].mean()) if n else 1.0)
    service = max(service, 0.01)
    rps = policy.per_second(t.tolist(), 1.0, duration_s)
    mean_rps, peak_rps = n / duration_s, max(rps) if rps else 0.0
    need_mean = policy.replicas_needed(mean_rps, service, utilisation)
    need_peak = policy.replicas_needed(peak_rps, service, utilisation)
    scaling = policy.scaling_for(service, deadline_ms, 1, max(need_peak, 1))
    auto = policy.autoscale_replay(rps, service, scaling)
    limits = sorted(set(replicas or [max(1, need_mean // 2), need_mean, need_peak]))
    caps = {}
    for k in limits:
        m = policy.capacity_misses(t.tolist(), stream["budget"].tolist(), service, k)
        caps[str(k)] = {"misses": m["misses"], "miss_rate": round(m["miss_rate"], 5),
                        "cloud_p50_ms": round(m["p50_ms"], 2), "cloud_p99_ms": round(m["p99_ms"], 2)}
    share = n / max(stream["requests"], 1)
    return {"devices": devices, "requests": stream["requests"], "cloud_requests": n, "cloud_share": round(share, 4),
            "plans": stream["plans"], "device_misses_uncapped": stream["device_misses"],
            "service_ms": round(service, 3), "cloud_rps_mean": round(mean_rps, 1), "cloud_rps_peak": round(peak_rps, 1),
            "cloud_rps": [round(r, 1) for r in rps],
            "replicas_needed": {"mean": need_mean, "peak": need_peak, "utilisation": utilisation},
            "autoscaler": {"target_ongoing": scaling.target, "max_replicas": scaling.max_replicas,
                           "replicas": [a["replicas"] for a in auto],
                           "peak_wait_ms": max((a["wait_ms"] for a in auto), default=0.0)},
            "capacity": caps,
            "devices_per_replica": round(policy.devices_per_replica(rate, share, service, utilisation), 1),
            "distinct_offsets": stream["distinct_offsets"]}


def run(args) -> int:
    from ..controller.policy import Objective
    from ..evaluation.setup import DEFAULT_TRACE
    from ..netem import Trace
    from ..plan import LOCAL

    t0 = time.monotonic()
    trace = Trace.load(args.trace or DEFAULT_TRACE)
    costs, label = _costs(args.model, args.device, args.accuracy_floor)
    local = next(c.device_ms for c in costs if c.plan == LOCAL)
    deadline = args.deadline_ms or 4 * local
    obj = Objective(args.objective, deadline, args.accuracy_floor)
    stream = simulate(costs, trace, args.devices, args.rate, args.duration, args.delay_ms, obj,
                      args.resolution_ms, args.seed)
    res = analyse(stream, args.duration, args.service_ms, deadline, args.replicas, args.utilisation, args.rate,
                  args.devices)
    res["conditions"] = {"trace": trace.name, "model": args.model, "device": label, "rate": args.rate,
                         "duration_s": args.duration, "delay_ms": args.delay_ms, "deadline_ms": round(deadline, 1),
                         "objective": args.objective, "resolution_ms": args.resolution_ms, "seed": args.seed,
                         "wall_s": round(time.monotonic() - t0, 1)}
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['devices']} devices x {args.rate:g} req/s x {args.duration:g} s on {trace.name} "
          f"({res['distinct_offsets']} distinct offsets), deadline {deadline:.0f} ms, {label}")
    print(f"cloud: {res['cloud_requests']} of {res['requests']} requests ({res['cloud_share']:.1%}; plans "
          f"{res['plans']}), {res['cloud_rps_mean']} req/s mean, {res['cloud_rps_peak']} peak second")
    print(f"replicas needed at {res['service_ms']} ms per request, {args.utilisation:.0%} busy: "
          f"{res['replicas_needed']['mean']} (mean), {res['replicas_needed']['peak']} (peak second); "
          f"devices per replica: {res['devices_per_replica']}")
    a = res["autoscaler"]
    print(f"autoscaler replayed (target {a['target_ongoing']:g} ongoing, max {a['max_replicas']}): "
          f"{min(a['replicas'])}..{max(a['replicas'])} replicas, peak queue wait {a['peak_wait_ms']} ms")
    for k, c in res["capacity"].items():
        print(f"  capacity {k} replicas: {c['misses']} deadline misses ({c['miss_rate']:.2%}), "
              f"cloud p99 {c['cloud_p99_ms']} ms")
    print(f"deadline misses with unlimited cloud capacity: {res['device_misses_uncapped']}; "
          f"took {res['conditions']['wall_s']} s")
    return 0
