"""``edgeinf bench broker``: at-most-once under a stalled worker, fairness, BUSY under a burst.

Real ``edgeinf broker`` and ``edgeinf worker --connect`` processes on loopback:

* **stall**: 20 requests over two workers, one SIGSTOPped until the broker drops it and
  re-dispatches, then SIGCONT; answers counted per request id (target: 0 duplicates).
* **fairness**: a client sends 200 requests and never reads; a second client's 10
  sequential requests must all get RESULT (target: 10/10).
* **busy_burst**: workers full; 8 clients send 3 MB each at once (24 MB); ms from send to
  BUSY, against a bare pyzmq ROUTER answering the same burst in the same run (the ratio is
  the broker's overhead; target: BUSY within 10 ms).
"""
from __future__ import annotations

import ast
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from ..cli._util import positive_int
from ..package import open_package
from ..transport import protocol, testing
from ..transport.protocol import Kind


def register(sub) -> None:
    p = sub.add_parser("broker", help="broker: duplicates after a stall, fairness, BUSY latency under a burst")
    p.add_argument("--trials", type=positive_int, default=3, help="stall trials (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _meta(pkg, rid, n=768, budget_ms=20000):
    return {"id": rid, "budget_ms": budget_ms, "pkg": pkg.hash, "cut": None,
            "tensors": [{"name": "x", "dtype": "float32", "shape": [1, n]}]}


def _worker(backend, pkg_dir, *extra):
    return testing.Proc(["worker", "--connect", backend, "--package", str(pkg_dir), "--no-verify",
                         "--threads", "1", *extra])


def _wait_nodes(endpoint, n, timeout=20.0):
    end = time.monotonic() + timeout
    with testing.RawClient(endpoint) as c:
        while c.hello()["load"]["nodes"] != n and time.monotonic() < end:
            time.sleep(0.1)


def _collect(raw, timeout, want=None):
    out, end = {}, time.monotonic() + timeout
    while time.monotonic() < end and (want is None or len(out) < want):
        m = raw.recv(min(end - time.monotonic(), 0.2))
        if m is not None and m.id is not None:
            out.setdefault(m.id, []).append(m.kind.name)
    return out


def _stall(pkg, pkg_dir, frames, n=20) -> dict:
    with testing.broker("--heartbeat", "0.2", "--per-client", "64") as b, \
            _worker(b.backend, pkg_dir, "--workers", "1", "--queue", "30") as wa, \
            _worker(b.backend, pkg_dir, "--workers", "1", "--queue", "30"):
        _wait_nodes(b.endpoint, 2)
        with testing.RawClient(b.endpoint) as raw:
            for rid in range(n):
                raw.send_msg(Kind.INFER, _meta(pkg, rid), frames)
            time.sleep(0.15)
            wa.signal(signal.SIGSTOP)
            time.sleep(1.5)
            wa.signal(signal.SIGCONT)
            got = _collect(raw, 30, want=n)
            for rid, kinds in _collect(raw, 2.0).items():
                got.setdefault(rid, []).extend(kinds)
            stats = raw.hello()["stats"]
        wa.signal(signal.SIGTERM)  # its exit line says how much of its backlog it still ran
        wa.wait(60)
        line = next((ln for ln in wa.stderr().splitlines() if "stopped; stats" in ln), "")
        stalled = ast.literal_eval(line.split("stats ", 1)[1]) if line else {}
    return {"answered": len(got), "duplicates": sum(len(v) - 1 for v in got.values()),
            "redispatched": stats["redispatched"], "late_dropped": stats["late_dropped"],
            "stalled_worker_executed": stalled.get("executed"), "stalled_worker_cancelled": stalled.get("cancelled")}


def _fairness(pkg, pkg_dir, frames) -> dict:
    with testing.broker("--heartbeat", "0.2", "--per-client", "2") as b, \
            _worker(b.backend, pkg_dir, "--workers", "1", "--queue", "7"):
        _wait_nodes(b.endpoint, 1)
        hog = zmq.Context.instance().socket(zmq.DEALER)
        hog.linger, hog.rcvhwm = 0, 1
        hog.connect(b.endpoint)
        for rid in range(200):
            hog.send_multipart(protocol.encode(Kind.INFER, _meta(pkg, rid), frames), copy=False)
        kinds = []
        with testing.RawClient(b.endpoint) as good:
            for rid in range(10):
                good.send_msg(Kind.INFER, _meta(pkg, rid), frames)
                got = _collect(good, 20, want=1)
                kinds.append(got.get(rid, ["lost"])[0])
        hog.close()
    return {"good_results": kinds.count("RESULT"), "good_requests": len(kinds), "good_kinds": sorted(set(kinds))}


def _burst(endpoint, pkg, clients=8, nbytes=3 * 2**20) -> list:
    """ms from send to BUSY for ``clients`` simultaneous ``nbytes`` requests."""
    ctx = zmq.Context.instance()
    n = nbytes // 4
    payload = np.zeros(n, np.float32)
    socks = [ctx.socket(zmq.DEALER) for _ in range(clients)]
    for s in socks:
        s.linger = 0
        s.connect(endpoint)
    time.sleep(0.3)  # connected before the clock starts
    sent = {}
    for i, s in enumerate(socks):
        sent[i] = time.perf_counter()
        s.send_multipart(protocol.encode(Kind.INFER, _meta(pkg, i, n=n), [payload]), copy=False)
    lat, poller = [], zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    end = time.monotonic() + 10
    while len(lat) < clients and time.monotonic() < end:
        for s, _ in poller.poll(100):
            m = protocol.decode(s.recv_multipart())
            if m.kind == Kind.BUSY:
                lat.append((time.perf_counter() - sent[socks.index(s)]) * 1e3)
    for s in socks:
        s.close(linger=0)
    return lat


def _bare(ready, stop, box) -> None:
    s = zmq.Context.instance().socket(zmq.ROUTER)
    s.linger = 0
    s.bind("tcp://127.0.0.1:*")
    box["endpoint"] = s.getsockopt_string(zmq.LAST_ENDPOINT)
    ready.set()
    while not stop.is_set():
        if s.poll(50):
            frames = s.recv_multipart(copy=False)
            meta = protocol.decode(frames[1:]).meta
            s.send_multipart([frames[0], *protocol.encode(Kind.BUSY, {"id": meta["id"], "reason": "bare"})])
    s.close(linger=0)


def _busy_burst(pkg, pkg_dir, frames, slowest_dir) -> dict:
    ready, stop, box = threading.Event(), threading.Event(), {}
    t = threading.Thread(target=_bare, args=(ready, stop, box), daemon=True)
    t.start()
    ready.wait(5)
    sizes = {"24mb": 3 * 2**20, "24kb": 3 * 2**10}  # 8 clients x 3 MB, and x 3 KB (no transfer cost)
    bare = {k: _burst(box["endpoint"], pkg, nbytes=n) for k, n in sizes.items()}
    stop.set()
    t.join(5)
    with testing.broker("--heartbeat", "0.2", "--per-client", "64") as b, \
            _worker(b.backend, pkg_dir, "--package", str(slowest_dir), "--workers", "1", "--queue", "1"):
        _wait_nodes(b.endpoint, 1)
        slowest = open_package(slowest_dir)  # ~seconds a request: both bursts see a full worker
        fillers = [testing.RawClient(b.endpoint) for _ in range(2)]  # the worker's 2 slots: the rest is BUSY
        for rid, f in enumerate(fillers):
            f.send_msg(Kind.INFER, _meta(slowest, rid, budget_ms=60000), frames)
        time.sleep(0.1)
        ours = {k: _burst(b.endpoint, pkg, nbytes=n) for k, n in sizes.items()}
        for f in fillers:
            f.close()
    med = lambda v: round(float(np.median(v)), 2) if v else None  # noqa: E731
    top = lambda v: round(max(v), 2) if v else None  # noqa: E731
    return {k: {"broker_ms_median": med(ours[k]), "broker_ms_max": top(ours[k]), "bare_ms_median": med(bare[k]),
                "bare_ms_max": top(bare[k]), "busy_answers": len(ours[k]), "of": 8} for k in sizes}


def run(args) -> int:
    tmp = Path(os.environ.get("EDGEINF_BENCH_DIR") or tempfile.mkdtemp(prefix="edgeinf-broker-"))
    pkg_dir = testing.make_slow_package(tmp / "slow", size=768, depth=30)
    pkg = open_package(pkg_dir)
    frames = protocol.pack_raw({"x": np.random.default_rng(0).random((1, 768), dtype=np.float32)})[1]
    out = {"cores": os.cpu_count(), "stall": [_stall(pkg, pkg_dir, frames) for _ in range(args.trials)],
           "fairness": _fairness(pkg, pkg_dir, frames), "busy_burst": _busy_burst(pkg, pkg_dir, frames, testing.make_slow_package(tmp / "slowest", size=768, depth=300))}
    out["duplicates"] = sum(s["duplicates"] for s in out["stall"])
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {json.dumps(v)}" for k, v in out.items()))
    return 1 if out["duplicates"] or out["fairness"]["good_results"] < 10 else 0
