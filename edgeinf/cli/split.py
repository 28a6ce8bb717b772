"""``edgeinf split MODEL``: list, verify and package the cuts of a model graph.

    edgeinf split MODEL --list [--json]
    edgeinf split MODEL --verify [--at CUT] [--json]
    edgeinf split MODEL --at CUT[,CUT...] -o DIR      (or --all -o DIR; -o alone: Pareto cuts)
    edgeinf split MODEL ... -o DIR --profile [--device D] [--inputs F.npz]   (then profile.json)
"""
from __future__ import annotations

import sys

from ..errors import ConfigError
from ._util import fraction, print_json


def add_model_args(p) -> None:
    """Arguments shared with ``edgeinf profile``."""
    p.add_argument("model", help="model file (.onnx/.tflite) or a zoo model name (see `edgeinf models`)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=1x3x224x224",
                   help="fix an input's dynamic dims (repeat for several inputs)")
    p.add_argument("--max-tensors", type=int, default=2, help="largest cut in crossing tensors (default 2)")


def parse_shapes(items) -> dict:
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise ConfigError(f"--shape expects NAME=1x3x224x224; got {item!r}")
        shapes[name] = dims
    return shapes


def register(sub) -> None:
    p = sub.add_parser("split", help="list, verify or package the cuts of a model graph")
    add_model_args(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="list every valid cut (default)")
    what.add_argument("--verify", action="store_true", help="prove head+tail == full model per cut")
    what.add_argument("--all", action="store_true", help="package every cut (with -o)")
    p.add_argument("--at", help="cut id(s), comma-separated: package them (-o) or verify only them")
    p.add_argument("-o", "--out", help="write a model package to this directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--profile", action="store_true", help="with -o: then measure every plan into profile.json")
    p.add_argument("--device", help="with --profile: target device profile whose pace to record")
    p.add_argument("--inputs", metavar="F.npz", help="with --profile: sample inputs, one array per model input")
    p.add_argument("--accuracy-floor", type=fraction, default=0.99, help="with --profile: codec fidelity floor")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..split import build_package, open_model

    m = open_model(args.model, parse_shapes(args.shape), args.max_tensors)
    if args.out:
        if args.list or args.verify:
            raise ConfigError("-o writes a package; it does not combine with --list or --verify")
        inputs = None
        if args.inputs:  # NOTE: a mismatched file fails before the slow part, not after it
            from ..profiling import load_inputs_npz

            inputs = load_inputs_npz(args.inputs, m.input_specs())
        path = build_package(m, args.out, at="all" if args.all else args.at)
        print(f"wrote {path} ({len(m.select('all' if args.all else args.at))} cut(s), verified)",
              file=sys.stderr if args.json else sys.stdout)
        if args.profile:
            from .profile import run_package

            args.repeat, args.threads, args.at = 10, 1, None
            return run_package(path, args, inputs)
        return 0
    if args.profile or args.inputs:
        raise ConfigError("--profile and --inputs profile a package and need -o DIR")
    if args.all:
        raise ConfigError("--all packages every cut and needs -o DIR")
    if args.verify:
        return _verify(m, args)
    return _list(m, args)


def _sizes(m) -> dict:
    if any(v is None for v in m.input_shapes.values()):
        return {}
    return {c.id: m.crossing_bytes(c) for c in m.cuts}


def _list(m, args) -> int:
    cuts = m.select(args.at) if args.at else m.cuts
    sizes = _sizes(m)
    rows = [{"id": c.id, "name": c.name, "position": c.position, "tensors": list(c.tensors),
             "bytes": sizes.get(c.id)} for c in cuts]
    report = {"model": str(m.path), "format": m.format, "nodes": len(m.graph.nodes),
              "max_tensors": m.max_tensors, "input_shapes": m.input_shapes, "notes": m.notes, "cuts": rows}
    if args.json:
        print_json(report)
        return 0
    print(f"{m.path}  [{m.format}, {len(m.graph.nodes)} compute nodes, {len(rows)} cuts "
          f"of <= {m.max_tensors} tensors]")
    print(f"  {'id':<10} {'pos':>4} {'n':>2} {'bytes':>10}  name")
    for r in rows:
        nbytes = "?" if r["bytes"] is None else f"{r['bytes']:,}"
        print(f"  {r['id']:<10} {r['position']:>4} {len(r['tensors']):>2} {nbytes:>10}  {r['name'][:70]}")
    for note in m.notes:
        print(f"  note: {note}")
    return 0


def _verify(m, args) -> int:
    from ..split import verify_cuts

    cuts = m.select(args.at) if args.at else m.cuts
    results = verify_cuts(m, cuts, progress=not args.json)
    verified = bool(results) and all(r["ok"] for r in results)
    if args.json:
        print_json({"model": str(m.path), "format": m.format, "input_shapes": m.input_shapes,
                    "notes": m.notes, "verified": verified, "cuts": results})
        return 0 if verified else 1
    for r in results:
        status = "ok  " if r["ok"] else "FAIL"
        detail = r["error"] or f"max abs err {r['max_abs_err']:.3g} (rel {r['max_rel_err']:.3g})"
        print(f"  {status} {r['id']:<10} {r['bytes']:>10,}  {detail}  {r['name'][:50]}")
    worst = max((r["max_rel_err"] or 0.0) for r in results) if results else 0.0
    print(f"{sum(r['ok'] for r in results)}/{len(results)} cuts verified; worst relative error {worst:.3g}")
    return 0 if verified else 1
