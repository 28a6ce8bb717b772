"""The thin stateful loop around the pure policy: estimators in, decisions out.

``Controller.decide(now_s)`` snapshots the estimators and calls :func:`policy.decide`;
``observe(now_s, measured)`` feeds what one request really did back into them. It does
no I/O and reads no clock: the caller (live runtime loop or the exact replay in
:mod:`edgeinf.evaluation.replay`) passes the time in, so both drive the same object.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from ..errors import ConfigError
from ..plan import Plan
from .costmodel import Estimates, PlanCost, Power, undominated
from .estimators import DeviceEstimator, LinkEstimator, ServerEstimator
from .policy import Decision, Objective, Observation, State, Tuning, decide

log = logging.getLogger("edgeinf")


@dataclass(frozen=True)
class Measured:
    """What one request really did, as the executor measured it."""

    plan: Plan
    ok: bool = True  # False: the remote part failed/timed out (the request fell back)
    device_ms: float = 0.0  # measured on-device compute (head, or whole local model)
    up_bytes: int = 0
    transfer_ms: Optional[float] = None  # send -> reply, minus the server's own time
    server_ms: Optional[float] = None  # server compute (decode + tail) it reported
    queue_ms: Optional[float] = None  # server queueing it reported (LOAD)
    waited_ms: Optional[float] = None  # not ok because of a timeout: how long it waited


class Controller:
    """Estimators + candidate plans + objective + the policy's state."""

    def __init__(self, candidates: Sequence[PlanCost], objective: Objective = Objective(),
                 power: Optional[Power] = None, tuning: Tuning = Tuning(),
                 link: Optional[LinkEstimator] = None):
        if not candidates:
            raise ConfigError("Controller needs at least one candidate plan; got none")
        # NOTE: plans another plan beats on every measured cost are never priced (each costs
        # ``decide`` about 2 us a request; a package of 5 cuts x 6 codecs had 33 plans); all stay
        # in ``costs``, so what any plan really did is still observed
        self.candidates = undominated(tuple(candidates))
        kept = {id(c) for c in self.candidates}
        self.dominated = tuple(c.plan for c in candidates if id(c) not in kept)
        self.costs: Dict[Plan, PlanCost] = {c.plan: c for c in candidates}
        self.objective, self.power, self.tuning = objective, power or Power(), tuning
        self.link = link or LinkEstimator()
        self.device = DeviceEstimator()
        self.server = ServerEstimator()
        self.state = State()
        self.switches = 0
        self.last_estimates: Optional[Estimates] = None

    def estimates(self, now_s: float) -> Estimates:
        return Estimates(self.link.estimate(now_s), self.device.slowdown(now_s), self.server.queue, self.server.factor)

    def decide(self, now_s: float) -> Decision:
        obs = Observation(now_s, self.estimates(now_s), self.candidates, self.objective, self.power)
        self.last_estimates = obs.estimates  # what this decision saw (for decision records)
        before = self.state.plan
        decision, self.state = decide(obs, self.state, self.tuning)
        if before is not None and self.state.plan != before:
            self.switches += 1
            log.info("controller: %s -> %s (%s)", before, self.state.plan, decision.reason)
        return decision

    def observe(self, now_s: float, m: Measured) -> None:
        cost = self.costs.get(m.plan)
        if cost is not None and m.device_ms > 0 and cost.device_ms + cost.encode_ms > 0:
            self.device.observe(now_s, m.device_ms, cost.device_ms + cost.encode_ms)
        if not m.plan.remote:
            return
        if not m.ok:
            self.link.fail(now_s, m.up_bytes, m.waited_ms)
            return
        if m.transfer_ms is not None:
            self.link.observe(now_s, m.up_bytes, m.transfer_ms)
        if m.queue_ms is not None or m.server_ms is not None:
            self.server.observe(m.queue_ms or 0.0, m.server_ms, cost.server_ms if cost else None)

    def observe_probe(self, now_s: float, nbytes: int, transfer_ms: Optional[float],
                      sent_while_down: bool = False) -> None:
        """A probe of ``nbytes`` came back after ``transfer_ms`` (None: it was lost).

        ``sent_while_down``: it left while the link was marked down, so its time may include
        the outage: it only says the link is back (:meth:`LinkEstimator.revive`)."""
        if transfer_ms is None:
            self.link.fail(now_s)
        elif sent_while_down:
            self.link.revive(now_s)
        else:
            self.link.observe(now_s, nbytes, transfer_ms)
