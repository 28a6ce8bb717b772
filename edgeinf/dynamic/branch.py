"""Branch switching for streams: run the small model, switch to the big one when needed.

The decision is a pure function, ``decide(observation, state, config) -> (step, state)``,
with no clocks or I/O, so it is tested on plain inputs. :class:`BranchSwitcher` is the thin
loop that executes its steps on two real landmark models.

Up (small -> big) when the small branch's output looks unreliable:
  - hand presence falls below ``presence_low``, or
  - temporal inconsistency: the landmarks land far from where the last two frames predicted
    (constant-velocity), more than ``jump`` hand sizes on average.
Down (big -> small) when the small branch has been seen to agree: on the big branch the
small one also runs every ``probe_every`` frames as a probe; after ``calm_probes`` probes
in a row within ``agree`` hand sizes of the big output (and at least ``min_big`` frames on
big: hysteresis, so one lucky frame does not flip it back) it goes down.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

import numpy as np

SMALL, BIG = "small", "big"


@dataclass(frozen=True)
class BranchConfig:
    presence_low: float = 0.85
    jump: float = 0.1
    agree: float = 0.05
    probe_every: int = 3
    calm_probes: int = 2
    min_big: int = 6


@dataclass(frozen=True)
class Observation:
    """What one frame produced: landmarks (21 x 2, in [0, 1]) and presence of the branch that
    ran, plus the small branch's landmarks when it ran as a probe."""

    branch: str
    landmarks: np.ndarray
    presence: float
    probe: Optional[np.ndarray] = None


@dataclass(frozen=True)
class Step:
    branch: str  # which branch to run on the next frame
    probe: bool = False  # also run the small branch (only while on big)


@dataclass(frozen=True)
class BranchState:
    branch: str = SMALL
    prev: Tuple[np.ndarray, ...] = ()  # the last two outputs, newest last
    on_big: int = 0
    calm: int = 0


def hand_size(lm: np.ndarray) -> float:
    """Bounding-box diagonal of the landmarks, floored so a collapsed output cannot divide by 0."""
    return max(float(np.linalg.norm(lm.max(0) - lm.min(0))), 0.05)


def inconsistency(lm: np.ndarray, prev: Tuple[np.ndarray, ...]) -> float:
    """Mean landmark distance from the constant-velocity prediction, in hand sizes."""
    if len(prev) < 2:
        return 0.0
    pred = 2 * prev[-1] - prev[-2]
    return float(np.linalg.norm(lm - pred, axis=1).mean()) / hand_size(prev[-1])


def disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean landmark distance between two outputs of one frame, in hand sizes of ``b``."""
    return float(np.linalg.norm(a - b, axis=1).mean()) / hand_size(b)


def decide(obs: Observation, state: BranchState, cfg: BranchConfig = BranchConfig()):
    """Next step and state after observing one frame."""
    prev = (state.prev + (obs.landmarks,))[-2:]
    if state.branch == SMALL:
        unsure = obs.presence < cfg.presence_low
        if unsure or inconsistency(obs.landmarks, state.prev) > cfg.jump:
            return Step(BIG), BranchState(BIG, prev, on_big=0, calm=0)
        return Step(SMALL), replace(state, prev=prev)
    return _on_big(obs, replace(state, prev=prev, on_big=state.on_big + 1), cfg)


def _on_big(obs: Observation, state: BranchState, cfg: BranchConfig):
    calm = state.calm
    if obs.probe is not None:
        agrees = disagreement(obs.probe, obs.landmarks) < cfg.agree and obs.presence >= cfg.presence_low
        calm = calm + 1 if agrees else 0
    if calm >= cfg.calm_probes and state.on_big >= cfg.min_big:
        return Step(SMALL), BranchState(SMALL, state.prev, 0, 0)
    probe = (state.on_big + 1) % cfg.probe_every == 0
    return Step(BIG, probe=probe), replace(state, calm=calm)
