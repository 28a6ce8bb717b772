"""Scale-out arithmetic: pure functions, values in and values out (no Ray, no clocks).

Two questions share one queueing view of a replica (a server of ``service_ms`` per request,
``slots`` requests at once):

* how many requests may wait on one replica before a request queued behind them misses its
  deadline: Ray Serve's ``target_ongoing_requests`` (:func:`target_ongoing`);
* how many replicas a request stream needs, and what a fixed number would miss
  (:func:`replicas_needed`, :func:`capacity_misses`), for the fleet simulation.

The capacity model is written out in ``docs/scale.md``.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..errors import ConfigError


def target_ongoing(service_ms: float, deadline_ms: float, headroom: float = 0.5, slots: int = 1,
                   utilisation: float = 0.7) -> float:
    """Requests per replica (running plus queued) to scale at: Ray Serve's
    ``target_ongoing_requests``.

    Two bounds, the smaller wins. *Deadline*: a request that finds ``k`` others on a replica
    with ``slots`` parallel slots finishes after about ``(k / slots + 1) * service_ms``;
    keeping that under ``headroom * deadline_ms`` (the rest of the deadline is the link, the
    edge and the time Ray takes to add a replica) allows ``k + 1 <= slots * headroom *
    deadline_ms / service_ms``. *Utilisation*: with random arrivals a replica busy a fraction
    ``u`` of the time holds about ``u / (1 - u)`` requests per slot (M/M/1); scaling at that
    many keeps replicas near ``u`` busy, where queues stay short (a deadline-only target lets
    replicas run saturated with full queues, and any burst then misses). Never below 1.

    >>> target_ongoing(20, 200), target_ongoing(20, 200, utilisation=0.9)
    (2.33, 5.0)
    """
    if service_ms <= 0 or deadline_ms <= 0:
        raise ConfigError(f"service_ms and deadline_ms must be > 0; got {service_ms}, {deadline_ms}")
    if not 0 < headroom <= 1:
        raise ConfigError(f"headroom must be in (0, 1]; got {headroom}")
    if not 0 < utilisation < 1:
        raise ConfigError(f"utilisation must be in (0, 1); got {utilisation}")
    deadline_cap = math.floor(slots * headroom * deadline_ms / service_ms)
    busy_level = round(slots * utilisation / (1 - utilisation), 2)
    return max(1.0, min(deadline_cap, busy_level))


@dataclass(frozen=True)
class Scaling:
    """Replica bounds and Ray Serve's autoscaling knobs for one deployment."""

    min_replicas: int = 1
    max_replicas: int = 2
    target: float = 2.0              # target_ongoing_requests per replica
    upscale_delay_s: float = 1.0
    downscale_delay_s: float = 30.0
    metrics_interval_s: float = 0.5
    look_back_s: float = 2.0
    downscaling_factor: float = 0.5  # Ray's: each step down goes this part of the way (a damped descent)

    def __post_init__(self):
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ConfigError(f"need 0 <= min_replicas <= max_replicas, max >= 1; got "
                              f"{self.min_replicas}..{self.max_replicas}")
        if self.target <= 0:
            raise ConfigError(f"target (ongoing requests per replica) must be > 0; got {self.target}")

    def autoscaling_config(self) -> dict:
        """Ray Serve's ``autoscaling_config`` for these bounds."""
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "initial_replicas": self.min_replicas, "target_ongoing_requests": self.target,
                "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s,
                "metrics_interval_s": self.metrics_interval_s, "look_back_period_s": self.look_back_s,
                "downscaling_factor": self.downscaling_factor}


def scaling_for(service_ms: float, deadline_ms: float, min_replicas: int = 1, max_replicas: int = 2,
                headroom: float = 0.5, utilisation: float = 0.7, **knobs) -> Scaling:
    """:class:`Scaling` with the target derived from the tail's service time and the deadline."""
    return Scaling(min_replicas, max_replicas, target_ongoing(service_ms, deadline_ms, headroom, 1, utilisation),
                   **knobs)


def decide(ongoing: float, replicas: int, scaling: Scaling) -> int:
    """Replicas wanted for ``ongoing`` requests in the house: Ray Serve's rule
    (``ceil(ongoing / target)``) within the bounds. Replayed by the fleet simulation."""
    want = math.ceil(ongoing / scaling.target) if ongoing > 0 else scaling.min_replicas
    return min(max(want, scaling.min_replicas), scaling.max_replicas)


