"""The live loop: a fixed-rate request stream through an :class:`edgeinf.AdaptiveRuntime`.

Requests arrive every ``1/rate`` s; the device serves them one at a time (a request that
arrives while the previous one runs waits, and its latency counts the wait). The runtime
decides, probes, executes and observes; this loop only keeps the clock and the records.
A static plan runs through the same runtime's executor (``static=``), so the live
baselines pay exactly what the adaptive run pays.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..plan import Plan
from .replay import Served


@dataclass
class Record:
    served: Served
    outcome: str
    reason: str
    predicted_ms: float
    t_s: float  # start, seconds on the replay clock
    estimates: Optional[dict] = None


def stream(art, inputs: Sequence[Dict[str, np.ndarray]], rate: float, n: int, clock: Callable[[], float],
           accuracy: Callable[[Plan, str], float], on_request: Optional[Callable[[Record], None]] = None,
           static: Optional[Plan] = None) -> List[Record]:
    """Serve ``n`` requests at ``rate``/s; times in seconds on ``clock`` (the link's clock)."""
    start = clock()
    out: List[Record] = []
    for i in range(n):
        arrival = start + i / rate
        while (left := arrival - clock()) > 0:  # one clock read: it may pass arrival in between
            time.sleep(min(left, 0.002))
        t = clock()
        feeds = inputs[i % len(inputs)]
        # NOTE: misses count from arrival (below), but the runtime's remote budget counts from
        # now: budgeting from arrival starves the link once a backlog forms, and every request
        # then pays for a skipped attempt plus the local run (a death spiral, seen here)
        if static is None:
            res = art.run(feeds)
            plan, outcome, reason, pred, est = res.plan, res.outcome, res.reason, res.predicted_ms, res.estimates
        else:
            r = art.rt.run(feeds, plan=static, deadline=art.objective.deadline_ms / 1e3)
            plan, outcome, reason, pred, est = static, r.outcome, "static", float("nan"), None
        done = clock()
        fell = outcome == "local_fallback"
        rec = Record(Served(i, arrival * 1e3, done * 1e3, plan, fell, accuracy(plan, outcome), reason),
                     outcome, reason, pred, t - start, est)
        out.append(rec)
        if on_request:
            on_request(rec)
    return out
