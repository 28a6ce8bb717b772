"""``edgeinf bench bottleneck``: the slimmable bottleneck against local and JPEG offload.

Everything comes from the package's own measurements on this host, made on the held-out
photographs (``profile.json`` and the manifest's calibration; ``edgeinf.bottleneck``):
device-side times paced to the EMULATED device (Raspberry Pi 4 by default), server times
as measured. Latency over a bandwidth is the exact replay (``edgeinf.evaluation.replay``)
of one plan over a constant-rate link with a 10 ms one-way delay (``--delay-ms``), requests
1 s apart (no queueing); the controller figure replays the adaptive controller and every
static plan over a real trace, as ``edgeinf bench controller`` does.

``split_vs_local`` and ``split_vs_offload`` are the smallest advantage, over the reported
band, of the fastest width whose agreement reaches ``--floor``; the band is the 4x-wide
window of the bandwidth grid where the smaller of the two is largest.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError

UMTS = Path(__file__).resolve().parents[1] / "data" / "traces" / "TMobile-UMTS-driving.down"  # shipped
GRID = np.geomspace(0.1, 100.0, 61)  # Mbit/s


def register(sub) -> None:
    p = sub.add_parser("bottleneck", help="slimmable bottleneck split vs local and JPEG offload")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="raspberry-pi-4", help="emulated device (default raspberry-pi-4)")
    p.add_argument("--floor", type=float, default=0.9,
                   help="agreement (PCK) a width needs to count as a split option (default 0.9)")
    p.add_argument("--trace", type=Path, default=UMTS, help="trace for the controller figure (default: UMTS)")
    p.add_argument("--delay-ms", type=float, default=10.0,
                   help="one-way link delay in ms (default 10: a 20 ms round trip; 5 for a nearby edge server)")
    p.add_argument("--plot", type=Path, metavar="DIR",
                   help="write bottleneck_tradeoff.png and bottleneck_latency.png here")
    p.set_defaults(func=run)


def _best_codec(entry: dict, slack: float = 0.005) -> str:
    """Fewest bytes whose agreement is within ``slack`` of the width's raw agreement."""
    raw = entry["agreement"]["raw"]
    return min((c for c, a in entry["agreement"].items() if a >= raw - slack), key=lambda c: entry["bytes"][c])


def _latency(cost, mbps: float, delay_ms: float = 10.0, n: int = 5) -> float:
    from ..evaluation import replay as R
    from ..netem import Link, Trace

    link = Link(Trace.constant(mbps), delay_ms=delay_ms)
    served = R.run(link, [cost], [i * 1000.0 for i in range(n)], R.static(cost.plan), fallback=cost.plan)
    return float(np.mean([s.latency_ms for s in served]))


def _band(local: float, offload: np.ndarray, split: np.ndarray) -> tuple:
    vs_local, vs_off = local / split, offload / split
    best = None
    for i, lo in enumerate(GRID):
        j = int(np.searchsorted(GRID, 4 * lo * (1 - 1e-9)))
        if j >= len(GRID):
            break
        worst = (float(vs_local[i:j + 1].min()), float(vs_off[i:j + 1].min()))
        if best is None or min(worst) > min(best[2]):
            best = (float(lo), float(GRID[j]), worst)
    return best


def _controller(pkg, costs, trace: Path, local_ms: float, delay_ms: float = 10.0) -> dict:
    from ..controller.policy import Objective
    from ..evaluation import replay as R
    from ..evaluation.evaluate import baselines
    from ..netem import Link, Trace

    if not trace.is_file():
        raise ConfigError(f"--trace {trace}: no such file (the default, the UMTS trace, ships in edgeinf/data/traces)")
    tr = Trace.load(trace)
    link = Link(tr, delay_ms=delay_ms)
    arrivals = [60_000.0 + i * 100.0 for i in range(600)]  # 60 s at 10 requests/s, from 60 s in
    obj = Objective("latency", deadline_ms=4 * local_ms, accuracy_floor=0.0)
    mean = lambda s: float(np.mean([x.latency_ms for x in s]))  # noqa: E731
    out = {"trace": trace.name, "window_s": [60, 120], "mean_mbit": round(tr.mbps(60, 120), 3)}
    for label, cs in (("with_bottleneck", costs), ("without", [c for c in costs if not _is_bn(c.plan)])):
        b = baselines(link, cs, arrivals, obj, local_ms, R.PROBE_BYTES)
        out[label] = {k: {"mean_ms": round(mean(v[0]), 1), "plan": v[1]} for k, v in b.items()}
    w = out["with_bottleneck"]
    out["adaptive_vs_best_static"] = round(w["adaptive_replayed"]["mean_ms"] / w["best_static"]["mean_ms"], 3)
    out["adaptive_vs_best_static_without_bottleneck"] = round(
        w["adaptive_replayed"]["mean_ms"] / out["without"]["best_static"]["mean_ms"], 3)
    return out


def _is_bn(plan) -> bool:
    return plan.kind == "split" and str(plan.cut).startswith("bn-w")


