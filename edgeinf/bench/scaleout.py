"""``edgeinf bench scaleout``: the Ray Serve front vs itself at 1 and 2 replicas, vs the plain
worker, and under a replica kill -9.

Every number comes through the ZeroMQ front with raw DEALER clients that count every reply
frame by request id (so a duplicate cannot hide in a client library): ``lost`` = no reply by
the budget + 1 s, ``duplicated`` = more than one reply for one id. The tail is the
graph is a CPU-bound MatMul chain with a 1 kB input (``--tail mobilenetv2``: the test
package's full model, whose 600 kB input Ray moves through its object store), one intra-op
thread and one slot per replica. All on
this host: a local Ray instance on 127.0.0.1 with ``num_cpus`` = the machine's cores, the
front and the load generator in this process.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from ..cli._util import positive, positive_int

SCALEOUT_KEYS = ("replicas_1", "replicas_2", "scale_ratio", "ray_vs_worker", "kill")


def register(sub) -> None:
    p = sub.add_parser("scaleout", help="Ray Serve front: 1 vs 2 replicas, vs the plain worker, replica kill -9")
    p.add_argument("--seconds", type=positive, default=8.0, help="load per measurement (default 8)")
    p.add_argument("--clients", type=positive_int, default=4, help="closed-loop clients (default 4)")
    p.add_argument("--window", type=positive_int, default=2, help="requests each client keeps in flight (default 2)")
    p.add_argument("--rounds", type=positive_int, default=2,
                   help="1- and 2-replica measurements alternate this many times; medians reported (default 2)")
    p.add_argument("--tail", choices=["matmul", "mobilenetv2"], default="matmul",
                   help="the graph served: a CPU-bound MatMul chain with a 1 kB input (default; about 15 ms on "
                        "one thread here) or mobilenetv2's full model (600 kB input: Ray moves it through its object store)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


# -- the load generator ---------------------------------------------------------------------
def drive(endpoint: str, pkg: str, cut: Optional[str], inputs: Dict[str, np.ndarray], *, clients: int = 4,
          window: int = 2, seconds: float = 5.0, budget_ms: float = 3000.0, during=None) -> dict:
    """Closed-loop load: ``clients`` DEALERs each keep ``window`` INFERs in flight for
    ``seconds``; ``during(t0)`` runs in its own thread meanwhile (a kill, say). Returns every
    request's replies: ``{(client, id): {"sent": t, "replies": [(kind, t), ...]}}`` plus timing."""
    from ..transport import protocol

    specs, frames = protocol.pack_raw(inputs)
    records: Dict[tuple, dict] = {}
    lock = threading.Lock()
    t0 = time.monotonic()
    side = threading.Thread(target=during, args=(t0,), daemon=True) if during else None
    threads = [threading.Thread(target=_client, daemon=True,
                                args=(endpoint, f"bench-{i}-{os.getpid()}", pkg, cut, specs, frames, window,
                                      t0 + seconds, budget_ms, records, lock)) for i in range(clients)]
    for t in threads + ([side] if side else []):
        t.start()
    for t in threads:
        t.join(seconds + budget_ms / 1e3 + 10)
    if side:
        side.join(60)
    return {"records": records, "seconds": seconds, "t0": t0}


