"""``edgeinf profile``: measure a package's plans into its ``profile.json``, or profile a model's cuts.

    edgeinf profile PKG_DIR [--device D] [--inputs F.npz] [--accuracy-floor X] [--json]
    edgeinf profile MODEL [--at CUTS] [--device D] [-o DIR] [--json]    (per-cut table and plot)
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ._util import positive_int, print_json
from .split import add_model_args, parse_shapes


def register(sub) -> None:
    p = sub.add_parser("profile", help="measure every plan of a package (profile.json), or every cut of a model")
    add_model_args(p)
    p.add_argument("--at", help="only these cut ids (comma-separated)")
    p.add_argument("--device", help="target device profile (e.g. raspberry-pi-4): record its pace / scale times")
    p.add_argument("--inputs", metavar="F.npz", help="sample inputs: one array per model input, N stacked first")
    p.add_argument("--accuracy-floor", type=float, default=0.99,
                   help="fidelity a codec needs to be chosen (default 0.99)")
    p.add_argument("--repeat", type=int, default=10, help="timed runs per measurement (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first, model mode (default 3)")
    p.add_argument("--threads", type=positive_int, default=None, help="engine intra-op threads (package mode: default 1)")
    p.add_argument("-o", "--out", default=".", help="model mode: directory for <model>.profile.json and .png")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.repeat < 1 or args.warmup < 0 or not 0.0 <= args.accuracy_floor <= 1.0:
        raise ConfigError(f"--repeat must be >= 1, --warmup >= 0 and --accuracy-floor in [0, 1]; "
                          f"got {args.repeat}, {args.warmup}, {args.accuracy_floor}")
    from ..package import MANIFEST

    if (Path(args.model) / MANIFEST).is_file():
        return run_package(args.model, args)
    return _run_model(args)


def run_package(root, args, inputs=None) -> int:
    """Profile the package at ``root`` (also used by ``edgeinf split --profile``, which has
    already read ``inputs``)."""
    from .. import profiling
    from ..package import open_package

    pkg = open_package(root)
    if inputs is None and args.inputs:
        inputs = profiling.load_inputs_npz(args.inputs, pkg.inputs)
    cuts = [c for c in args.at.split(",") if c] if getattr(args, "at", None) else None
    threads = args.threads if args.threads else 1
    prof = profiling.profile_package(pkg, inputs, device=args.device, accuracy_floor=args.accuracy_floor,
                                     repeat=args.repeat, threads=threads, progress=not args.json, cuts=cuts,
                                     local_variants=_declared_variants(pkg, threads))
    if args.json:
        print_json(prof.to_dict())
        return 0
    _print_package(pkg, prof)
    return 0


def _declared_variants(pkg, threads):
    """The package's own variants, exits and branch pairs (``edgeinf variant ...``), so the
    controller can choose them from the same cost table as splits and offload."""
    from ..local import executors
    from ..plan import LOCAL

    return {plan: (lambda feeds, e=ex: e.run(feeds)[0])
            for plan, ex in executors(pkg, threads=threads).items() if plan != LOCAL}


def _print_package(pkg, prof) -> None:
    h, src = prof.host, prof.inputs
    print(f"{pkg.root}: {len(prof.plans)} plans measured on {h['cpu']} ({h['gflops_fp64']:.1f} GFLOPS fp64 measured), "
          f"{src['n']} {src['source']} samples, fidelity = {prof.metric}, floor {prof.accuracy_floor}")
    if prof.device:
        print(f"  {prof.device['label']}")
    print(f"  {'plan':<34} {'device ms':>9} {'enc ms':>7} {'up B':>9} {'server ms':>9} {'fidelity':>8}")
    for p in prof.plans:
        mark = "" if not p.plan.remote or p.accuracy >= prof.accuracy_floor else "  (under floor)"
        print(f"  {p.plan.label()[:34]:<34} {p.device_ms:>9.3f} {p.encode_ms:>7.3f} {p.up_bytes:>9,} "
              f"{p.server_ms:>9.3f} {p.accuracy:>8.4f}{mark}")
    best = ", ".join(f"{k}: {v['best']}" for k, v in sorted(prof.cuts.items()))
    print(f"  best codec (fewest bytes at fidelity >= {prof.accuracy_floor}): {best}")
    print(f"  times are this host's, unpaced; wrote {pkg.root / 'profile.json'}")


def _run_model(args) -> int:
    from ..split import open_model, profile_model
    from ..split.plot import plot_profile

    if args.inputs:
        raise ConfigError("--inputs profiles a package: run `edgeinf split MODEL -o DIR --profile --inputs F.npz` "
                          "(or `edgeinf profile DIR --inputs F.npz` on a package)")
    m = open_model(args.model, parse_shapes(args.shape), args.max_tensors)
    cuts = m.select(args.at) if args.at else m.cuts
    prof = profile_model(m, cuts, device=args.device, repeat=args.repeat, warmup=args.warmup,
                         threads=args.threads, progress=not args.json, accuracy_floor=args.accuracy_floor)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / f"{m.name}.profile.json"
    jpath.write_text(json.dumps(prof, indent=1, default=str))
    png = plot_profile(prof, out / f"{m.name}.profile.png")
    if args.json:
        print_json(prof)
        return 0
    dev, host = prof["device"], prof["host"]
    print(f"{m.path}: full model {prof['full']['median_ms']:.2f} ms here (measured, median of {args.repeat}) "
          f"on {host['cpu']} ({host['gflops_fp64']:.1f} GFLOPS fp64, measured)")
    if dev:
        print(f"scaled to {dev['name']}: x{prof['slowdown']:.2f} (host {host['gflops_fp64']:.1f} measured vs "
              f"device {dev['cpu_gflops']} GFLOPS fp64 published; an estimate)")
    hdr = "dev head ms (scaled)" if dev else ""
    print(f"  {'id':<10} {'head ms':>8} {'tail ms':>8} {hdr:>20} {'raw KiB':>9} {'best KiB':>9} {'best codec':>12} "
          f"{'head MMAC':>9}")
    for c in prof["cuts"]:
        best = c.get("best_codec")
        kib = c["codec_bytes"][best] / 1024 if best in c["codec_bytes"] else c["bytes"] / 1024
        dh = f"{c['device_head_ms']:.2f}" if dev else ""
        print(f"  {c['id']:<10} {c['head']['median_ms']:>8.2f} {c['tail']['median_ms']:>8.2f} {dh:>20} "
              f"{c['bytes'] / 1024:>9.1f} {kib:>9.1f} {best or 'raw':>12} {c.get('head_macs', 0) / 1e6:>9.1f}")
    wrote = f"{jpath} and {png}" if png else f"{jpath} (no plot: matplotlib not installed)"
    print(f"best codec: fewest bytes with fidelity ({prof['metric']}) >= {args.accuracy_floor}. measured: head/tail ms, "
          f"bytes, fidelity; estimated: MACs; scaled: device ms.  wrote {wrote}")
    return 0
