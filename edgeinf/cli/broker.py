"""``edgeinf broker``: spread client requests over several workers by their load."""
from __future__ import annotations

import signal


def register(sub) -> None:
    p = sub.add_parser("broker", help="broker between edge clients and `edgeinf worker --connect` workers")
    p.add_argument("--frontend", default="tcp://127.0.0.1:5555", help="where clients connect (default loopback)")
    p.add_argument("--backend", default="tcp://127.0.0.1:5556", help="where workers connect (default loopback)")
    p.add_argument("--heartbeat", type=float, default=0.5, help="seconds; a worker silent 3 periods is dropped")
    p.add_argument("--curve-secret", metavar="FILE", help="broker .key_secret: CURVE on the frontend")
    p.add_argument("--allow", metavar="DIR", help="directory of allowed client public keys (*.key)")
    p.add_argument("--allow-plaintext", action="store_true", help="allow plaintext on non-loopback endpoints")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..transport.broker import Broker
    from ..transport.security import ServerSecurity

    if bool(args.curve_secret) != bool(args.allow):
        raise ConfigError("CURVE needs both --curve-secret and --allow")
    security = ServerSecurity(args.curve_secret, args.allow) if args.curve_secret else None
    broker = Broker(args.frontend, args.backend, heartbeat_s=args.heartbeat, security=security,
                    allow_plaintext=args.allow_plaintext)
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: broker.stop())
        print(f"edgeinf broker: workers connect to {broker.backend}", flush=True)
        print(f"edgeinf broker: clients on {broker.frontend}", flush=True)
        broker.serve()
    finally:
        broker.close()
    return 0