def _client(endpoint, name, pkg, cut, specs, frames, window, stop_at, budget_ms, records, lock):
    import zmq

    from ..transport import protocol
    from ..transport.protocol import Kind

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    rid, outstanding = 0, {}
    try:
        while True:
            now = time.monotonic()
            while now < stop_at and len(outstanding) < window:
                rid += 1
                meta = {"id": rid, "client": name, "pkg": pkg, "cut": cut, "codec": "raw", "tensors": specs,
                        "budget_ms": budget_ms}
                sock.send_multipart(protocol.encode(Kind.INFER, meta, frames), copy=False)
                outstanding[rid] = now + budget_ms / 1e3 + 1.0
                with lock:
                    records[(name, rid)] = {"sent": now, "replies": []}
            if not outstanding and now >= stop_at:
                return
            if outstanding and now > min(outstanding.values()):  # lost: give up on it
                for k in [k for k, end in outstanding.items() if now > end]:
                    outstanding.pop(k)
                continue
            if sock.poll(50):
                msg = protocol.decode(sock.recv_multipart())
                t = time.monotonic()
                with lock:
                    rec = records.get((name, msg.id))
                    if rec is not None:
                        rec["replies"].append((msg.kind.name, t))
                outstanding.pop(msg.id, None)
            if now >= stop_at and not outstanding:
                return
    finally:
        # NOTE: late duplicates arrive after the loop; give them a moment to be counted
        end = time.monotonic() + 0.3
        while time.monotonic() < end and sock.poll(50):
            msg = protocol.decode(sock.recv_multipart())
            with lock:
                rec = records.get((name, msg.id))
                if rec is not None:
                    rec["replies"].append((msg.kind.name, time.monotonic()))
        sock.close(linger=0)


