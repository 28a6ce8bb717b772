"""``edgeinf keys generate DIR [--name N] [--json]``: CurveZMQ key pairs for workers and clients."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("keys", help="CurveZMQ keys for the worker, the broker and their clients")
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION")
    g = ks.add_parser("generate", help="write NAME.key (public, share it) and NAME.key_secret (keep it)")
    g.add_argument("dir", help="directory to write the key pair into")
    g.add_argument("--name", default="client", help="file name stem (default: client)")
    g.add_argument("--json", action="store_true", help="print the paths and the public key as JSON")
    g.set_defaults(func=generate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def generate(args) -> int:
    from ..transport.security import generate_keys, read_public_key

    public, secret = generate_keys(args.dir, args.name)
    if args.json:
        print(json.dumps({"public": str(public), "secret": str(secret),
                          "public_key": read_public_key(public).decode()}))
        return 0
    print(f"public key  {public}   (give to the other side: a worker's --allow dir, or clients)")
    print(f"secret key  {secret}   (keep private; mode 0600)")
    return 0
