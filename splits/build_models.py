#!/usr/bin/env python3
"""Build and fetch every model the tests, benchmarks and demo use (idempotent, cached).

    python splits/build_models.py            # the test set
    python splits/build_models.py --all      # every mediapipe model too

Models land in $EDGEINF_CACHE/models (default ~/.cache/edgeinf/models).
"""
import argparse

from edgeinf import zoo

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="every zoo model, not just the test set")
    args = ap.parse_args()
    for name, p in zoo.fetch_all(zoo.names() if args.all else zoo.TEST_SET).items():
        print(f"{name:34s} {p}")
