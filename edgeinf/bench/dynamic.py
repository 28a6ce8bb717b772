"""``edgeinf bench dynamic``: early exits, widths, width switching and branch switching.

Same process, same inputs for every arm: the package's held-out test split (digits) and
the synthetic hand clip (seed 0). Times are batch-1 requests, as an edge device serves
them; baseline and early-exit requests alternate so drift on a shared machine hits both.
"""
from __future__ import annotations

import json
import time

import numpy as np

from ..cli._util import non_negative_int

PROFILE = "drop1"


def register(sub) -> None:
    p = sub.add_parser("dynamic", help="early exit, slimmable widths, width/branch switching")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--samples", type=non_negative_int, default=0, help="test samples to time (0: all)")
    p.add_argument("--profile", default=PROFILE, help=f"exit profile to compare (default {PROFILE})")
    p.add_argument("--plot", metavar="PNG", help="write the accuracy/latency plot here")
    p.add_argument("--no-branch", action="store_true", help="skip the hand-landmark branch switching")
    p.set_defaults(func=run)


def _early_exit(model, x, y, profile: str, block: int = 100) -> dict:
    """Full graph against early exit at the widest width, in alternating blocks of requests.

    Blocks (not single requests) keep each arm's sessions warm as in steady serving; the
    order flips every block, and the saving is the median of per-block ratios, so a burst of
    load from other processes on a shared machine skews one block, not the result.
    """
    from ..plan import Plan

    wid = model.widths[-1]
    full, early = Plan("local", variant=wid), Plan("local", variant=wid, exit=profile)
    t = {full: [], early: []}
    pred = {full: np.empty(len(x), np.int64), early: np.empty(len(x), np.int64)}
    macs = np.empty(len(x))
    for b, i0 in enumerate(range(0, len(x), block)):
        for plan in ((full, early) if b % 2 else (early, full)):
            t0 = time.perf_counter()
            for i in range(i0, min(i0 + block, len(x))):
                r = model.run(x[i:i + 1], plan)
                pred[plan][i] = r.pred[0]
                if plan is early:
                    macs[i] = r.macs[0]
            t[plan].append(time.perf_counter() - t0)
    acc = {p: float(np.mean(v == y)) for p, v in pred.items()}
    ratio = np.array(t[early]) / np.array(t[full])
    w = model.variants.width(wid)
    return {"width": wid, "profile": profile, "samples": len(x),
            "full_ms": 1e3 * sum(t[full]) / len(x), "early_ms": 1e3 * sum(t[early]) / len(x),
            "time_saving": 1 - float(np.median(ratio)), "time_saving_total": 1 - sum(t[early]) / sum(t[full]),
            "mac_saving": 1 - float(macs.mean()) / w.full_macs,
            "accuracy_full": acc[full], "accuracy_early": acc[early],
            "accuracy_drop_points": 100 * (acc[full] - acc[early]),
            "first_exit_accuracy": w.accuracy["test"][0],
            "exit_rate": np.bincount(model.run(x, early).exit, minlength=len(w.stages)).tolist()}


def _widths(model, x, y, xt) -> dict:
    from ..plan import Plan
    from ..dynamic.plans import mean_ms

    out = {}
    for wid in model.widths:
        w = model.variants.width(wid)
        plan = Plan("local", variant=wid)
        out[wid] = {"ms": mean_ms(model, plan, xt), "macs": w.full_macs,
                    "accuracy": float(np.mean(model.run(x, plan).pred == y)),
                    "accuracy_per_exit": w.accuracy["test"]}
    return out


def _switch(model, x, n: int = 90, rounds: int = 7) -> dict:
    """Extra latency of a request right after a width switch.

    Each round serves the same ``n`` requests twice: cycling widths on every request, and
    grouped by width (two switches in all); rounds flip the order, and the result is the
    median over rounds of the difference per switch.
    """
    ws = model.widths
    seq = [ws[i % len(ws)] for i in range(n)]
    grouped = sorted(seq)

    def serve(order):
        t0 = time.perf_counter()
        for i, wid in enumerate(order):
            model.set_width(wid)
            model.run(x[i % len(x)][None])
        return time.perf_counter() - t0

    diffs = []
    for r in range(rounds):
        a, b = (serve(seq), serve(grouped)) if r % 2 else (serve(grouped), serve(seq))[::-1]
        diffs.append((a - b) / (n - len(ws)))
    t0 = time.perf_counter()
    for wid in seq:
        model.set_width(wid)
    set_us = 1e6 * (time.perf_counter() - t0) / n
    return {"switch_ms": 1e3 * float(np.median(diffs)), "set_width_us": set_us, "requests": n * rounds}


def measure(samples: int = 0, profile: str = PROFILE, branch: bool = True) -> dict:
    from ..dynamic import build
    from ..dynamic.runtime import DynamicModel
    from ..dynamic.variants import load_split
    from ..package import open_package

    pkg = open_package(build.ensure())
    model = DynamicModel(pkg, threads=1)
    x, y = load_split(pkg, "test")
    xt, yt = (x[:samples], y[:samples]) if samples else (x, y)
    res = {"early_exit": _early_exit(model, xt, yt, profile), "widths": _widths(model, x, y, xt[:400])}
    res.update(_switch(model, x))
    from ..dynamic.plans import local_plans

    res["plans"] = [{"plan": lp.plan.label(), "width": lp.plan.variant, "exit": lp.plan.exit,
                     "accuracy": lp.accuracy, "ms": lp.ms, "macs": lp.macs} for lp in local_plans(model, samples=200)]
    res["profiles"] = {wid: model.variants.width(wid).profiles for wid in model.widths}
    res["training_seconds"] = pkg.manifest["variants"]["training"]["seconds"]
    if branch:
        from ..dynamic import stream, video

        frames, _ = video.clip(0)
        r = stream.compare(frames, stream.BranchSwitcher(threads=1))
        r.pop("branch_per_frame")
        res["branch"] = r
    return res


def run(args) -> int:
    res = measure(args.samples, args.profile, not args.no_branch)
    if args.plot:
        from ..dynamic.plot import tradeoff

        tradeoff(res, args.plot)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    e = res["early_exit"]
    print(f"early exit ({e['width']}, {e['profile']}, {e['samples']} test samples, batch 1):")
    print(f"  full {e['full_ms']:.3f} ms  acc {100 * e['accuracy_full']:.2f}%   early {e['early_ms']:.3f} ms  "
          f"acc {100 * e['accuracy_early']:.2f}%")
    print(f"  time saving {100 * e['time_saving']:.1f}%  MAC saving {100 * e['mac_saving']:.1f}%  "
          f"drop {e['accuracy_drop_points']:.2f} points  (exit1 alone {100 * e['first_exit_accuracy']:.1f}%)")
    for wid, w in res["widths"].items():
        print(f"width {wid:6s} {w['ms']:.3f} ms  {w['macs'] / 1e6:.2f} MMAC  acc {100 * w['accuracy']:.2f}%")
    print(f"width switch: {res['switch_ms']:.4f} ms extra per request, set_width {res['set_width_us']:.2f} us")
    if "branch" in res:
        b = res["branch"]
        print(f"branch: big {100 * b['big_fraction']:.0f}% of frames, time saving {100 * b['time_saving']:.0f}%, "
              f"agreement with always-big {100 * b['agreement']['switch']:.1f}% "
              f"(always-small {100 * b['agreement']['small']:.1f}%)")
    return 0
