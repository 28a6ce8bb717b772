"""The live loop: a fixed-rate request stream, the controller, and ``EdgeRuntime``.

Requests arrive every ``1/rate`` s; the device serves them one at a time (a request that
arrives while the previous one runs waits, and its latency counts the wait). For each:
``Controller.decide`` picks a plan, :class:`edgeinf.runtime.EdgeRuntime` executes it
(local fallback on failure, by the request's deadline), and what was measured goes back
to the controller. Probes are real INFER requests of the current frame (small JPEG)
sent in the background through the runtime's client; their answers are discarded.

Local variants (a smaller model) run inside the runtime, like every other plan.
"""
from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from ..plan import Plan
from .loop import Controller, Measured
from .replay import Served

PROBE_CODEC = "jpeg50"


@dataclass
class Record:
    served: Served
    outcome: str
    reason: str
    predicted_ms: float
    t_s: float  # start, seconds on the replay clock


class LiveEdge:
    """Executes plans for the controller; see the module docstring."""

    def __init__(self, runtime, pace: float):
        self.rt, self.pace = runtime, pace
        self.input_name = runtime.package.inputs[0].name
        self._probes: "queue.SimpleQueue" = queue.SimpleQueue()
        self._probe_inflight = False

    def run(self, plan: Plan, frame: np.ndarray, deadline_s: float):
        res = self.rt.run({self.input_name: frame}, plan=plan, deadline=deadline_s)
        tm = res.timings
        # the runtime paces head/full and encode itself (EMULATED device speed)
        device = tm.get("head", tm.get("full", 0.0)) + tm.get("encode", 0.0)
        if res.outcome != "offload" and res.transport == "skipped":
            # the runtime did not try the link (too little time left): the plan cannot meet the
            # deadline now; a bound on the link (it had that long) moves the controller off it
            return res.outputs, res.outcome, Measured(plan, False, 0.0, res.bytes_sent or self._bytes(plan),
                                                      waited_ms=deadline_s * 1e3)
        if res.outcome != "offload":
            waited = tm.get("send_wait") if res.transport == "timeout" else None
            return res.outputs, res.outcome, Measured(plan, not plan.remote, device if not plan.remote else 0.0,
                                                      res.bytes_sent, waited_ms=waited)
        server = tm.get("server", 0.0)
        load = res.load or {}
        queue_ms = float(load.get("queue", 0)) * float(load.get("service_ms", 0.0))
        m = Measured(plan, True, device, res.bytes_sent, max(tm.get("send_wait", 0.0) - server, 0.0), server, queue_ms)
        return res.outputs, "offload", m

    def _bytes(self, plan: Plan) -> int:
        return 20000  # NOTE: nothing was sent; a frame-sized guess keeps the bound meaningful

    # -- probes ---------------------------------------------------------------------------
    def probe(self, frame: np.ndarray, now: Callable[[], float], timeout_s: float = 1.0) -> None:
        """Send the frame as a small JPEG in the background; the answer lands in :meth:`drain`."""
        client = self.rt.client
        if client is None or self._probe_inflight:
            return
        from ..transport import _util

        # NOTE: every 5th probe (the first included) is a flat grey frame (about 1 kB as JPEG):
        # a small transfer measures the RTT, which the bandwidth samples need subtracted
        self._n_probes = getattr(self, "_n_probes", 0) + 1
        if self._n_probes % 5 == 1:
            frame = np.full_like(frame, 0.5)
        specs, frames = _util.pack({self.input_name: frame}, PROBE_CODEC)
        nbytes = sum(memoryview(f).nbytes for f in frames)
        t0 = time.perf_counter()
        self._probe_inflight = True
        fut = client.submit(self.rt.package.hash, None, specs, frames, codec=PROBE_CODEC, timeout=timeout_s)

        def done(f):
            self._probe_inflight = False
            reply = f.result()
            if reply.ok:
                server = float(reply.message.meta.get("service_ms", 0.0))
                ms = (time.perf_counter() - t0) * 1e3 - server
                self._probes.put((now(), reply.bytes_sent or nbytes, ms))
            else:
                self._probes.put((now(), nbytes, None))

        fut.add_done_callback(done)

    def drain(self, ctl: Controller) -> None:
        """Feed finished probes to the controller (in the caller's thread)."""
        while True:
            try:
                t, nbytes, ms = self._probes.get_nowait()
            except queue.Empty:
                return
            ctl.observe_probe(t, nbytes, ms)


def stream(edge: LiveEdge, ctl: Controller, frames: List[np.ndarray], rate: float, n: int, deadline_ms: float,
           clock: Callable[[], float], accuracy: Callable[[Plan, str], float],
           on_request: Optional[Callable[[Record], None]] = None) -> List[Record]:
    """Serve ``n`` requests at ``rate``/s; times in seconds on ``clock`` (the replay clock)."""
    start = clock()
    out: List[Record] = []
    for i in range(n):
        arrival = start + i / rate
        while (left := arrival - clock()) > 0:  # one clock read: it may pass arrival in between
            time.sleep(min(left, 0.002))
        t = clock()
        edge.drain(ctl)
        d = ctl.decide(t)
        frame = frames[i % len(frames)]
        if d.probe:
            edge.probe(frame, clock)
        # NOTE: misses count from arrival (below), but the runtime's remote budget counts from
        # now: budgeting from arrival starves the link once a backlog forms, and every request
        # then pays for a skipped attempt plus the local run (a death spiral, seen here)
        _, outcome, m = edge.run(d.plan, frame, deadline_ms / 1e3)
        done = clock()
        ctl.observe(done, m)
        pred = d.predicted()
        fell = outcome == "local_fallback"
        rec = Record(Served(i, arrival * 1e3, done * 1e3, d.plan, fell, accuracy(d.plan, outcome), d.reason),
                     outcome, d.reason, pred.latency_ms if pred else float("nan"), t - start)
        out.append(rec)
        if on_request:
            on_request(rec)
    return out
