"""``edgeinf bench transport``: our protocol against bare pyzmq, same sockets, same run.

Both sides are a DEALER client and a ROUTER echo thread on TCP loopback. "bare" sends the
payload bytes as one frame and gets a 1-byte ack; "ours" packs the same bytes as an INFER
tensor (header + metadata + zero-copy frame), the server decodes it to a numpy view and
answers a RESULT, which the client decodes. "frames" sends the very frames "ours" sends
(built once, outside the timing) and gets a RESULT header back with no encode or decode on
either side: the wire format's own cost, so that ``frames`` vs ``bare`` is what the format
costs and ``ours`` vs ``frames`` what our Python framing costs. ``client`` adds the edge
Client's I/O thread.
Multipart messages go through ``_util.send_frames``/``recv_frames`` on both sides (the
bare ROUTER too), as the Client does. ``host`` names the CPU and the load average: figures
from a shared machine or another CPU model are not comparable.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import zmq

from ..cli._util import positive
from ..transport import _util, protocol
from ..transport.protocol import Kind

SIZES = {"64k": 64 * 1024, "1m": 2**20, "8m": 8 * 2**20}


def register(sub) -> None:
    p = sub.add_parser("transport", help="protocol overhead vs bare pyzmq (RTT, 64 KB / 1 MB / 8 MB)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--seconds", type=positive, default=1.0, help="time per measurement (default 1)")
    p.set_defaults(func=run)


_RESULT_HEAD = protocol.encode(Kind.RESULT, {"id": 1, "tensors": []})[0]


def _server(ctx, endpoint, mode, ready, stop):
    s = _util.socket(ctx, zmq.ROUTER)
    s.bind(endpoint)
    ready.set()
    while not stop.is_set():
        if not s.poll(50):
            continue
        frames = _util.recv_frames(s)
        if mode == "bare":
            _util.send_frames(s, [frames[0], b"k"])
            continue
        if mode == "frames":
            _util.send_frames(s, [frames[0], _RESULT_HEAD])
            continue
        msg = protocol.decode(frames[1:])
        msg.arrays()  # the numpy views a worker would run on
        _util.send_frames(s, [frames[0], *protocol.encode(Kind.RESULT, {"id": msg.id, "tensors": []})])
    s.close(linger=0)


def _timed(fn, seconds: float) -> list:
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def _measure(fn, seconds: float) -> float:
    """Median seconds per call over ``seconds`` (after a warm-up)."""
    for _ in range(3):
        fn()
    return float(np.median(_timed(fn, seconds)))


def _calls(socks, arr) -> dict:
    def bare():
        socks["bare"].send(arr, copy=False)
        socks["bare"].recv(copy=False)

    meta = {"id": 1, "budget_ms": 1000, "pkg": "0" * 64, "cut": "c", "codec": "raw"}

    def ours():
        specs, frames = protocol.pack_raw({"t": arr})
        _util.send_frames(socks["ours"], protocol.encode(Kind.INFER, {**meta, "tensors": specs}, frames))
        protocol.decode(_util.recv_frames(socks["ours"])).arrays()

    specs, frames = protocol.pack_raw({"t": arr})
    built = protocol.encode(Kind.INFER, {**meta, "tensors": specs}, frames)

    def frames_only():
        _util.send_frames(socks["frames"], built)
        _util.recv_frames(socks["frames"])

    return {"bare": bare, "ours": ours, "frames": frames_only}


def _pairs(seconds: float, payloads: dict, rounds: int = 8) -> dict:
    """Median s/call per mode and payload. The modes alternate in short rounds so that the
    drifts of a shared machine hit both alike."""
    ctx = zmq.Context()
    stop, threads, socks = threading.Event(), [], {}
    try:
        for mode in ("bare", "ours", "frames"):
            ready, ep = threading.Event(), f"tcp://127.0.0.1:{_free_port()}"
            th = threading.Thread(target=_server, args=(ctx, ep, mode, ready, stop), daemon=True)
            th.start()
            threads.append(th)
            ready.wait(5)
            socks[mode] = _util.socket(ctx, zmq.DEALER)
            socks[mode].connect(ep)
        out = {k: {} for k in ("bare", "ours", "frames", "cpu_bare", "cpu_ours", "cpu_frames")}
        for name, arr in payloads.items():
            calls = _calls(socks, arr)
            samples, cpu = {m: [] for m in calls}, {m: 0.0 for m in calls}
            for fn in calls.values():
                for _ in range(3):
                    fn()
            for _ in range(rounds):
                for mode, fn in calls.items():
                    c0 = time.process_time()
                    samples[mode] += _timed(fn, seconds / rounds)
                    cpu[mode] += time.process_time() - c0
            for mode in calls:
                out[mode][name] = float(np.median(samples[mode]))
                # NOTE: CPU of the whole process (both ends, libzmq's I/O threads) per round trip:
                # what other jobs on a shared machine inflate in wall time but not here
                out["cpu_" + mode][name] = cpu[mode] / len(samples[mode])
        return out
    finally:
        stop.set()
        for th in threads:
            th.join(5)
        for sock in socks.values():
            sock.close(linger=0)
        ctx.term()


def _client_rtt(seconds: float) -> float:
    """Small-message RTT through the full edge Client (its I/O thread and Future)."""
    from ..transport.client import Client

    ctx = zmq.Context()
    ready, stop = threading.Event(), threading.Event()
    ep = f"tcp://127.0.0.1:{_free_port()}"
    th = threading.Thread(target=_echo_worker, args=(ctx, ep, ready, stop), daemon=True)
    th.start()
    ready.wait(5)
    specs, frames = protocol.pack_raw({"t": np.zeros(16, np.float32)})
    try:
        with Client([ep]) as cl:
            cl.wait_ready(5)
            return _measure(lambda: cl.infer("0" * 64, "c", specs, frames, timeout=1.0), seconds)
    finally:
        stop.set()
        th.join(5)
        ctx.term()


def _echo_worker(ctx, ep, ready, stop):
    s = _util.socket(ctx, zmq.ROUTER)
    s.bind(ep)
    ready.set()
    while not stop.is_set():
        if not s.poll(50):
            continue
        frames = _util.recv_frames(s)
        msg = protocol.decode(frames[1:])
        kind = Kind.RESULT if msg.kind == Kind.INFER else msg.kind
        meta = {"id": msg.id, "tensors": []} if kind == Kind.RESULT else {}
        _util.send_frames(s, [frames[0], *protocol.encode(kind, meta)])
    s.close(linger=0)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(seconds: float = 1.0) -> dict:
    payloads = {"rtt_small": np.zeros(16, np.float32),
                **{k: np.random.default_rng(0).integers(0, 255, n, dtype=np.uint8) for k, n in SIZES.items()}}
    load_before = os.getloadavg()[0]
    res = _pairs(seconds, payloads)
    bare, ours, cbare, cours = res["bare"], res["ours"], res["cpu_bare"], res["cpu_ours"]
    frames = res["frames"]
    report = {"host": _host(load_before), "rtt_small": {
        "bare_us": _us(bare["rtt_small"]), "ours_us": _us(ours["rtt_small"]),
        "added_us": _us(ours["rtt_small"] - bare["rtt_small"]),
        "format_added_us": _us(frames["rtt_small"] - bare["rtt_small"]),
        "framing_added_us": _us(ours["rtt_small"] - frames["rtt_small"]), "client_us": _us(_client_rtt(seconds)),
        "cpu_bare_us": _us(cbare["rtt_small"]), "cpu_ours_us": _us(cours["rtt_small"]),
        "cpu_added_us": _us(cours["rtt_small"] - cbare["rtt_small"])}}
    for k, n in SIZES.items():
        report[k] = {"bytes": n, "ratio": round(ours[k] / bare[k], 3), "gbps": round(n * 8 / ours[k] / 1e9, 2),
                     "bare_gbps": round(n * 8 / bare[k] / 1e9, 2), "ours_ms": round(ours[k] * 1e3, 3),
                     "cpu_ratio": round(cours[k] / cbare[k], 3), "frames_ratio": round(frames[k] / bare[k], 3)}
    return report


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


def _host(load_before: float) -> dict:
    """What the figures depend on: the CPU (EPYC and Xeon differ) and how busy the machine was."""
    from ..profiling.host import cpu_model

    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "pyzmq": zmq.__version__,
            "framing": "python (EDGEINF_PY_WIRE=1)" if protocol._wire_decode is None else "native",
            "libzmq": zmq.zmq_version(), "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def run(args) -> int:
    from ..cli._util import print_json

    report = measure(args.seconds)
    if args.json:
        print_json(report)
        return 0
    h = report["host"]
    print(f"{h['cpu']} ({h['logical_cores']} logical cores), {h['framing']} framing, pyzmq {h['pyzmq']} / libzmq {h['libzmq']}, "
          f"load average {h['load_avg_1m'][0]} -> {h['load_avg_1m'][1]}")
    r = report["rtt_small"]
    print(f"small-message RTT: bare {r['bare_us']} us, ours {r['ours_us']} us (+{r['added_us']} us: "
          f"+{r['format_added_us']} wire format, +{r['framing_added_us']} framing); "
          f"through Client {r['client_us']} us; CPU per round trip bare {r['cpu_bare_us']} us, "
          f"ours {r['cpu_ours_us']} us (+{r['cpu_added_us']} us)")
    for k in SIZES:
        v = report[k]
        print(f"{k:>4}: ours/bare time ratio {v['ratio']:.3f} (CPU {v['cpu_ratio']:.3f}; format alone "
              f"{v['frames_ratio']:.3f}), "
              f"ours {v['gbps']} Gbit/s, bare {v['bare_gbps']} Gbit/s")
    return 0
