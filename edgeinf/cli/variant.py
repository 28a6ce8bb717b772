"""``edgeinf variant``: declare a package's local variants, staged exits and branch pairs.

    edgeinf variant add PKG --name small --model small.onnx
    edgeinf variant add-exits PKG --name ee --stages s0.onnx,s1.onnx [--logits NAME]
    edgeinf variant add-branch PKG --small small --big full [--jump 0.1 --agree 0.05]
    edgeinf variant calibrate PKG [--inputs F.npz] [--max-drop 0.01]
    edgeinf variant list PKG [--json]

Each command that changes the package rewrites its manifest, so the package hash changes:
give the worker the updated package too. See docs/package.md, Variants.
"""
from __future__ import annotations

from ._util import fraction, non_negative, positive_int, print_json


def register(sub) -> None:
    p = sub.add_parser("variant", help="add local variants, staged early exits and branch pairs to a package")
    vs = p.add_subparsers(dest="variant_command", metavar="ACTION")
    a = vs.add_parser("add", help="add a model with the package model's inputs and outputs")
    a.add_argument("package")
    a.add_argument("--name", required=True)
    a.add_argument("--model", required=True, help=".onnx or .tflite file")
    e = vs.add_parser("add-exits", help="add stage graphs with an exit after each (docs/package.md)")
    e.add_argument("package")
    e.add_argument("--name", required=True)
    e.add_argument("--stages", required=True, help="comma-separated stage graphs, first to last")
    e.add_argument("--logits", help="the (N, C) output scored for confidence (default: the first such)")
    e.add_argument("--confidence", default="max_prob", choices=["max_prob", "margin"])
    b = vs.add_parser("add-branch", help="switch between two variants per frame by output consistency")
    b.add_argument("package")
    b.add_argument("--small", required=True, help="variant name ('full': the package model)")
    b.add_argument("--big", required=True, help="variant name ('full': the package model)")
    b.add_argument("--measure", default="range", help="built-in consistency measure (default: range)")
    for flag, kind, default in (("--jump", float, 0.1), ("--agree", float, 0.05), ("--probe-every", int, 3),
                                ("--calm-probes", int, 2), ("--min-big", int, 6)):
        b.add_argument(flag, type=kind, default=default)
    c = vs.add_parser("calibrate", help="fit exit thresholds and variant fidelity on calibration inputs")
    c.add_argument("package")
    c.add_argument("--inputs", help=".npz: one array per model input, N samples stacked on a new leading axis")
    c.add_argument("--max-drop", type=fraction, default=0.01, help="agreement the exits may give up (0.01 = 1 point)")
    c.add_argument("--tol", type=non_negative, default=0.05, help="relative error still agreeing (non-classifiers)")
    c.add_argument("--z", type=non_negative, default=1.0, help="noise margin of the fit, in standard errors")
    c.add_argument("--samples", type=positive_int, default=64, help="generated samples when no --inputs")
    ls = vs.add_parser("list", help="every local plan the package declares")
    ls.add_argument("package")
    for q in (a, e, b, c, ls):
        q.add_argument("--json", action="store_true", help="print one JSON object")
    for q in (a, e, b):
        q.add_argument("--replace", action="store_true", help="replace an entry of the same name")
    p.set_defaults(func=run, _help=p.print_help)


def run(args) -> int:
    from .. import dynamic as D

    cmd = args.variant_command
    if cmd is None:
        args._help()
        return 2
    if cmd == "add":
        out = D.add_variant(args.package, args.name, args.model, replace=args.replace)
    elif cmd == "add-exits":
        stages = [s for s in args.stages.split(",") if s]
        out = D.add_exits(args.package, args.name, stages, logits=args.logits, confidence=args.confidence,
                          replace=args.replace)
    elif cmd == "add-branch":
        out = D.add_branch(args.package, args.small, args.big, measure=args.measure, replace=args.replace,
                           jump=args.jump, agree=args.agree, probe_every=args.probe_every,
                           calm_probes=args.calm_probes, min_big=args.min_big)
    elif cmd == "calibrate":
        out = D.calibrate_variants(args.package, inputs=args.inputs, max_drop=args.max_drop, z=args.z, tol=args.tol,
                          samples=args.samples)
    else:
        out = {"plans": D.describe(args.package)}
    if args.json:
        print_json(out)
    else:
        _text(cmd, out)
    return 0


def _text(cmd: str, out: dict) -> None:
    if cmd == "list":
        for r in out["plans"]:
            fid = (r.get("fidelity") or {}).get("value")
            prof = (r.get("profile") or {}).get("calib", {})
            extra = f"  fidelity {fid}" if fid is not None else ""
            extra += f"  agreement {prof['agreement']} exit rate {prof['exit_rate']}" if prof else ""
            print(f"{r['label']:40s} {r['kind']}{extra}")
    elif cmd == "calibrate":
        print(f"calibrated on {out['samples']} samples ({out['inputs']}), metric {out['metric']}")
        for name, f in out["models"].items():
            print(f"  variant {name}: fidelity {f['value']}")
        for name, p in out["staged"].items():
            print(f"  staged {name}: thresholds {p['thresholds']}, agreement {p['calib']['agreement']}, "
                  f"exit rate {p['calib']['exit_rate']}")
    else:
        print(f"added {out.get('name') or (out['small'] + '|' + out['big'])}; the package hash changed")
