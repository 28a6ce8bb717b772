"""``edgeinf bench SUITE``: benchmarks, each a module in ``edgeinf.bench``.

A suite module exposes ``register(subparsers)`` like CLI commands do, so suites are
added without touching this file; a module without ``register`` is a helper of the suites
(its rows belong to another suite) and is not listed.
"""
from __future__ import annotations

import importlib
import pkgutil


def register(sub) -> None:
    from .. import bench

    p = sub.add_parser("bench", help="benchmarks (ratios against a baseline run in the same process)")
    suites = p.add_subparsers(dest="suite", metavar="SUITE")
    for mod in sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")):
        module = importlib.import_module(f"{bench.__name__}.{mod}")
        if hasattr(module, "register"):
            module.register(suites)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
