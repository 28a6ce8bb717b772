"""``edgeinf serve --ray``: a ZeroMQ front (the worker protocol, unchanged) over Ray Serve replicas."""
from __future__ import annotations

import json
import signal
import sys
import time

from ._util import non_negative, non_negative_int, positive, positive_int


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve packages and language models on autoscaled Ray Serve replicas "
                                     "behind the worker protocol")
    p.add_argument("--ray", action="store_true", required=True,
                   help="run replicas on Ray Serve (the only backend so far; pip install \"edgeinf[ray]\")")
    p.add_argument("--bind", default="tcp://127.0.0.1:5555", help="the front's ROUTER endpoint (default loopback)")
    p.add_argument("--package", action="append", default=[], metavar="DIR",
                   help="model package (repeatable); the same path must exist on every Ray node")
    p.add_argument("--llm", action="append", default=[], metavar="NAME=GGUF", help="language model (repeatable)")
    p.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (HOST:6379 or auto); default: start a local instance")
    p.add_argument("--num-cpus", type=positive_int, default=None, help="local instance: CPUs (default: this machine's)")
    p.add_argument("--min-replicas", type=non_negative_int, default=1)
    p.add_argument("--max-replicas", type=positive_int, default=2)
    p.add_argument("--llm-replicas", type=positive_int, default=1, help="language-model replicas (fixed; default 1)")
    p.add_argument("--max-ongoing", type=positive_int, default=8,
                   help="requests Ray hands one tail replica at once (default 8; --slots of them run, the rest wait there)")
    p.add_argument("--slots", type=positive_int, default=1, help="requests one tail replica runs at once (default 1)")
    p.add_argument("--replica-cpus", type=positive, default=1.0, help="Ray CPUs reserved per replica (default 1)")
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op threads per replica session (default 1)")
    p.add_argument("--deadline-ms", type=positive, default=200.0,
                   help="the devices' deadline: with the service time it sets the autoscaling target")
    p.add_argument("--service-ms", type=positive, default=None,
                   help="the tail's service time (default: measured here on the heaviest graph)")
    p.add_argument("--target", type=positive, default=None,
                   help="ongoing requests per replica to scale at (default: from --deadline-ms and --service-ms)")
    p.add_argument("--queue", type=non_negative_int, default=8, help="requests queued at the front beyond the replicas' slots")
    p.add_argument("--per-client", type=positive_int, default=None)
    p.add_argument("--curve-secret", metavar="FILE", help="the front's .key_secret: CURVE on")
    p.add_argument("--allow", metavar="DIR", help="allowed client public keys (*.key)")
    p.add_argument("--allow-plaintext", action="store_true", help="allow plaintext on a non-loopback bind")
    p.add_argument("--drain", type=non_negative, default=30.0)
    p.add_argument("--no-verify", action="store_true", help="skip hashing package files at start")
    p.add_argument("--json", action="store_true", help="on exit, print the counters as one JSON line")
    p.set_defaults(func=run)


def measure_service_ms(pkg, threads: int = 1, runs: int = 5) -> float:
    """Median time of the package's full model (offload, its heaviest graph) on zeros, here."""
    import numpy as np

    sess = pkg.session("full", threads=threads)
    feed = {s.name: np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in s.shape], s.dtype)
            for s in sess.inputs}
    sess.run(feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def run(args) -> int:
    from pathlib import Path

    from ..errors import ConfigError
    from ..package import open_package
    from ..scale.cluster import Cluster, RayConfig
    from ..scale.front import RayFront, ScaleConfig
    from ..scale.policy import Scaling, scaling_for
    from ..worker import WorkerConfig
    from ._util import llm_specs

    if not args.package and not args.llm:
        raise ConfigError("serve needs at least one --package DIR or --llm NAME=GGUF")
    llms = llm_specs(args.llm)
    pkgs = [open_package(Path(d).resolve(), verify=not args.no_verify) for d in args.package]
    if args.target is not None:
        tails = Scaling(args.min_replicas, args.max_replicas, args.target)
    elif pkgs:
        ms = args.service_ms or max(measure_service_ms(p, args.threads) for p in pkgs)
        tails = scaling_for(ms, args.deadline_ms, args.min_replicas, args.max_replicas)
    else:
        tails = Scaling(args.min_replicas, args.max_replicas)
    scale = ScaleConfig(tails=tails, llm=Scaling(args.llm_replicas, args.llm_replicas), max_ongoing=args.max_ongoing,
                        slots=args.slots, replica_cpus=args.replica_cpus, threads=args.threads)
    cfg = WorkerConfig(bind=args.bind, queue=args.queue, per_client=args.per_client, curve_secret=args.curve_secret,
                       allow_dir=args.allow, allow_plaintext=args.allow_plaintext, drain_s=args.drain)
    cluster = Cluster(RayConfig(address=args.ray_address, num_cpus=args.num_cpus))
    front = RayFront(pkgs, cfg, scale, llms=llms, cluster=cluster)
    try:
        cluster.start()
        front.initialize()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: front.stop())
        print(f"edgeinf serve: {len(pkgs)} package(s), {len(llms)} language model(s) on Ray "
              f"({tails.min_replicas}..{tails.max_replicas} tail replicas, target {tails.target:g} ongoing) "
              f"on {front.endpoint}", flush=True)
        front.serve()
    finally:
        front.finalize()
        cluster.stop()
    stats = {**front.stats, **front.scale_stats}
    print(f"edgeinf serve: stopped; stats {stats}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"stats": stats}), flush=True)
    return 0
