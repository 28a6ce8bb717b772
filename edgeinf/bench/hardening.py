"""``edgeinf bench hardening``: attack a real worker (and broker) process and count what breaks.

* structured fuzz (:mod:`edgeinf.transport.fuzz`): ``--n`` mutated messages per process,
  each followed by a sentinel; deaths (target 0), replies by kind, ERROR codes, silence,
  RSS before/after;
* attack classes, RSS growth each: messages of 81 frames x 4 MiB, JPEG streams claiming
  10000x10000, tensors declaring 200 MiB, raw TCP connections writing garbage;
* BUSY latency under a burst: a full worker and 40 x 600 kB requests from 8 clients at once
  (target p99 < 10 ms).
"""
from __future__ import annotations

import json
import os
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .. import imagecodec
from ..cli._util import positive_int
from ..package import open_package
from ..transport import fuzz, protocol, testing
from ..transport.protocol import Kind


def register(sub) -> None:
    p = sub.add_parser("hardening", help="structured fuzz + attack classes against live worker/broker processes")
    p.add_argument("--n", type=positive_int, default=100_000, help="structured-fuzz messages per process (default 10^5)")
    p.add_argument("--no-broker", action="store_true", help="fuzz the worker only")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field)) / 1024


def zmtp_claim(host: str, port: int, nbytes: int) -> socket.socket:
    """A raw TCP peer that completes a ZMTP 3.0 NULL handshake as a DEALER, then starts a
    frame declaring ``nbytes`` and sends almost nothing of it (the connection stays open)."""
    s = socket.create_connection((host, port), timeout=2)
    greeting = b"\xff" + bytes(8) + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + b"\0" + bytes(31)
    ready = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    s.sendall(greeting + b"\x04" + bytes([len(ready)]) + ready)
    s.sendall(b"\x02" + struct.pack(">Q", nbytes) + bytes(4096))
    return s


def make_image_package(out_dir, shape=(1, 64, 48, 3)) -> Path:
    """A package whose model takes an NHWC float image and returns its mean (for image codecs)."""
    from onnx import TensorProto, helper

    from ..package import PackageWriter
    from ..types import TensorSpec

    out_dir = Path(out_dir)
    if (out_dir / "edgeinf.json").exists():
        return out_dir
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2, 3], keepdims=0)
    g = helper.make_graph([node], "mean", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0]])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    pw = PackageWriter(out_dir, name="mean")
    pw.set_model("model.onnx", model.SerializeToString(), [TensorSpec("x", shape, np.dtype("float32"))],
                 [TensorSpec("y", (shape[0],), np.dtype("float32"))])
    return pw.save()


def lying_jpeg(shape=(1, 64, 48, 3), claim=(10000, 10000)) -> bytes:
    """A valid jpeg90 buffer for ``shape`` whose JPEG frame header claims ``claim`` pixels."""
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[1]), np.linspace(0, 1, shape[2]), indexing="ij")
    buf = imagecodec.encode(np.stack([yy, xx, yy * xx], -1)[None].astype(np.float32), "jpeg90")
    i = buf.index(b"\xff\xc0", imagecodec.HEAD.size + 4 * len(shape))
    return buf[: i + 5] + struct.pack(">HH", *claim) + buf[i + 9:]


def _fuzz(proc, endpoint, bases, n, chunk=5000) -> dict:
    before, t0, reports = rss_mb(proc.proc.pid), time.monotonic(), []
    for i in range(0, n, chunk):
        reports.append(fuzz.run(endpoint, bases, min(chunk, n - i), seed=i).to_dict())
        if proc.proc.poll() is not None:
            break
    total = {"sent": 0, "replies": {}, "codes": {}, "bad_replies": 0, "lost_sentinels": 0}
    for r in reports:
        for k in ("sent", "bad_replies", "lost_sentinels"):
            total[k] += r[k]
        for k in ("replies", "codes"):
            for name, v in r[k].items():
                total[k][name] = total[k].get(name, 0) + v
    alive = proc.proc.poll() is None
    total.update(deaths=0 if alive else 1, seconds=round(time.monotonic() - t0, 1),
                 rss_before_mb=round(before, 1), rss_after_mb=round(rss_mb(proc.proc.pid), 1) if alive else None)
    return total


