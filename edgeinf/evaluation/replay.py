"""Exact replay of a request stream over a trace, from measured per-plan costs.

Used for the baselines that need hindsight (best static plan, per-request oracle), for the
always-local/offload baselines when they are not run live, and to test policies offline.
The world it models is the one the live benchmark runs: one device serving requests in
order (a request waits for the previous one), a FIFO link following the trace (plus
one-way delay and outages, :class:`edgeinf.netem.Link`), a server with measured compute,
replies crossing with the delay only (they are small), and a remote attempt that gives up
after its timeout and runs the whole model locally (the runtime's fallback).
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..netem.trace import Link
from ..plan import Plan
from ..controller.costmodel import PlanCost
from ..controller.loop import Controller, Measured

#: (small, large) probe bytes when the caller does not say: AdaptiveRuntime.probe_sizes() gives
#: the real ones (an all-zero and a real request under the cheapest offload codec)
PROBE_BYTES = (1200, 16 * 1024)


@dataclass(frozen=True)
class Served:
    i: int
    arrival_ms: float
    finish_ms: float
    plan: Plan  # the plan chosen
    fell_back: bool
    accuracy: float
    reason: str = ""

    @property
    def latency_ms(self) -> float:
        return self.finish_ms - self.arrival_ms


class World:
    """Device, link and server state during a replay."""

    def __init__(self, link: Link, costs: Dict[Plan, PlanCost], fallback: Plan):
        self.link, self.costs, self.fallback = link, costs, fallback
        self.dev_free = 0.0
        self.link_free = 0.0
        self.probes = 0

    def attempt(self, plan: Plan, start: float, timeout_ms: Optional[float] = None,
                commit: bool = True) -> Tuple[float, bool, Measured]:
        """Run ``plan`` from ``start``; (finish time, fell back?, what was measured)."""
        c = self.costs[plan]
        head_done = start + c.device_ms + c.encode_ms
        if not plan.remote:
            return head_done, False, Measured(plan, True, c.device_ms + c.encode_ms)
        send = max(head_done, self.link_free)
        serial_done = self.link.serialize_done(send, c.up_bytes)
        reply = serial_done + self.link.delay_ms + c.server_ms + self.link.delay_ms
        sent_back = reply - self.link.delay_ms
        for a, b in self.link.outages:  # the reply itself waits out an outage on the way back
            if a <= sent_back < b:
                reply = b + self.link.delay_ms
        if commit:
            self.link_free = serial_done
        if timeout_ms is not None and reply - head_done > timeout_ms:
            give_up = head_done + timeout_ms
            local = self.costs[self.fallback]
            return give_up + local.device_ms + local.encode_ms, True, Measured(
                plan, False, c.device_ms + c.encode_ms, c.up_bytes, waited_ms=timeout_ms)
        transfer = reply - head_done - c.server_ms
        return reply, False, Measured(plan, True, c.device_ms + c.encode_ms, c.up_bytes, transfer, c.server_ms, 0.0)

    def probe(self, start: float, nbytes: int, timeout_ms: float = 1000.0) -> Tuple[float, Optional[float]]:
        send = max(start, self.link_free)
        serial_done = self.link.serialize_done(send, nbytes)
        self.link_free = serial_done
        reply = serial_done + 2 * self.link.delay_ms
        if reply - start > timeout_ms:
            return start + timeout_ms, None
        return reply, reply - start


Chooser = Callable[[int, float, World], Tuple[Plan, Optional[float], bool, str]]


def run(link: Link, costs: Sequence[PlanCost], arrivals_ms: Sequence[float], choose: Chooser,
        fallback: Optional[Plan] = None, feedback: Optional[Callable[[float, object], None]] = None,
        probe_bytes: Tuple[int, int] = PROBE_BYTES) -> List[Served]:
    """Serve every request in order; ``choose(i, t_ms, world) -> (plan, timeout_ms, probe?, reason)``."""
    table = {c.plan: c for c in costs}
    fallback = fallback or min((c for c in costs if not c.plan.remote), key=lambda c: c.device_ms).plan
    world = World(link, table, fallback)
    pending: list = []  # (time_ms, seq, payload) observations not yet seen by the controller
    out: List[Served] = []
    for i, a in enumerate(arrivals_ms):
        start = max(a, world.dev_free)
        while feedback and pending and pending[0][0] <= start:
            t, _, payload = heapq.heappop(pending)
            feedback(t, payload)
        plan, timeout, probe, reason = choose(i, start, world)
        if probe:
            world.probes += 1
            size = probe_bytes[0] if world.probes % 5 == 1 else probe_bytes[1]  # as AdaptiveRuntime does
            done, transfer = world.probe(start, size)
            heapq.heappush(pending, (done, len(out) * 2 + 1, ("probe", size, transfer, probe == "down")))
        finish, fell, measured = world.attempt(plan, start, timeout)
        world.dev_free = finish
        if feedback:
            heapq.heappush(pending, (finish, len(out) * 2, measured))
        acc = table[fallback if fell else plan].accuracy
        out.append(Served(i, a, finish, plan, fell, acc, reason))
    return out


def static(plan: Plan, timeout_ms: Optional[float] = None) -> Chooser:
    return lambda i, t, w: (plan, timeout_ms if plan.remote else None, False, "static")


def oracle(allowed: Sequence[Plan]) -> Chooser:
    """Per request, the plan that finishes first given the true link state (trace) right now."""
    def choose(i, t, world: World):
        best = min(allowed, key=lambda p: world.attempt(p, t, None, commit=False)[0])
        return best, None, False, "oracle"
    return choose


def adaptive(ctl: Controller) -> Tuple[Chooser, Callable[[float, object], None]]:
    """The live controller, driven by the replay's clock and measurements."""
    def choose(i, t, world):
        d = ctl.decide(t / 1000.0)
        # NOTE: as AdaptiveRuntime: a probe sent while the link is down only tells it is back
        probe = ("down" if not ctl.link.up else True) if d.probe else False
        return d.plan, d.timeout_ms, probe, d.reason

    def feedback(t, payload):
        if isinstance(payload, tuple):
            ctl.observe_probe(t / 1000.0, payload[1], payload[2], sent_while_down=payload[3])
        else:
            ctl.observe(t / 1000.0, payload)
    return choose, feedback


def summary(served: Sequence[Served], deadline_ms: float = math.inf) -> dict:
    import numpy as np

    lat = np.array([s.latency_ms for s in served])
    return {"n": len(served), "mean_ms": float(lat.mean()), "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)), "p99_ms": float(np.percentile(lat, 99)),
            "miss_rate": float(np.mean(lat > deadline_ms)) if math.isfinite(deadline_ms) else 0.0,
            "accuracy": float(np.mean([s.accuracy for s in served])),
            "fallbacks": int(sum(s.fell_back for s in served))}