def measure(pkg, device: str, floor: float, trace: Path, delay_ms: float = 10.0) -> dict:
    from ..bottleneck import plans as P
    from ..plan import Plan

    sec = P.section(pkg)
    costs, pace = P.costs(pkg, device, floor=0.0)
    table = {c.plan: c for c in costs}
    local = table[Plan("local")]
    offl = {c.plan.codec: c for c in costs if c.plan.kind == "offload"}
    widths, curves = [], {}
    for e in sec["widths"]:
        codec = _best_codec(e)
        c = table[Plan("split", cut=e["cut"], codec=codec)]
        widths.append({"width": e["width"], "codec": codec, "bytes": e["bytes"][codec],
                       "jpeg90_bytes": sec["held_out"]["jpeg90_bytes"], "jpeg75_bytes": sec["held_out"]["jpeg75_bytes"],
                       "bytes_vs_jpeg90": round(e["bytes"][codec] / sec["held_out"]["jpeg90_bytes"], 4),
                       "agreement": e["agreement"][codec], "agreement_by_codec": e["agreement"],
                       "bytes_by_codec": e["bytes"], "head_ms": round(c.device_ms + c.encode_ms, 2),
                       "tail_ms": round(c.server_ms, 2)})
        curves[f"w{e['width']}"] = np.array([_latency(c, b, delay_ms) for b in GRID])
    local_ms = local.device_ms
    jpeg = offl.get("jpeg90") or min(offl.values(), key=lambda c: c.up_bytes)
    off_curve = np.array([min(_latency(c, b, delay_ms) for c in offl.values()) for b in GRID])
    ok = [f"w{w['width']}" for w in widths if w["agreement"] >= floor]
    floor_met = bool(ok)
    ok = ok or [f"w{w['width']}" for w in widths]  # NOTE: none reaches it: say so, compare them all
    split = np.min([curves[k] for k in ok], axis=0)
    lo, hi, (vs_local, vs_off) = _band(local_ms, off_curve, split)
    return {"teacher": {"name": sec["teacher"]["name"], "sha256": sec["teacher"]["sha256"][:12],
                        "conversion": sec["teacher"]["conversion"]},
            "device": device, "pace": round(pace, 3), "floor": floor, "held_out_frames": sec["held_out"]["n"],
            "widths": widths, "local_ms": round(local_ms, 2),
            "offload": {"jpeg90_ms_device": round(jpeg.encode_ms, 2), "server_ms": round(jpeg.server_ms, 2),
                        "jpeg90_bytes": jpeg.up_bytes},
            "band_mbit": [round(lo, 3), round(hi, 3)], "split_vs_local": round(vs_local, 3),
            "split_vs_offload": round(vs_off, 3), "split_widths_counted": ok, "floor_met": floor_met,
            "delay_ms": delay_ms, "controller": _controller(pkg, costs, trace, local_ms, delay_ms),
            "_curves": {"mbit": GRID, "local": local_ms, "offload": off_curve, **curves}}


def plot(res: dict, out_dir: Path) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for w in res["widths"]:
        xs = [w["bytes_by_codec"][c] / w["jpeg90_bytes"] for c in w["agreement_by_codec"]]
        ax.plot(xs, list(w["agreement_by_codec"].values()), "o-", label=f"width {w['width']}")
    ax.set_xscale("log")
    ax.set_xlabel("crossing bytes / JPEG q90 bytes of the frame (int4, int8, fp16, raw)")
    ax.set_ylabel("agreement with the teacher (PCK@0.05, held out)")
    ax.set_ylim(0.0, 1.02)  # NOTE: the whole scale: the target is 0.98
    ax.axvline(0.25, ls=":", c="grey")
    ax.axvline(0.05, ls=":", c="grey")
    ax.legend()
    ax.grid(alpha=0.3)
    a = out_dir / "bottleneck_tradeoff.png"
    fig.tight_layout()
    fig.savefig(a, dpi=110)
    plt.close(fig)
    c = res["_curves"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(c["mbit"], np.full(len(c["mbit"]), c["local"]), "k-", label="local (full model)")
    ax.plot(c["mbit"], c["offload"], "k--", label="offload (best image/tensor codec)")
    for k, v in c.items():
        if k.startswith("w"):
            ax.plot(c["mbit"], v, label=f"bottleneck split {k}")
    ax.axvspan(*res["band_mbit"], color="green", alpha=0.08)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"uplink Mbit/s (constant; {res['delay_ms']:g} ms one-way delay)")
    ax.set_ylabel(f"latency ms ({res['device']}, emulated)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    b = out_dir / "bottleneck_latency.png"
    fig.tight_layout()
    fig.savefig(b, dpi=110)
    plt.close(fig)
    return [str(a), str(b)]


def run(args) -> int:
    from ..bottleneck import build
    from ..package import open_package

    if not 0.0 <= args.floor <= 1.0:
        raise ConfigError(f"--floor must be in [0, 1]; got {args.floor}")
    if not 0.0 <= args.delay_ms <= 10_000:
        raise ConfigError(f"--delay-ms must be in [0, 10000]; got {args.delay_ms}")
    pkg = open_package(build.ensure())  # (after every argument check: this may train for minutes)
    res = measure(pkg, args.device, args.floor, args.trace, args.delay_ms)
    if args.plot:
        res["plots"] = plot(res, args.plot)
    res.pop("_curves")
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"teacher {res['teacher']['name']} (conversion {res['teacher']['conversion']}); "
          f"{res['device']} pace x{res['pace']}; local {res['local_ms']} ms")
    for w in res["widths"]:
        print(f"  w{w['width']:<2d} {w['codec']:12s} {w['bytes']:8.0f} B ({100 * w['bytes_vs_jpeg90']:5.1f}% of "
              f"jpeg90 {w['jpeg90_bytes']:.0f} B)  agreement {w['agreement']:.3f}  head {w['head_ms']} ms  "
              f"tail {w['tail_ms']} ms")
    note = "" if res["floor_met"] else f", none reaches agreement {res['floor']}"
    print(f"band {res['band_mbit']} Mbit/s ({res['delay_ms']:g} ms one-way): split vs local x{res['split_vs_local']}, vs offload "
          f"x{res['split_vs_offload']} (widths {res['split_widths_counted']}{note})")
    c = res["controller"]
    print(f"controller on {c['trace']}: adaptive/best static = {c['adaptive_vs_best_static']} "
          f"(best static {c['with_bottleneck']['best_static']})")
    return 0