def _attack(w, name, fn, probe) -> dict:
    before = rss_mb(w.proc.pid)
    peak = [before]
    stop = threading.Event()

    def watch():
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_mb(w.proc.pid))

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    t0 = time.monotonic()
    count = fn()
    secs = time.monotonic() - t0
    time.sleep(0.3)
    stop.set()
    t.join()
    return {"attack": name, "messages": count, "seconds": round(secs, 2), "rss_before_mb": round(before, 1),
            "rss_peak_growth_mb": round(peak[0] - before, 1), "rss_after_growth_mb": round(rss_mb(w.proc.pid) - before, 1),
            "alive_and_serving": w.proc.poll() is None and probe()}


def _attacks(w, pkg, img_pkg) -> list:
    import zmq

    ctx = zmq.Context.instance()

    def client():
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(w.endpoint)
        return s

    def probe():
        with testing.RawClient(w.endpoint) as c:
            specs, frames = protocol.pack_raw({"x": np.zeros((1, 16), np.float32)})
            c.send_msg(Kind.INFER, {"id": 1, "budget_ms": 10000, "pkg": pkg.hash, "tensors": specs,
                                    "client": f"p{time.monotonic_ns()}"}, frames)
            r = c.recv(10)
            return r is not None and r.kind == Kind.RESULT

    def big_frames(n=20):
        head = protocol.encode(Kind.INFER, {"id": 1, "budget_ms": 1e4, "pkg": pkg.hash, "tensors": []})[0]
        big = b"\0" * (4 * 2**20)
        for _ in range(n):
            s = client()
            s.send_multipart([head, *[big] * 80], copy=False)
            time.sleep(0.05)
            s.close(linger=0)
        return n

    def liars(n=200):
        specs = [{"name": "x", "dtype": "float32", "shape": [1, 64, 48, 3]}]
        frame = lying_jpeg()
        with testing.RawClient(w.endpoint) as c:
            for rid in range(n):
                c.send_msg(Kind.INFER, {"id": rid, "budget_ms": 1e4, "pkg": img_pkg.hash, "codec": "jpeg90",
                                        "tensors": specs, "client": "liar"}, [frame])
                c.recv(10)
        return n

    def claims(n=1000):
        specs = [{"name": "x", "dtype": "float32", "shape": [1, 50 * 2**20]}]
        with testing.RawClient(w.endpoint) as c:
            for rid in range(n):
                c.send_msg(Kind.INFER, {"id": rid, "budget_ms": 1e4, "pkg": pkg.hash, "tensors": specs}, [b"\0" * 64])
                c.recv(10)
        return n

    def garbage(n=300):
        host, port = w.endpoint.rsplit("/", 1)[1].rsplit(":", 1)
        rng = np.random.default_rng(0)
        for _ in range(n):
            with socket.create_connection((host, int(port)), timeout=2) as s:
                s.sendall(rng.bytes(int(rng.integers(1, 65536))))
        return n

    def frame_claims(n=20):
        host, port = w.endpoint.rsplit("/", 1)[1].rsplit(":", 1)
        vm = rss_mb(w.proc.pid, "VmSize")
        socks = [zmtp_claim(host, int(port), 200 * 2**20) for _ in range(n)]
        time.sleep(0.5)
        claims_vm[0] = rss_mb(w.proc.pid, "VmSize") - vm
        for s in socks:
            s.close()
        return n

    claims_vm = [None]
    out = [_attack(w, name, fn, probe) for name, fn in
           (("81 frames x 4 MiB", big_frames), ("JPEG claiming 10000x10000", liars),
            ("tensor declaring 200 MiB", claims), ("ZMTP frames claiming 200 MiB", frame_claims),
            ("raw TCP garbage", garbage))]
    out[3]["address_space_growth_mb"] = round(claims_vm[0], 1)
    out[3]["baseline_no_maxmsgsize_mb_per_conn"] = _unbounded_claim()
    return out


