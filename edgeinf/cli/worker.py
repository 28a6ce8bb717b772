"""``edgeinf worker``: serve model package tails (and full models) to edge clients."""
from __future__ import annotations

import json
import signal
import sys

from ._util import non_negative, non_negative_int, positive, positive_int


def register(sub) -> None:
    p = sub.add_parser("worker", help="cloud offload worker: serve package tails over ZeroMQ")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--bind", default="tcp://127.0.0.1:5555",
                       help="ROUTER endpoint to bind (default loopback tcp://127.0.0.1:5555; port * picks one)")
    where.add_argument("--connect", help="instead of binding, connect to a broker's worker endpoint")
    p.add_argument("--package", action="append", default=[], metavar="DIR", help="model package (repeatable)")
    p.add_argument("--llm", action="append", default=[], metavar="NAME=GGUF",
                   help="serve a GGUF language model under NAME (repeatable): per-client sessions, KV kept here")
    p.add_argument("--llm-ctx", type=positive_int, default=2048, help="context tokens per language model (default 2048)")
    p.add_argument("--llm-sessions", type=positive_int, default=64, help="language-model sessions kept (LRU beyond; default 64)")
    p.add_argument("--llm-session-mb", type=positive, default=512.0,
                   help="parked session KV kept, MiB in all (LRU beyond; default 512)")
    p.add_argument("--llm-idle", type=positive, default=600.0, help="seconds an unused session is kept (default 600)")
    p.add_argument("--workers", type=positive_int, default=2, help="executor threads (default 2)")
    p.add_argument("--queue", type=non_negative_int, default=8, help="requests queued beyond running ones before BUSY (default 8)")
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads per session")
    p.add_argument("--per-client", type=positive_int, default=None,
                   help="requests one client (CURVE key, else connection) may have in flight (default: --queue)")
    p.add_argument("--retry-window", type=non_negative, default=60.0,
                   help="seconds an answered request id stays known: retries are replayed or refused, never rerun")
    p.add_argument("--curve-secret", metavar="FILE", help="server .key_secret: turn CURVE on")
    p.add_argument("--allow", metavar="DIR", help="directory of allowed client public keys (*.key)")
    p.add_argument("--broker-key", metavar="FILE", help="with --connect: the broker's public .key (CURVE backend)")
    p.add_argument("--worker-key", metavar="FILE", help="with --broker-key: this worker's .key_secret")
    p.add_argument("--allow-plaintext", action="store_true", help="allow plaintext on a non-loopback bind")
    p.add_argument("--drain", type=non_negative, default=30.0, help="seconds given to in-flight work on SIGTERM")
    p.add_argument("--max-tensor-mb", type=positive, default=256.0, help="largest tensor frame accepted (MiB)")
    p.add_argument("--no-verify", action="store_true", help="skip hashing package files at start")
    p.add_argument("--json", action="store_true", help="on exit, print the counters as one JSON line on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..package import open_package
    from ..transport.protocol import Limits
    from ..worker import Worker, WorkerConfig
    from ._util import llm_specs

    if not args.package and not args.llm:
        raise ConfigError("a worker needs at least one --package DIR or --llm NAME=GGUF")
    llms = llm_specs(args.llm)
    pkgs = [open_package(d, verify=not args.no_verify) for d in args.package]
    cfg = WorkerConfig(bind=args.bind, connect=args.connect, workers=args.workers, queue=args.queue,
                       threads=args.threads, curve_secret=args.curve_secret, allow_dir=args.allow,
                       allow_plaintext=args.allow_plaintext, drain_s=args.drain,
                       per_client=args.per_client, retry_window_s=args.retry_window,
                       broker_key=args.broker_key, worker_key=args.worker_key, llm_ctx=args.llm_ctx,
                       llm_sessions=args.llm_sessions, llm_session_bytes=int(args.llm_session_mb * 2**20),
                       llm_idle_s=args.llm_idle,
                       limits=Limits(max_tensor_bytes=int(args.max_tensor_mb * 2**20)))
    worker = Worker(pkgs, cfg, llms=llms)
    try:
        worker.initialize()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.stop())
        # the one line scripts and tests wait for (the port may have been chosen by the OS)
        print(f"edgeinf worker: serving {len(pkgs)} package(s) on {worker.endpoint}", flush=True)
        for name, path in llms.items():
            print(f"  llm {name} {path}", flush=True)
        for p in pkgs:
            print(f"  package {p.name} {p.hash} cuts {sorted(p.cuts)}", flush=True)
        worker.serve()
    finally:
        worker.finalize()
    print(f"edgeinf worker: stopped; stats {worker.stats}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"stats": worker.stats, "max_frame": worker.limits.max_frame,
                          "max_message": worker.max_message}), flush=True)
    return 0
