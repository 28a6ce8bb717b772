"""``edgeinf models``: list, build and fetch the bundled model zoo."""
from __future__ import annotations

from ._util import print_json


def register(sub) -> None:
    p = sub.add_parser("models", help="list or fetch the bundled models (MobileNetV2-shaped, mediapipe)")
    p.add_argument("--fetch", action="store_true", help="build/fetch the test set into the cache")
    p.add_argument("--all", action="store_true", help="with --fetch: every zoo model")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import zoo

    if args.fetch:
        zoo.fetch_all(zoo.names() if args.all else zoo.TEST_SET)
    rows = []
    for name in zoo.names():
        p = zoo.location(name)
        rows.append({"name": name, "path": str(p), "cached": p.exists()})
    if args.json:
        print_json({"models": rows})
    else:
        for r in rows:
            print(f"{r['name']:34s} {'cached ' if r['cached'] else 'missing'}  {r['path']}")
    return 0
