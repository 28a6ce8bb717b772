"""``edgeinf broker``: spread client requests over several workers by their load."""
from __future__ import annotations

import json
import signal
import sys

from ._util import positive, positive_int


def register(sub) -> None:
    p = sub.add_parser("broker", help="broker between edge clients and `edgeinf worker --connect` workers")
    p.add_argument("--frontend", default="tcp://127.0.0.1:5555", help="where clients connect (default loopback)")
    p.add_argument("--backend", default="tcp://127.0.0.1:5556", help="where workers connect (default loopback)")
    p.add_argument("--heartbeat", type=positive, default=0.5, help="seconds; a worker silent 3 periods is dropped")
    p.add_argument("--curve-secret", metavar="FILE", help="broker .key_secret: CURVE on the frontend and/or backend")
    p.add_argument("--allow", metavar="DIR", help="directory of allowed client public keys (*.key): CURVE frontend")
    p.add_argument("--worker-allow", metavar="DIR",
                   help="directory of allowed worker public keys (*.key): CURVE backend (required with --allow)")
    p.add_argument("--allow-plaintext", action="store_true", help="allow plaintext on non-loopback endpoints")
    p.add_argument("--per-client", type=positive_int, default=8, help="requests one client may have in flight (default 8)")
    p.add_argument("--max-clients", type=positive_int, default=1024,
                   help="distinct clients with requests in flight before BUSY (default 1024)")
    p.add_argument("--json", action="store_true", help="print the final stats as one JSON line on stdout at exit")
    p.set_defaults(func=run)


def _security(args):
    from ..errors import ConfigError
    from ..transport.broker import WORKERS_DOMAIN
    from ..transport.security import ServerSecurity

    if not args.curve_secret:
        if args.allow or args.worker_allow:
            raise ConfigError("--allow/--worker-allow need --curve-secret (the broker's .key_secret)")
        return None
    if not (args.allow or args.worker_allow):
        raise ConfigError("--curve-secret needs --allow (clients) and/or --worker-allow (workers)")
    domains = {WORKERS_DOMAIN: args.worker_allow} if args.worker_allow else {}
    return ServerSecurity(args.curve_secret, args.allow, domains=domains)


def run(args) -> int:
    from ..transport.broker import Broker

    broker = Broker(args.frontend, args.backend, heartbeat_s=args.heartbeat, security=_security(args),
                    allow_plaintext=args.allow_plaintext, per_client=args.per_client, max_clients=args.max_clients)
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: broker.stop())
        print(f"edgeinf broker: workers connect to {broker.backend}", flush=True)
        print(f"edgeinf broker: clients on {broker.frontend}", flush=True)
        broker.serve()  # AuthError (authenticator died) propagates: exit 1, the supervisor restarts us
    finally:
        broker.close()
        print(f"edgeinf broker: stopped; stats {broker.stats}", file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps({"stats": broker.stats, "load": broker.load()}), flush=True)
    return 0
