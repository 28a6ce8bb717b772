"""``edgeinf demo``: the main job, end to end, in about a minute.

Builds (or finds) the hand-landmark split package, starts an ``edgeinf worker`` process,
replays the shipped LTE uplink trace through the link emulator (with a 5 s link cut), and
streams requests of real photographs while the adaptive controller picks local, split or
offload per request. A live line shows each choice and why; at the end it prints the
summary against always-local, always-offload, the best static plan and the oracle, and
writes the plot. Compute is paced to an EMULATED Raspberry Pi 4 unless ``--device native``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ._util import non_negative


def register(sub) -> None:
    p = sub.add_parser("demo", help="adaptive split inference over a replayed LTE trace, live (about a minute)")
    p.add_argument("--device", default="raspberry-pi-4", help="emulated device, or 'native' for real speed")
    p.add_argument("--duration", type=float, default=35.0, help="seconds of requests (default 35)")
    p.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    p.add_argument("--offset", type=non_negative, default=60.0, help="seconds into the trace (default 60)")
    p.add_argument("--trace", type=Path, default=None, help="mahimahi trace (default: shipped T-Mobile LTE)")
    p.add_argument("--no-outage", action="store_true", help="do not cut the link for 5 s mid-run")
    p.add_argument("--out", type=Path, default=Path("out/controller_demo.png"), help="plot path (default out/controller_demo.png)")
    p.add_argument("--model", default="hand_landmark_full",
                   help="your own .onnx/.tflite file (or a zoo model), or 'bottleneck' (hand_landmark_full "
                        "with its slimmable bottleneck widths as split plans); default hand_landmark_full")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS",
                   help="fix a symbolic input dim of --model, e.g. input=1x3x224x224 (repeatable)")
    p.add_argument("--inputs", type=Path, default=None,
                   help="npz: one array per input of --model, N samples stacked on axis 0")
    p.add_argument("--accuracy-floor", type=float, default=0.9,
                   help="min fidelity to the unsplit model for a plan to be used (default 0.9; the "
                        "bottleneck widths measure about 0.88)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object (progress on stderr)")
    p.set_defaults(func=run)


def _line(rec, counts: dict) -> str:
    s = rec.served
    counts[str(s.plan)] = counts.get(str(s.plan), 0) + 1
    mix = " ".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:3])
    return (f"\r t={rec.t_s:5.1f}s  #{s.i:<4d} {str(s.plan):28.28} {s.latency_ms:7.1f} ms "
            f"(pred {rec.predicted_ms:6.1f}) {rec.outcome:14.14} | {rec.reason:42.42} | {mix:60.60}")


def run(args) -> int:
    import json

    from ..bench.controller import shapes_from
    from ..errors import ConfigError
    from ..evaluation import report as rep
    from ..evaluation.evaluate import EvalConfig, evaluate
    from ..evaluation.setup import DEFAULT_TRACE

    from ..cli._util import require

    require("matplotlib")  # the plot comes at the end: say so before a minute of work
    if args.rate <= 0 or args.duration <= 0:
        raise ConfigError(f"--rate and --duration must be > 0; got {args.rate}, {args.duration}")
    if not 0.0 <= args.accuracy_floor <= 1.0:
        raise ConfigError(f"--accuracy-floor must be in [0, 1]; got {args.accuracy_floor}")
    outages = [] if args.no_outage else [(args.duration * 0.55, 5.0)]
    cfg = EvalConfig(trace=args.trace or DEFAULT_TRACE, offset_s=args.offset, duration_s=args.duration,
                     rate=args.rate, device=args.device, outages=outages, model=args.model,
                     shapes=shapes_from(args.shape), inputs=args.inputs, accuracy_floor=args.accuracy_floor)
    counts: dict = {}
    out = sys.stderr if args.json else sys.stdout
    tty = out.isatty()

    def on_request(rec):
        line = _line(rec, counts)
        if tty:
            print(line, end="", flush=True, file=out)
        elif rec.served.i % 25 == 0 or "switch" in rec.reason or "down" in rec.reason:
            print(line.lstrip("\r"), flush=True, file=out)

    result = evaluate(cfg, on_request=on_request, say=lambda s: print(s, file=out))
    png = rep.plot(result, args.out)
    if args.model == "bottleneck" and not any("bn-w" in x["plan"] for x in result["timeline"]):
        print(f"note: no bottleneck width was used: those under the accuracy floor ({args.accuracy_floor:g}) "
              "are left out (docs/bottleneck.md gives their fidelity); --accuracy-floor 0.85 admits them",
              file=sys.stderr)
    if args.json:
        slim = {k: v for k, v in result.items() if k not in ("timeline", "oracle_timeline", "capacity")}
        print(json.dumps({**slim, "plot": str(png)}, indent=1, default=str))
        return 0
    print()
    print(rep.table(result))
    if outages:
        s, d = outages[0]
        print(f"link cut for {d:g} s at t={s:g} s: requests fell back to local and offload resumed after")
    print(f"plot: {png}")
    return 0
