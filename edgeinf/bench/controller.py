"""``edgeinf bench controller``: the adaptive controller vs baselines on a replayed trace.

The adaptive policy runs live (real worker process, real ZeroMQ, every byte through the
trace-driven link proxy); local, offload, best static and the oracle are replayed exactly
from the same measured costs over the same trace segment. Any model file or zoo name; see docs/controller.md.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..cli._util import fraction, positive
from ..errors import ConfigError


def add_arguments(p) -> None:
    from ..evaluation.setup import DEFAULT_TRACE, MODELS

    p.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="mahimahi uplink trace (default: the shipped one)")
    p.add_argument("--offset", type=float, default=60.0, help="seconds into the trace to start (default 60)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of requests (default 30)")
    p.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    p.add_argument("--model", default="hand_landmark_full",
                   help=f"an .onnx/.tflite file (image or not, any layout, several inputs) or a zoo model "
                        f"({', '.join(sorted(MODELS))}; default hand_landmark_full)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS",
                   help="fix a symbolic input dim of a model file, e.g. input=1x3x224x224 (repeatable)")
    p.add_argument("--inputs", type=Path, default=None,
                   help="npz with one array per model input (named as the input), N samples stacked on axis 0")
    p.add_argument("--device", default="raspberry-pi-4",
                   help="emulated device profile (edgeinf profile --help lists them), or 'native' = real speed")
    p.add_argument("--live-baselines", action="store_true",
                   help="also run always-local and always-offload live (each over the same trace segment)")
    p.add_argument("--delay-ms", type=float, default=10.0, help="one-way link delay (default 10)")
    p.add_argument("--deadline-ms", type=positive, default=None, help="per-request deadline (default 4x local)")
    p.add_argument("--objective", default="latency", choices=["latency", "accuracy", "energy"])
    p.add_argument("--accuracy-floor", type=fraction, default=0.9, help="min agreement for a plan (default 0.9)")
    p.add_argument("--outage", action="append", default=[], metavar="START:DUR",
                   help="cut the link DUR s from START s after the stream starts (repeatable)")
    p.add_argument("--plot", type=Path, default=None, help="PNG path (default: controller_<trace>.png in cwd)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(sub) -> None:
    p = sub.add_parser("controller", help="adaptive controller vs local/offload/static/oracle over a link trace")
    add_arguments(p)
    p.set_defaults(func=run)


def config_from(args):
    from ..evaluation.evaluate import EvalConfig

    outages = []
    for o in args.outage:
        try:
            s, d = (float(x) for x in o.split(":"))
        except ValueError:
            raise ConfigError(f"--outage must be START:DURATION in seconds, e.g. 10:5; got {o!r}") from None
        outages.append((s, d))
    if args.rate <= 0 or args.duration <= 0:
        raise ConfigError(f"--rate and --duration must be > 0; got {args.rate}, {args.duration}")
    if not Path(args.trace).is_file():
        raise ConfigError(f"--trace {args.trace}: no such file")
    return EvalConfig(args.trace, args.offset, args.duration, args.rate, args.model, args.device, args.delay_ms,
                      args.deadline_ms, args.objective, args.accuracy_floor, outages, shapes_from(args.shape),
                      args.inputs, args.live_baselines)


def shapes_from(items) -> dict:
    shapes = {}
    for item in items:
        name, sep, dims = item.partition("=")
        if not sep or not name or not dims:
            raise ConfigError(f"--shape must be NAME=DIMS like input=1x3x224x224; got {item!r}")
        shapes[name] = dims
    return shapes or None


def run(args) -> int:
    from ..evaluation import report as rep
    from ..evaluation.evaluate import evaluate

    from ..cli._util import require

    require("matplotlib")  # the plot comes at the end: say so before a minute of work
    cfg = config_from(args)
    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    result = evaluate(cfg, say=say)
    png = rep.plot(result, args.plot or Path(f"controller_{Path(cfg.trace).stem}.png"))
    result["plot"] = str(png)
    if args.json:
        slim = {k: v for k, v in result.items() if k not in ("timeline", "oracle_timeline", "capacity")}
        print(json.dumps(slim, indent=1, default=str))
    else:
        print(rep.table(result))
        print(f"plot: {png}")
    return 0