def autoscale_replay(rps: Sequence[float], service_ms: float, scaling: Scaling, window_s: float = 1.0) -> List[dict]:
    """Ray Serve's rule replayed over a request rate series. Each window the replicas serve
    up to ``replicas x window / service`` requests and the excess waits (a backlog); while
    they keep up, the requests in the house are those of ``replicas`` M/M/1 queues at
    utilisation ``rho`` (``rho / (1 - rho)`` each), plus the backlog. The autoscaler sees that
    count and, as Ray does, moves up only once it wanted more for ``upscale_delay_s`` and down
    only once it wanted fewer for ``downscale_delay_s`` (at least one window each: a new
    replica also takes time to start)."""
    s = service_ms / 1e3
    up_after = max(1, math.ceil(scaling.upscale_delay_s / window_s))
    down_after = max(1, math.ceil(scaling.downscale_delay_s / window_s))
    replicas, backlog, ups, downs, out = max(scaling.min_replicas, 1), 0.0, 0, 0, []
    for r in rps:
        arrived = r * window_s
        capacity = replicas * window_s / s
        served = min(backlog + arrived, capacity)
        backlog = backlog + arrived - served
        rho = min(r * s / replicas, 0.999)
        ongoing = backlog + (replicas if backlog > 0 else replicas * rho / (1 - rho))
        out.append({"replicas": replicas, "ongoing": round(ongoing, 2), "wait_ms": round(backlog * s / replicas * 1e3, 1)})
        want = max(decide(ongoing, replicas, scaling), 1)
        ups, downs = (ups + 1 if want > replicas else 0), (downs + 1 if want < replicas else 0)
        if ups >= up_after:
            replicas, ups = want, 0
        elif downs >= down_after:  # ongoing falls faster than utilisation: step down part of the way
            step = math.ceil(replicas + scaling.downscaling_factor * (want - replicas))
            replicas, downs = max(want, min(step, replicas - 1)), 0
    return out


def replicas_needed(rps: float, service_ms: float, utilisation: float = 0.7) -> int:
    """Replicas (one slot each) that serve ``rps`` at ``service_ms`` per request without
    running above ``utilisation`` (queues grow without bound as it nears 1)."""
    if rps < 0 or service_ms <= 0 or not 0 < utilisation <= 1:
        raise ConfigError(f"need rps >= 0, service_ms > 0, 0 < utilisation <= 1; got {rps}, {service_ms}, {utilisation}")
    return max(1, math.ceil(rps * service_ms / 1e3 / utilisation - 1e-9))


def capacity_misses(arrivals_s: Sequence[float], budgets_ms: Sequence[float], service_ms: float,
                    replicas: int) -> Dict[str, float]:
    """Replay requests (arrival times, sorted; deadline budgets) through ``replicas`` FIFO
    servers of ``service_ms`` each; a request whose wait plus service passes its budget is
    a miss. Returns counts and latency quantiles of the cloud side alone (no link).
    O(n log replicas): a heap of the servers' next free times."""
    if replicas < 1:
        raise ConfigError(f"replicas must be >= 1; got {replicas}")
    free = [0.0] * replicas  # a heap: when each server is next free (s)
    s = service_ms / 1e3
    lat = []
    misses = 0
    for t, budget in zip(arrivals_s, budgets_ms):
        done = max(t, free[0]) + s
        heapq.heapreplace(free, done)
        ms = (done - t) * 1e3
        lat.append(ms)
        misses += ms > budget
    lat.sort()
    q = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0.0)
    return {"requests": len(lat), "misses": misses, "miss_rate": misses / len(lat) if lat else 0.0,
            "p50_ms": q(0.5), "p99_ms": q(0.99)}


def devices_per_replica(rate: float, cloud_share: float, service_ms: float, utilisation: float = 0.7) -> float:
    """The capacity model: devices one replica (one core) carries when each sends ``rate``
    requests/s of which ``cloud_share`` reach the cloud at ``service_ms`` each, at
    ``utilisation``: ``u / (rate x share x service_s)``."""
    load = rate * cloud_share * service_ms / 1e3
    return math.inf if load <= 0 else utilisation / load


def per_second(times_s: Sequence[float], window_s: float = 1.0, end_s: Optional[float] = None) -> List[float]:
    """Events per second in consecutive windows from 0 (a rate over time)."""
    end = end_s if end_s is not None else (max(times_s) if len(times_s) else 0.0)
    n = max(1, math.ceil(end / window_s))
    out = [0] * n
    for t in times_s:
        out[min(int(t / window_s), n - 1)] += 1
    return [c / window_s for c in out]
