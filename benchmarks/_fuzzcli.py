"""The command line both fuzzers share: ``-n`` cases from ``--seed``, one JSON line of
counts, exit status 1 when any case was unexpected."""
from __future__ import annotations

import argparse
import json
import time
from typing import Callable, Optional


def main(fuzz: Callable[[int, int], dict], doc: str, argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="number of cases")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    stats = fuzz(args.n, args.seed)
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(stats))
    return 1 if stats["unexpected"] else 0
