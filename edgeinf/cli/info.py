"""``edgeinf info``: backends, kernel build and device facts."""
from __future__ import annotations

from ._util import print_json


def register(sub) -> None:
    p = sub.add_parser("info", help="show backends, native kernel build and device facts")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def collect() -> dict:
    from .. import _native, backends, config, device
    from ..split import devices

    avail = backends.available()
    return {
        "edgeinf": __import__("edgeinf").__version__,
        "backends": {k: v for k, v in avail.items() if v},
        "backends_missing": {k: backends._REGISTRY[k][3] for k, v in avail.items() if not v},
        "kernels": _native.build_info(),
        "device": device.describe(),
        # where --device names are looked up: shows a wheel install finds its package data
        "device_profiles": {"names": devices.names(), "dirs": [str(d) for d in devices.search_path()]},
        "env": {k: config.get(k) for k in config.ENV},
    }


def run(args) -> int:
    info = collect()
    if args.json:
        print_json(info)
        return 0
    print(f"edgeinf {info['edgeinf']}")
    print("backends:")
    for k, v in info["backends"].items():
        print(f"  {k:12s} {v}")
    for k, hint in info["backends_missing"].items():
        print(f"  {k:12s} not installed ({hint})")
    k = info["kernels"]
    print(f"kernels: {k['version']}  {k['compiler']}  flags: {k['flags']}")
    print(f"  ISA path: {k['isa']} (SIMD width {k['simd_width_bits']} bits)")
    d = info["device"]
    print(f"device: {d['board']['kind']} ({d['board']['model']}), {d['machine']}, "
          f"{d['cores_logical']} logical / {d['cores_physical']} physical cores")
    if d["freq"]:
        print(f"  freq: {d['freq']['current_mhz']} MHz (max {d['freq']['max_mhz']})")
    print(f"  memory: {d['memory_available_mb']} / {d['memory_total_mb']} MB available; "
          f"cpu {d['cpu_percent']}%, load {d['loadavg']}")
    print(f"  temperature: {d['temperature_c'] if d['temperature_c'] is not None else 'n/a'}; "
          f"throttling: {d['throttling'] or 'n/a'}")
    prof = info["device_profiles"]
    print(f"device profiles: {', '.join(prof['names']) or 'none'} (in {', '.join(prof['dirs'])})")
    return 0
