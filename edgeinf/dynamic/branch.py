"""Branch switching for streams: run the small model, switch to the big one when needed.

The decision is a pure function, ``decide(observation, state, config) -> (step, state)``,
with no clocks, models or I/O, so it is tested on plain numbers. It sees two scalars a
*consistency measure* computed from the models' outputs (see :class:`Consistency`):

- ``change``: how far the output that just ran is from what the previous frames lead one
  to expect (any branch's outputs; higher is less consistent);
- ``probe``: on the big branch, how far the small branch's output of the same frame is from
  the big one's, when the small one also ran as a probe.

Up (small -> big) when ``change`` exceeds ``jump`` (NaN counts as exceeding). Down (big ->
small) after ``calm_probes`` probes in a row below ``agree`` and at least ``min_big``
frames on big: hysteresis, so one lucky frame does not flip it back. The small branch is
probed every ``probe_every`` frames while on big.

:class:`edgeinf.local.BranchPair` is the executor that runs the steps on two models.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import ConfigError

SMALL, BIG = "small", "big"
Outputs = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class BranchConfig:
    jump: float = 0.1
    agree: float = 0.05
    probe_every: int = 3
    calm_probes: int = 2
    min_big: int = 6

    def __post_init__(self):
        if self.probe_every < 1 or self.calm_probes < 1 or self.min_big < 0:
            raise ConfigError(f"branch config needs probe_every >= 1, calm_probes >= 1, min_big >= 0; got {self}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "BranchConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Observation:
    """What one frame produced, as the measure scored it."""

    branch: str
    change: float
    probe: Optional[float] = None


@dataclass(frozen=True)
class Step:
    branch: str  # which branch to run on the next frame
    probe: bool = False  # also run the small branch (only while on big)


@dataclass(frozen=True)
class BranchState:
    branch: str = SMALL
    on_big: int = 0
    calm: int = 0


def decide(obs: Observation, state: BranchState, cfg: BranchConfig = BranchConfig()):
    """Next step and state after observing one frame."""
    if state.branch == SMALL:
        if not obs.change <= cfg.jump:  # written so that NaN switches up too
            return Step(BIG), BranchState(BIG, on_big=0, calm=0)
        return Step(SMALL), state
    state = replace(state, on_big=state.on_big + 1)
    calm = state.calm
    if obs.probe is not None:
        calm = calm + 1 if obs.probe < cfg.agree else 0
    if calm >= cfg.calm_probes and state.on_big >= cfg.min_big:
        return Step(SMALL), BranchState(SMALL, 0, 0)
    probe = (state.on_big + 1) % cfg.probe_every == 0
    return Step(BIG, probe=probe), replace(state, calm=calm)


# -- consistency measures ------------------------------------------------------------------
class Consistency:
    """Scores outputs for :func:`decide`. Subclass, or pass a two-output distance callable.

    ``change(out, history)``: inconsistency of ``out`` with the previous outputs
    (``history``: up to the last two, newest last, from whichever branch ran).
    ``disagreement(small, big)``: distance of the small branch's output from the big one's.
    """

    def change(self, out: Outputs, history: Sequence[Outputs]) -> float:
        return self.disagreement(out, history[-1]) if history else 0.0

    def disagreement(self, small: Outputs, big: Outputs) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


class RangeDistance(Consistency):
    """The default: mean absolute difference relative to the reference output's range.

    Per output tensor named in both (all of them unless ``outputs`` names some), the mean
    ``|a - b|`` divided by ``max(b) - min(b)`` (floored at ``floor``, so a constant output
    cannot divide by zero), averaged over the tensors. 0: identical; 0.1: off by a tenth of
    the output's spread on average.
    """

    def __init__(self, outputs: Optional[Sequence[str]] = None, floor: float = 1e-6):
        self.outputs, self.floor = (tuple(outputs) if outputs else None), float(floor)

    def disagreement(self, small: Outputs, big: Outputs) -> float:
        names = self.outputs or [k for k in big if k in small]
        if not names:
            raise ConfigError(f"outputs {sorted(small)} and {sorted(big)} share no tensor to compare")
        d = []
        for k in names:
            a, b = np.asarray(small[k], np.float64), np.asarray(big[k], np.float64)
            if a.shape != b.shape:
                raise ConfigError(f"output {k!r} has shape {a.shape} on one branch and {b.shape} on the other")
            spread = float(b.max() - b.min()) if b.size else 0.0
            d.append(float(np.abs(a - b).mean()) / max(spread, self.floor) if b.size else 0.0)
        return float(np.mean(d))


class Pairwise(Consistency):
    """A user's ``distance(a, b) -> float`` over two output dicts, used for both scores."""

    def __init__(self, distance: Callable[[Outputs, Outputs], float]):
        self.distance = distance

    def disagreement(self, small: Outputs, big: Outputs) -> float:
        return float(self.distance(small, big))


MEASURES: Dict[str, Callable[[], Consistency]] = {"range": RangeDistance}


def measure(spec: Union[None, str, Consistency, Callable]) -> Consistency:
    """A :class:`Consistency` from a name in :data:`MEASURES`, an instance, a callable or None."""
    if spec is None:
        return RangeDistance()
    if isinstance(spec, Consistency):
        return spec
    if isinstance(spec, str):
        if spec not in MEASURES:
            raise ConfigError(f"unknown consistency measure {spec!r}; built in: {sorted(MEASURES)} "
                              "(or pass a callable distance(a, b) -> float)")
        return MEASURES[spec]()
    if callable(spec):
        return Pairwise(spec)
    raise ConfigError(f"a consistency measure is a name, a Consistency or a callable; got {type(spec).__name__}")
