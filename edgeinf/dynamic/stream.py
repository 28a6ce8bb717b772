"""Branch switching on the mediapipe hand pair over a stream, scored against always-big.

:class:`BranchSwitcher` is a thin layer over :class:`edgeinf.local.BranchPair` with a hand
measure (:class:`HandConsistency`): both landmark models resident, the pure
:func:`branch.decide` policy picking per frame. :func:`compare` replays one clip three
ways (always small, always big, switching) and reports how often the big branch ran, the
measured compute saved against always-big, and how often the output agreed with always-big.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import local as L
from ..plan import Plan
from . import branch as B

PAIR = ("hand_landmark_lite", "hand_landmark_full")
#: an output agrees with the reference when its landmarks are within this many pixels on average
AGREE_PX = 8.0
INPUT_PX = 224


@dataclass
class Frame:
    """One frame's result: which branch answered, its landmarks (21 x 2 px), presence, ms spent."""

    branch: str
    landmarks: np.ndarray
    presence: float
    ms: float
    probed: bool = False


def _parse(out: Dict[str, np.ndarray]):
    # mediapipe hand_landmark: Identity = 21 x (x, y, z) in input pixels, Identity_1 = presence
    return out["Identity"].reshape(21, 3)[:, :2].copy(), float(out["Identity_1"].reshape(-1)[0])


def hand_size(lm: np.ndarray) -> float:
    """Bounding-box diagonal of the landmarks, floored so a collapsed output cannot divide by 0."""
    return max(float(np.linalg.norm(lm.max(0) - lm.min(0))), 0.05)


class HandConsistency(B.Consistency):
    """Landmark outputs, scored in hand sizes (landmarks scaled to [0, 1]).

    change: mean landmark distance from the constant-velocity prediction of the last two
    frames (infinite when hand presence is below ``presence_low``: the output is unsure).
    disagreement: mean distance between the two branches' landmarks (infinite when the big
    branch itself is unsure, so a probe then never counts as agreeing).
    """

    def __init__(self, presence_low: float = 0.85):
        self.presence_low = presence_low

    @staticmethod
    def landmarks(out) -> np.ndarray:
        return _parse(out)[0] / INPUT_PX

    def change(self, out, history: Sequence) -> float:
        lm, presence = _parse(out)
        if presence < self.presence_low:
            return float("inf")
        if len(history) < 2:
            return 0.0
        prev = [self.landmarks(h) for h in history[-2:]]
        pred = 2 * prev[-1] - prev[-2]
        return float(np.linalg.norm(lm / INPUT_PX - pred, axis=1).mean()) / hand_size(prev[-1])

    def disagreement(self, small, big) -> float:
        lm_big, presence = _parse(big)
        if presence < self.presence_low:
            return float("inf")
        lm_big = lm_big / INPUT_PX
        return float(np.linalg.norm(self.landmarks(small) - lm_big, axis=1).mean()) / hand_size(lm_big)


class BranchSwitcher:
    """A small and a big landmark model, both resident, switched by :func:`branch.decide`."""

    def __init__(self, small: str = PAIR[0], big: str = PAIR[1], cfg: Optional[B.BranchConfig] = None,
                 threads: Optional[int] = None, measure: Optional[B.Consistency] = None):
        from .. import zoo
        from ..backends import load

        self.names = {B.SMALL: small, B.BIG: big}
        self.executors = {k: L.Variant(Plan("local", variant=n), load(zoo.path(n), threads=threads))
                          for k, n in self.names.items()}
        self.pair = L.BranchPair(Plan("local", branch=(small, big)), self.executors[B.SMALL],
                                 self.executors[B.BIG], measure=measure or HandConsistency(), config=cfg)
        self.cfg = self.pair.config
        self.input = self.pair.inputs[0].name

    def reset(self) -> None:
        self.pair.reset()

    def plans(self) -> List[Plan]:
        """The choices a controller can make here: either branch, or the switching pair."""
        return [self.executors[B.SMALL].plan, self.executors[B.BIG].plan, self.pair.plan]

    def run_one(self, frame: np.ndarray, branch: str) -> Frame:
        t0 = time.perf_counter()
        lm, presence = _parse(self.executors[branch].run({self.input: frame})[0])
        return Frame(branch, lm, presence, 1e3 * (time.perf_counter() - t0))

    def step(self, frame: np.ndarray) -> Frame:
        """Run the branch the policy chose for this frame (and the probe), then decide the next."""
        t0 = time.perf_counter()
        out, info = self.pair.run({self.input: frame})
        lm, presence = _parse(out)
        return Frame(info["side"], lm, presence, 1e3 * (time.perf_counter() - t0), info["probe"])


def compare(frames: np.ndarray, switcher: BranchSwitcher) -> dict:
    """Replay ``frames`` (N x 224 x 224 x 3) always-small, always-big and switching."""
    small = [switcher.run_one(f[None], B.SMALL) for f in frames]
    big = [switcher.run_one(f[None], B.BIG) for f in frames]
    switcher.reset()
    auto = [switcher.step(f[None]) for f in frames]
    ref = np.stack([f.landmarks for f in big])

    def agreement(run: List[Frame]) -> float:
        d = np.linalg.norm(np.stack([f.landmarks for f in run]) - ref, axis=2).mean(1)
        return float((d <= AGREE_PX).mean())

    ms = {k: float(sum(f.ms for f in run)) for k, run in (("small", small), ("big", big), ("switch", auto))}
    used_big = np.array([f.branch == B.BIG for f in auto])
    return {"frames": len(frames), "big_fraction": float(used_big.mean()),
            "probe_fraction": float(np.mean([f.probed for f in auto])),
            "switches": int(np.count_nonzero(np.diff(used_big.astype(int)))),
            "time_saving": 1 - ms["switch"] / ms["big"], "ms_per_frame": {k: v / len(frames) for k, v in ms.items()},
            "agreement": {"small": agreement(small), "switch": agreement(auto)},
            "branch_per_frame": [f.branch for f in auto]}