def _unbounded_claim(n: int = 4) -> float:
    """The same ZMTP claim at a bare ROUTER without MAXMSGSIZE, in this process (address
    space reserved per connection): what the worker's frame cap prevents."""
    import zmq

    ctx = zmq.Context()
    r = ctx.socket(zmq.ROUTER)
    r.linger = 0
    port = r.bind_to_random_port("tcp://127.0.0.1")
    vm = rss_mb(os.getpid(), "VmSize")
    socks = [zmtp_claim("127.0.0.1", port, 200 * 2**20) for _ in range(n)]
    time.sleep(0.5)
    grown = rss_mb(os.getpid(), "VmSize") - vm
    for s in socks:
        s.close()
    r.close(linger=0)
    ctx.term()
    return round(grown / n, 1)


def _bare_busy(ctx, zmq, ready, stop, box) -> None:
    """The floor: a bare pyzmq ROUTER answering every message BUSY at once (same burst)."""
    s = ctx.socket(zmq.ROUTER)
    s.linger = 0
    box.append(s.bind_to_random_port("tcp://127.0.0.1"))
    ready.set()
    while not stop.is_set():
        if not s.poll(50):
            continue
        frames = s.recv_multipart(copy=False)
        rid = json.loads(bytes(frames[1].buffer[protocol.HEADER.size:]))["id"]
        s.send_multipart([frames[0], *protocol.encode(Kind.BUSY, {"id": rid, "reason": "queue full"})])
    s.close(linger=0)


def _bare_burst(request, clients, per_client) -> list:
    import zmq

    ready, stop, box = threading.Event(), threading.Event(), []
    ctx = zmq.Context()
    t = threading.Thread(target=_bare_busy, args=(ctx, zmq, ready, stop, box), daemon=True)
    t.start()
    ready.wait(5)
    lat = []
    for _ in range(3):
        lat += _burst(f"tcp://127.0.0.1:{box[0]}", request, clients, per_client, zmq)
    stop.set()
    t.join(5)
    ctx.term()
    return lat


def _busy_burst(slow_dir, big_dir, clients=8, per_client=5) -> dict:
    """Fill a worker (1 executor, 1 queued) with slow work, then burst 8 clients x 5 requests
    at it, of 600 kB (mobilenet input: 23 MB in all) and of 3 kB; same bursts at bare pyzmq."""
    import zmq

    slow, big = open_package(slow_dir), open_package(big_dir)
    requests = {"600kB": (big, {"input": np.zeros((1, 3, 224, 224), np.float32)}),
                "3kB": (slow, {"x": np.zeros((1, 768), np.float32)})}
    out = {}
    with testing.worker(slow_dir, "--package", str(big_dir), "--workers", "1", "--queue", "1", "--threads", "1",
                        "--per-client", "2") as w:
        fill = testing.RawClient(w.endpoint)
        specs, frames = protocol.pack_raw(requests["3kB"][1])
        for name, request in requests.items():
            lat = []
            for r in range(3):
                for rid in range(2):
                    meta = {"id": r * 10 + rid, "budget_ms": 6e4, "pkg": slow.hash, "tensors": specs, "client": name}
                    fill.send_msg(Kind.INFER, meta, frames)
                time.sleep(0.05)
                lat += _burst(w.endpoint, request, clients, per_client, zmq)
                for _ in range(2):
                    fill.recv(30)
            out[name] = (np.array(lat) * 1e3, np.array(_bare_burst(request, clients, per_client)) * 1e3)
        fill.close()
    pct = lambda a, q: round(float(np.percentile(a, q)), 2) if len(a) else None  # noqa: E731
    return {name: {"burst_mb": round(clients * per_client * sum(a.nbytes for a in req[1].values()) / 2**20, 2),
                   "rounds": 3, "busy_answers": int(len(lat)), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                   "bare_zmq_p50_ms": pct(bare, 50), "bare_zmq_p99_ms": pct(bare, 99)}
            for (name, (lat, bare)), req in zip(out.items(), requests.values())}


