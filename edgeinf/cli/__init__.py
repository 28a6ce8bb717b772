"""The ``edgeinf`` command.

Each subcommand lives in its own module in this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the
parsed arguments and returning an exit code. Modules are discovered, so adding a command
never means editing a shared list.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from typing import List, Optional

from .. import config
from ..errors import EdgeInfError
from ._util import missing_extra


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line naming the command that rejected it.

    Subcommand parsers inherit this class (``add_subparsers`` uses the parent's type), so
    every command and ``bench`` suite reports errors the same way.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        # NOTE: unknown options are reported by the innermost command that was chosen,
        # not by the top-level parser (whose usage would not mention them)
        ns, extra = self.parse_known_args(args, namespace)
        if extra and not getattr(ns, "_unavailable", False):
            _chosen(self, ns).error(f"unrecognized arguments: {' '.join(extra)}")
        return ns


def _chosen(ap: argparse.ArgumentParser, ns) -> argparse.ArgumentParser:
    """The innermost (sub)parser that ``ns`` was parsed by."""
    while True:
        subs = [a for a in ap._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(ns, subs[0].dest, None) if subs else None
        if name not in (subs[0].choices if subs else {}):
            return ap
        ap = subs[0].choices[name]


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="edgeinf", description="Edge and split-computing inference.")
    ap.add_argument("-v", "--verbose", action="store_true", help="log at INFO level; show tracebacks")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        try:
            importlib.import_module(f"{__name__}.{mod}").register(sub)
        except Exception as e:  # NOTE: one broken command (say, an optional import) must not take the others down
            _unavailable(sub, mod, e)
    return ap


def _unavailable(sub, name: str, err: Exception) -> None:
    """A stand-in for command ``name`` whose module failed to load: running it reports ``err``."""
    def fail(args):
        raise err

    p = sub.add_parser(name, help=f"(unavailable: {type(err).__name__}: {err})", add_help=False)
    p.set_defaults(func=fail, _unavailable=True)  # any arguments: the error is the module's


def main(argv: Optional[List[str]] = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    level = logging.INFO if args.verbose else getattr(logging, config.get("EDGEINF_LOG").upper(), logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `edgeinf ... | head` closed our stdout; not an error
        sys.stderr.close()
        return 0
    except Exception as e:  # NOTE: every failure is one line; -v re-raises for the traceback
        if args.verbose:
            raise
        return _fail(_chosen(ap, args).prog, e)


def _fail(prog: str, e: Exception) -> int:
    """Print ``e`` as the one-line error of command ``prog`` and return the exit code."""
    hint = missing_extra(e) if isinstance(e, ImportError) else None
    if hint:
        msg = hint
    elif isinstance(e, (EdgeInfError, OSError)):  # OSError: a file the user named is missing or unreadable
        msg = str(e)
    else:  # a failure nothing here anticipated: still one line, but say what it was
        msg = f"unexpected {type(e).__name__}: {e} (rerun with -v for the traceback)"
    print(f"{prog}: error: {' '.join(msg.split())}", file=sys.stderr)
    return 1
