"""Policies: ``decide(observation, state) -> (decision, state)``; no I/O, no clocks.

The observation carries the time (``now_s``) and a snapshot of the estimates; the state
is a frozen value returned anew. Three small steps, each its own function:

1. ``rank``: the best plan for the objective (min latency s.t. an accuracy floor; max
   accuracy s.t. a deadline; min device energy s.t. a deadline);
2. ``hysteresis``: keep the current plan unless the best one wins clearly (a large gain
   switches at once, a moderate one only after it persists), so estimate noise does not
   flap plans; an infeasible or unreachable current plan is left immediately;
3. ``explore``: when the link estimate is stale and a remote plan could plausibly win, ask
   for a small probe (this also finds the link again after an outage); and, rarely, try
   the runner-up when it is safe under the deadline, so unused plans do not go stale.

Link down means local at once: no hysteresis, no waiting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple

from ..errors import ConfigError
from ..plan import Plan, remote_budget_ms
from .costmodel import Estimates, PlanCost, Power, Prediction, predict_all

OBJECTIVES = ("latency", "accuracy", "energy")


@dataclass(frozen=True)
class Objective:
    kind: str = "latency"
    deadline_ms: float = math.inf
    accuracy_floor: float = 0.0

    def __post_init__(self):
        if self.kind not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {OBJECTIVES}; got {self.kind!r}")


@dataclass(frozen=True)
class Tuning:
    switch_gain: float = 0.08  # relative gain needed to switch after `persist` decisions
    jump_gain: float = 0.30  # relative gain that switches at once
    abs_ms: float = 1.0  # gains below this are noise
    persist: int = 2
    probe_interval_s: float = 0.3
    hopeless_probe_interval_s: float = 1.0
    remote_probe_interval_s: float = 2.0  # probes beside a remote plan of small transfers (they share the uplink)
    stale_confidence: float = 0.75  # probe a link whose estimate's confidence fell below this
    explore_every: int = 100  # requests between exploration tries (0: never)
    z: float = 1.28  # bandwidth quantile for deadline checks (~90%)


@dataclass(frozen=True)
class Observation:
    now_s: float
    estimates: Estimates
    candidates: Tuple[PlanCost, ...]
    objective: Objective = Objective()
    power: Power = Power()


@dataclass(frozen=True)
class State:
    plan: Optional[Plan] = None
    challenger: Optional[Plan] = None
    streak: int = 0
    n: int = 0
    last_probe_s: Optional[float] = None


@dataclass(frozen=True)
class Decision:
    plan: Plan
    reason: str
    probe: bool = False
    timeout_ms: Optional[float] = None  # remote budget that still leaves time for local fallback
    predictions: Tuple[Prediction, ...] = ()

    def predicted(self, plan: Optional[Plan] = None) -> Optional[Prediction]:
        plan = plan or self.plan
        return next((p for p in self.predictions if p.plan == plan), None)


def _feasible(p: Prediction, obj: Objective) -> bool:
    if obj.kind == "latency":
        return p.accuracy >= obj.accuracy_floor and math.isfinite(p.latency_ms)
    return p.pessimistic_ms <= obj.deadline_ms and p.accuracy >= obj.accuracy_floor


def score(p: Prediction, obj: Objective) -> float:
    """Lower is better; the quantity hysteresis compares."""
    if obj.kind == "accuracy":
        return (1.0 - p.accuracy) * 1e3 + p.latency_ms * 1e-3  # accuracy first, latency breaks ties
    return p.energy_mj if obj.kind == "energy" else p.latency_ms


def rank(preds: Tuple[Prediction, ...], obj: Objective) -> Prediction:
    ok = [p for p in preds if _feasible(p, obj)]
    if ok:
        return min(ok, key=lambda p: score(p, obj))
    # nothing meets the constraint: the fastest plan misses by the least
    return min(preds, key=lambda p: p.latency_ms)


def hysteresis(cur: Optional[Prediction], best: Prediction, obj: Objective, state: State,
               t: Tuning) -> Tuple[Plan, State, str]:
    if cur is None or cur.plan == best.plan:
        return best.plan, replace(state, challenger=None, streak=0), "best"
    if not _feasible(cur, obj) and _feasible(best, obj) or not math.isfinite(cur.latency_ms):
        return best.plan, replace(state, challenger=None, streak=0), "current plan infeasible"
    a, b = score(cur, obj), score(best, obj)
    gain = a - b
    rel = gain / max(abs(a), 1e-9)
    if obj.kind == "accuracy":
        rel = gain / 1e3 / 0.005  # 0.5 accuracy points counts as a full "relative" unit
    # NOTE: abs_ms reads as 1 ms, 1 mJ, or 0.001 accuracy depending on the objective's score
    if gain < t.abs_ms:
        return cur.plan, replace(state, challenger=None, streak=0), "hold (gain below noise)"
    if rel >= t.jump_gain:
        return best.plan, replace(state, challenger=None, streak=0), f"switch (gain {rel:.0%})"
    if rel < t.switch_gain:
        return cur.plan, replace(state, challenger=None, streak=0), f"hold (gain {rel:.0%})"
    streak = state.streak + 1 if state.challenger == best.plan else 1
    if streak >= t.persist:
        return best.plan, replace(state, challenger=None, streak=0), f"switch (gain {rel:.0%} x{streak})"
    return cur.plan, replace(state, challenger=best.plan, streak=streak), f"hold ({best.plan} gains {rel:.0%}, waiting)"


def explore(obs: Observation, state: State, chosen: Prediction, preds: Tuple[Prediction, ...],
            t: Tuning) -> Tuple[bool, Optional[Plan]]:
    """(probe?, exploratory plan or None)."""
    link = obs.estimates.link
    probe = False
    stale = not link.up or link.confidence < t.stale_confidence
    since = math.inf if state.last_probe_s is None else obs.now_s - state.last_probe_s
    # NOTE: the what-if pricing below (every plan again, at the optimistic bound) is done only
    # when its answer can change whether to probe: it was half of each decision's time
    if stale and not chosen.plan.remote:
        # probe often if some remote plan would win were the link at its optimistic bound (or
        # it is down), else slowly: a link that looked hopeless may have come back
        fast, slow = t.probe_interval_s, t.hopeless_probe_interval_s
        if since >= max(fast, slow) or since < min(fast, slow):
            probe = since >= fast
        else:
            hopeful = not link.up or any(
                p.plan.remote and p.pessimistic_ms < chosen.latency_ms
                for p in predict_all(obs.candidates, obs.estimates, obs.power, z=-1.0))
            probe = since >= (fast if hopeful else slow)
    elif chosen.plan.remote and link.up and link.bw_confidence < t.stale_confidence:
        # a remote plan whose transfers are too small to measure bandwidth (they only refresh
        # the RTT) cannot see the link get faster: probe, slowly (a probe shares the uplink),
        # when a plan that needs more bandwidth would beat it at the link's optimistic bound
        probe = since >= t.remote_probe_interval_s and any(
            p.plan.remote and p.plan != chosen.plan and _better(p, chosen, obs.objective)
            for p in predict_all(obs.candidates, _optimistic(obs.estimates), obs.power))
    trial = None
    fresh = link.up and link.confidence >= t.stale_confidence
    if t.explore_every and fresh and state.n % t.explore_every == t.explore_every - 1:
        others = sorted((p for p in preds if p.plan != chosen.plan and _feasible(p, obs.objective)
                         and p.pessimistic_ms <= obs.objective.deadline_ms), key=lambda p: score(p, obs.objective))
        if others and others[0].pessimistic_ms <= 1.25 * chosen.latency_ms:
            trial = others[0].plan
    return probe, trial


def _optimistic(est: Estimates) -> Estimates:
    """The estimates with the bandwidth at its optimistic bound (one deviation up), certain.

    NOTE: priced under these, a plan's expected latency and energy are what it would take were
    the link that fast; pricing at ``z=-1`` moved only the pessimistic latency, so under the
    latency objective (which scores the expected one) no wider plan ever looked better"""
    link = est.link
    return replace(est, link=replace(link, log_bw=link.log_bw + link.log_bw_std, log_bw_std=0.0))


def _better(p: Prediction, than: Prediction, obj: Objective) -> bool:
    """``p`` would rank above ``than``: feasible within the deadline, with a better score."""
    return _feasible(p, obj) and p.pessimistic_ms <= obj.deadline_ms and score(p, obj) < score(than, obj) - 1e-9


def _timeout(plan_pred: Prediction, preds: Tuple[Prediction, ...], obj: Objective) -> Optional[float]:
    if not plan_pred.plan.remote:
        return None
    # the runtime falls back to the full model (no variant), so budget for that one
    local = next((p.latency_ms for p in preds if p.plan.kind == "local" and not p.plan.variant),
                 max((p.latency_ms for p in preds if not p.plan.remote), default=0.0))
    if math.isfinite(obj.deadline_ms):
        # give up on the link early enough that running locally still meets the deadline
        # (unless local would miss it anyway: then the remote attempt gets all of it)
        return max(remote_budget_ms(obj.deadline_ms, local), 1.0)
    return max(3 * plan_pred.pessimistic_ms, 1000.0)


def decide(obs: Observation, state: State, tuning: Tuning = Tuning()) -> Tuple[Decision, State]:
    """Choose the plan for one request. Pure: same inputs, same outputs."""
    if not obs.candidates:
        raise ConfigError("decide() needs at least one candidate plan; got none")
    preds = predict_all(obs.candidates, obs.estimates, obs.power, z=tuning.z)
    by_plan: Dict[Plan, Prediction] = {p.plan: p for p in preds}
    link = obs.estimates.link
    if not any(p.plan.remote for p in preds):  # a local-only runtime: no link to wait for or probe
        best = rank(preds, obs.objective)
        return Decision(best.plan, "local only (no remote plans)", False, None, preds), \
            replace(state, plan=best.plan, n=state.n + 1)
    if not link.up or link.confidence <= 0.0:
        # NOTE: a link never measured is not trusted either: start local and probe, so a
        # cold start on a bad link costs probes, not requests (never worse than local)
        local = tuple(p for p in preds if not p.plan.remote) or preds
        best = rank(local, obs.objective)
        plan, reason = best.plan, "link down: local" if not link.up else "link not measured yet: local"
        state = replace(state, challenger=None, streak=0)
    else:
        best = rank(preds, obs.objective)
        cur = by_plan.get(state.plan)
        if cur is not None and cur.plan.remote and link.failures:
            cur = None  # the current remote plan just failed: choose afresh, no hysteresis
        plan, state, reason = hysteresis(cur, best, obs.objective, state, tuning)
    chosen = by_plan[plan]
    probe, trial = explore(obs, state, chosen, preds, tuning)
    if trial is not None:
        plan, reason = trial, f"explore (keeps {trial} fresh)"
    if probe:
        state = replace(state, last_probe_s=obs.now_s)
        reason += "; probe link"
    # NOTE: an exploratory plan does not become the current plan; hysteresis still anchors on it
    state = replace(state, plan=chosen.plan, n=state.n + 1)
    return Decision(plan, reason, probe, _timeout(by_plan[plan], preds, obs.objective), preds), state
