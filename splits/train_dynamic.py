#!/usr/bin/env python3
"""Train, export and calibrate the multi-exit, slimmable digits package (edgeinf.dynamic).

    python splits/train_dynamic.py                 # cached: rebuilt only for a new version/seed
    python splits/train_dynamic.py --seed 1 --force

The package lands in $EDGEINF_CACHE/packages/digits-dynamic. Needs torch==2.13.0 (CPU) and
the "train" extra; takes a few minutes on 2 cores. See docs/dynamic.md.
"""
import argparse
import json
import time

from edgeinf.dynamic import build
from edgeinf.package import open_package

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="seed of data splits, rendering and weights")
    ap.add_argument("--force", action="store_true", help="rebuild even when the cached package is current")
    args = ap.parse_args()
    t0 = time.perf_counter()
    root = build.ensure(seed=args.seed, force=args.force, progress=print)
    v = open_package(root).manifest["variants"]
    print(f"{root} ({time.perf_counter() - t0:.0f} s; training {v['training']['seconds']} s)")
    for w in v["widths"]:
        print(w["id"], "test accuracy per exit", w["accuracy"]["test"],
              json.dumps({p: {k: r["test"][k] for k in ("accuracy", "drop_points", "mac_saving")}
                          for p, r in w["profiles"].items()}))