def drive_elsewhere(endpoint: str, pkg: str, *, clients: int = 4, window: int = 2, seconds: float = 5.0,
                    budget_ms: float = 3000.0, during=None, input_name: str = "input",
                    shape=(1, 3, 224, 224)) -> dict:
    """:func:`drive` in a child process (as devices are: not sharing the front's interpreter
    and GIL) on the test package's input shape; returns its :func:`summarize`. ``during(t0)``
    runs here meanwhile."""
    import subprocess
    import sys

    args = json.dumps({"endpoint": endpoint, "pkg": pkg, "clients": clients, "window": window,
                       "seconds": seconds, "budget_ms": budget_ms, "input": input_name, "shape": list(shape)})
    child = subprocess.Popen([sys.executable, "-m", "edgeinf.bench.scaleout", args], stdout=subprocess.PIPE, text=True)
    side = threading.Thread(target=during, args=(time.monotonic(),), daemon=True) if during else None
    if side:
        side.start()
    out, _ = child.communicate(timeout=seconds + budget_ms / 1e3 + 60)
    if side:
        side.join(60)
    if child.returncode != 0:
        raise RuntimeError(f"load generator exited {child.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def _drive_main(spec: str) -> None:
    a = json.loads(spec)
    x = np.random.default_rng(0).random(tuple(a["shape"]), np.float32)
    run = drive(a["endpoint"], a["pkg"], None, {a["input"]: x}, clients=a["clients"], window=a["window"],
                seconds=a["seconds"], budget_ms=a["budget_ms"])
    print(json.dumps(summarize(run)), flush=True)


def summarize(run: dict) -> dict:
    recs = run["records"].values()
    lat = sorted((r["replies"][0][1] - r["sent"]) * 1e3 for r in recs if r["replies"] and r["replies"][0][0] == "RESULT")
    kinds: Dict[str, int] = {}
    for r in recs:
        if r["replies"]:
            kinds[r["replies"][0][0]] = kinds.get(r["replies"][0][0], 0) + 1
    q = (lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None)
    return {"sent": len(recs), "ok": len(lat), "outcomes": kinds, "rps": round(len(lat) / run["seconds"], 2),
            "p50_ms": q(0.5), "p99_ms": q(0.99),
            "lost": sum(1 for r in recs if not r["replies"]),
            "duplicated": sum(1 for r in recs if len(r["replies"]) > 1)}


# -- the suite ------------------------------------------------------------------------------
MATMUL = (256, 48)  # width, depth of the MatMul chain: about 15 ms on one thread here


def _package(tail: str = "matmul"):
    """(package, input name, input shape) of the served graph."""
    from .. import config
    from ..package import open_package
    from ..transport.testing import make_slow_package, make_split_package

    if tail == "mobilenetv2":
        return open_package(make_split_package(config.cache_dir() / "bench" / "mnv2-split")), "input", (1, 3, 224, 224)
    w, d = MATMUL
    return open_package(make_slow_package(config.cache_dir() / "bench" / f"matmul-{w}x{d}", w, d)), "x", (1, w)


def _serving(front):
    t = threading.Thread(target=front.serve, daemon=True)
    t.start()
    return t


def _with_front(cluster, pkg, replicas: int, fn):
    from ..scale.front import RayFront, ScaleConfig
    from ..scale.policy import Scaling
    from ..worker import WorkerConfig

    front = RayFront([pkg], WorkerConfig(bind="tcp://127.0.0.1:*", queue=16),
                     ScaleConfig(tails=Scaling(replicas, replicas)), cluster=cluster)
    front.initialize()
    t = _serving(front)
    try:
        cluster.wait_replicas("edgeinf-tails", replicas, 60)
        return fn(front)
    finally:
        front.stop()
        t.join(30)
        front.finalize()


def _worker_p50(pkg, feed, seconds) -> dict:
    from ..worker import Worker, WorkerConfig

    w = Worker([pkg], WorkerConfig(bind="tcp://127.0.0.1:*", workers=1, threads=1)).initialize()
    t = _serving(w)
    try:
        return drive_elsewhere(w.endpoint, pkg.hash, clients=1, window=1, seconds=seconds, **feed)
    finally:
        w.stop()
        t.join(30)
        w.finalize()


def kill_during(cluster, app: str = "edgeinf-tails", at_s: float = 2.0, out: Optional[dict] = None):
    """A ``during`` callback for :func:`drive`: kill -9 one replica at ``at_s``, then time how
    long until Ray runs a fresh one (a new PID) and the app is back to its replica count."""
    import signal

    from ..scale.cluster import replica_pids

    out = {} if out is None else out

    def during(t0):
        before = replica_pids(app)
        n = cluster.replicas(app)
        time.sleep(max(0.0, t0 + at_s - time.monotonic()))
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        out["victim"] = victim
        while time.monotonic() - killed < 60:
            pids = replica_pids(app)
            if len(pids) >= n and victim not in pids and set(pids) - set(before) and cluster.replicas(app) == n:
                out["recovery_s"] = round(time.monotonic() - killed, 2)
                return
            time.sleep(0.1)
        out["recovery_s"] = None

    return during


def _cpu_s(pids) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _ray_pids(app: str = "edgeinf-tails") -> Dict[str, list]:
    import psutil

    from ..scale.cluster import replica_pids

    daemons = [p.pid for p in psutil.process_iter(["name", "cmdline"])
               if p.info["name"] in ("raylet", "gcs_server") or "ServeController" in " ".join(p.info["cmdline"] or ())]
    return {"front": [os.getpid()], "replicas": replica_pids(app), "ray_daemons": daemons}


def _loaded(front, pkg, feed, clients, window, seconds) -> dict:
    pids = _ray_pids()
    before = {k: _cpu_s(v) for k, v in pids.items()}
    s = drive_elsewhere(front.endpoint, pkg.hash, clients=clients, window=window, seconds=seconds, **feed)
    s["replica_service_ms"] = front.load()["service_ms"]  # the replicas' own time: contention shows here
    # where the CPU went, per answered request: the front (Worker + Ray handle), the replicas, Ray's daemons
    s["cpu_ms_per_request"] = {k: round((_cpu_s(v) - before[k]) * 1e3 / max(s["ok"], 1), 2) for k, v in pids.items()}
    return s


def measure(seconds: float = 8.0, clients: int = 4, window: int = 2, rounds: int = 2, tail: str = "matmul") -> dict:
    from ..scale.cluster import Cluster, RayConfig

    pkg, name, shape = _package(tail)
    feed = {"input_name": name, "shape": shape}
    res: dict = {"conditions": {"cpus": os.cpu_count(), "loadavg_1m_start": round(os.getloadavg()[0], 2),
                                "clients": clients, "window": window, "seconds": seconds, "rounds": rounds,
                                "tail": (f"MatMul chain {MATMUL[0]}x{MATMUL[0]} x {MATMUL[1]}" if tail == "matmul"
                                         else "mobilenetv2 full model") + ", 1 thread, 1 slot per replica"}}
    worker = _worker_p50(pkg, feed, min(seconds, 4.0))
    runs: Dict[int, List[dict]] = {1: [], 2: []}
    with Cluster(RayConfig()) as cluster:
        for _ in range(max(rounds, 1)):  # alternating, so a burst of load elsewhere hits both counts
            for n in (1, 2):
                runs[n].append(_with_front(cluster, pkg, n, lambda f: _loaded(f, pkg, feed, clients, window, seconds)))
        ray1 = _with_front(cluster, pkg, 1, lambda f: drive_elsewhere(f.endpoint, pkg.hash, clients=1, window=1,
                                                                      seconds=min(seconds, 4.0), **feed))
        kill: dict = {}
        s = _with_front(cluster, pkg, 2, lambda f: drive_elsewhere(
            f.endpoint, pkg.hash, clients=clients, window=window, seconds=max(seconds, 6.0),
            during=kill_during(cluster, at_s=3.0, out=kill), **feed))
    for n in (1, 2):
        med = lambda k: float(np.median([r[k] for r in runs[n]]))  # noqa: E731
        res[f"replicas_{n}"] = {"rps": round(med("rps"), 2), "p50_ms": round(med("p50_ms"), 2),
                                "p99_ms": round(med("p99_ms"), 2)}
        res[f"replicas_{n}_rounds"] = runs[n]
    res["scale_ratio"] = round(res["replicas_2"]["rps"] / max(res["replicas_1"]["rps"], 1e-9), 3)
    res["scale_ratio_rounds"] = [round(b["rps"] / max(a["rps"], 1e-9), 3) for a, b in zip(runs[1], runs[2])]
    res["ray_vs_worker"] = round(ray1["p50_ms"] / worker["p50_ms"], 3) if ray1["p50_ms"] and worker["p50_ms"] else None
    res["latency_1_client"] = {"worker_p50_ms": worker["p50_ms"], "ray_p50_ms": ray1["p50_ms"]}
    res["kill"] = {"sent": s["sent"], "lost": s["lost"], "duplicated": s["duplicated"],
                   "recovery_s": kill.get("recovery_s"), "outcomes": s["outcomes"]}
    res["conditions"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    return res


def run(args) -> int:
    import contextlib
    import sys

    # NOTE: Ray's driver prints raylet notices (a killed replica) to stdout: keep them off --json's line
    with contextlib.redirect_stdout(sys.stderr):
        res = measure(args.seconds, args.clients, args.window, args.rounds, args.tail)
    if args.json:
        print(json.dumps(res))
        return 0
    for n in (1, 2):
        r = res[f"replicas_{n}"]
        print(f"replicas {n}: {r['rps']:.1f} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    print(f"scale ratio 2/1: {res['scale_ratio']:.2f}x (target >= 1.6 on 2 cores; rounds {res['scale_ratio_rounds']}, "
          f"replica service ms {[r['replica_service_ms'] for r in res['replicas_1_rounds']]} at 1 vs "
          f"{[r['replica_service_ms'] for r in res['replicas_2_rounds']]} at 2)")
    print(f"Ray path vs plain worker, p50 at one request in flight: {res['ray_vs_worker']}x "
          f"({res['latency_1_client']})")
    k = res["kill"]
    print(f"kill -9 of a replica: sent {k['sent']}, lost {k['lost']}, duplicated {k['duplicated']}, "
          f"recovered in {k['recovery_s']} s; outcomes {k['outcomes']}")
    print(f"conditions: {res['conditions']}")
    return 0


if __name__ == "__main__":  # the load generator's child process (drive_elsewhere)
    import sys

    _drive_main(sys.argv[1])
