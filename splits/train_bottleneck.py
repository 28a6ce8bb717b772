#!/usr/bin/env python3
"""Convert the teacher, train, export, calibrate and profile the slimmable bottleneck package.

    python splits/train_bottleneck.py                 # cached: rebuilt only for a new version/seed/teacher
    python splits/train_bottleneck.py --seed 1 --force

The package lands in $EDGEINF_CACHE/packages/hand_landmark_full-bottleneck; trained weights
in $EDGEINF_CACHE/bottleneck. Needs torch==2.13.0 (CPU) and the "train" extra (tflite2onnx);
a few minutes on 2 cores. See docs/bottleneck.md.
"""
import argparse
import json
import time

from edgeinf.bottleneck import build
from edgeinf.package import open_package

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="seed of augmentation, sampling and weights")
    ap.add_argument("--force", action="store_true", help="rebuild even when the cached package is current")
    args = ap.parse_args()
    t0 = time.perf_counter()
    root = build.ensure(seed=args.seed, force=args.force, progress=print)
    sec = open_package(root).manifest["bottleneck"]
    print(f"{root} ({time.perf_counter() - t0:.0f} s; training {sec['training']['seconds']} s)")
    print("held-out JPEG bytes", {k: v for k, v in sec["held_out"].items() if "jpeg" in k})
    for w in sec["widths"]:
        print(w["cut"], json.dumps({c: {"pck": w["agreement"][c], "bytes": w["bytes"][c]} for c in w["agreement"]}))
