"""``edgeinf profile MODEL``: time every cut, count bytes and MACs, draw the Neurosurgeon plot."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ._util import print_json
from .split import add_model_args, parse_shapes


def register(sub) -> None:
    p = sub.add_parser("profile", help="profile every cut: head/tail time, crossing bytes, MACs")
    add_model_args(p)
    p.add_argument("--at", help="only these cut ids (comma-separated)")
    p.add_argument("--device", help="scale measured times to this device profile (devices/*.toml)")
    p.add_argument("--repeat", type=int, default=10, help="timed runs per side after warm-up (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--threads", type=int, default=None, help="engine intra-op threads")
    p.add_argument("-o", "--out", default=".", help="directory for <model>.profile.json and .png")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..split import open_model, profile_model
    from ..split.plot import plot_profile

    if args.repeat < 1 or args.warmup < 0:
        raise ConfigError(f"--repeat must be >= 1 and --warmup >= 0; got {args.repeat}, {args.warmup}")
    m = open_model(args.model, parse_shapes(args.shape), args.max_tensors)
    cuts = m.select(args.at) if args.at else m.cuts
    prof = profile_model(m, cuts, device=args.device, repeat=args.repeat, warmup=args.warmup,
                         threads=args.threads, progress=not args.json)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / f"{m.name}.profile.json"
    jpath.write_text(json.dumps(prof, indent=1, default=str))
    png = plot_profile(prof, out / f"{m.name}.profile.png")
    if args.json:
        print_json(prof)
        return 0
    dev = prof["device"]
    print(f"{m.path}: full model {prof['full']['median_ms']:.2f} ms here (measured, median of {args.repeat})")
    if dev:
        print(f"scaled to {dev['name']}: x{prof['slowdown']:.2f} (host {prof['host']['cpu_gflops']} vs "
              f"device {dev['cpu_gflops']} GFLOPS fp64; an estimate)")
    hdr = "dev head ms (scaled)" if dev else ""
    print(f"  {'id':<10} {'head ms':>8} {'tail ms':>8} {hdr:>20} {'raw KiB':>9} {'best KiB':>9} {'head MMAC':>9}")
    for c in prof["cuts"]:
        best = min(c["codec_bytes"].values()) / 1024 if c["codec_bytes"] else float("nan")
        dh = f"{c['device_head_ms']:.2f}" if dev else ""
        print(f"  {c['id']:<10} {c['head']['median_ms']:>8.2f} {c['tail']['median_ms']:>8.2f} {dh:>20} "
              f"{c['bytes'] / 1024:>9.1f} {best:>9.1f} {c.get('head_macs', 0) / 1e6:>9.1f}")
    wrote = f"{jpath} and {png}" if png else f"{jpath} (no plot: matplotlib not installed)"
    print(f"measured: head/tail ms, bytes; estimated: MACs; scaled: device ms.  wrote {wrote}")
    return 0