def _burst(endpoint, request, clients, per_client, zmq) -> list:
    pkg, arrays = request
    specs, frames = protocol.pack_raw(arrays)
    socks = [zmq.Context.instance().socket(zmq.DEALER) for _ in range(clients)]
    for s in socks:
        s.linger = 0
        s.connect(endpoint)
    time.sleep(0.1)  # connected before the clock starts
    sent = {}
    for rid in range(per_client):
        for i, s in enumerate(socks):
            sent[(i, rid)] = time.perf_counter()
            s.send_multipart(protocol.encode(Kind.INFER, {"id": rid, "budget_ms": 6e4, "pkg": pkg.hash,
                                                          "tensors": specs}, frames), copy=False)
    lat, end = [], time.monotonic() + 10
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    while len(lat) < len(sent) and time.monotonic() < end:
        for s, _ in poller.poll(100):
            m = protocol.decode(s.recv_multipart())
            if m.kind == Kind.BUSY:
                lat.append(time.perf_counter() - sent[(socks.index(s), m.id)])
    for s in socks:
        s.close(linger=0)
    return lat


def run(args) -> int:
    tmp = Path(os.environ.get("EDGEINF_BENCH_DIR") or tempfile.mkdtemp(prefix="edgeinf-hardening-"))
    fast_dir = testing.make_slow_package(tmp / "fast", size=16, depth=1)
    slow_dir = testing.make_slow_package(tmp / "slow")
    img_dir = make_image_package(tmp / "mean")
    big_dir = testing.make_split_package(tmp / "mnv2")
    fast, img = open_package(fast_dir), open_package(img_dir)
    bases = [fuzz.infer_base(fast.hash, {"x": np.zeros((1, 16), np.float32)}), *fuzz.control_bases()]
    out = {"n": args.n, "cores": os.cpu_count(), "note": "shared 2-core machine" if os.cpu_count() <= 2 else ""}
    with testing.worker(fast_dir, "--package", str(img_dir), "--threads", "1") as w:
        out["worker_fuzz"] = _fuzz(w, w.endpoint, bases, args.n)
        out["attacks"] = _attacks(w, fast, img)
    if not args.no_broker:
        out["broker_fuzz"] = _broker_fuzz(fast_dir, bases, args.n)
    out["busy_burst"] = _busy_burst(slow_dir, big_dir)
    print(json.dumps(out) if args.json else _table(out))
    dead = out["worker_fuzz"]["deaths"] + (out.get("broker_fuzz") or {}).get("deaths", 0)
    return 1 if dead or not all(a["alive_and_serving"] for a in out["attacks"]) else 0


def _broker_fuzz(fast_dir, bases, n):
    try:
        b = testing.broker()
    except Exception as e:  # noqa: BLE001 - the broker is optional here; say why it was skipped
        return {"skipped": f"broker did not start: {e}"}
    with b, testing.Proc(["worker", "--connect", b.backend, "--package", str(fast_dir), "--no-verify",
                          "--threads", "1"]) as w:
        time.sleep(1.0)  # registered by its first heartbeat
        res = _fuzz(b, b.endpoint, bases, n)
        res["worker_behind_alive"] = w.proc.poll() is None
        return res


def _table(out) -> str:
    lines = []
    for k in ("worker_fuzz", "broker_fuzz"):
        if k in out:
            lines.append(f"{k}: {json.dumps(out[k])}")
    for a in out["attacks"]:
        lines.append(f"attack {a['attack']:<28} {a['messages']:>5} msgs  RSS peak +{a['rss_peak_growth_mb']} MB, "
                     f"after +{a['rss_after_growth_mb']} MB  alive+serving {a['alive_and_serving']}")
    lines.append(f"BUSY under a burst: {json.dumps(out['busy_burst'])}")
    return "\n".join(lines)
