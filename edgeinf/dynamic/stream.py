"""Run branch switching on a real model pair over a stream, and score it against always-big.

Both branches are loaded once (all resident); the :func:`branch.decide` policy picks, per
frame, which one runs. :func:`compare` replays one clip three ways (always small, always
big, switching) and reports how often the big branch ran, the measured compute saved
against always-big, and how often the output agreed with always-big.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

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


class BranchSwitcher:
    """A small and a big landmark model, both resident, switched by :func:`branch.decide`."""

    def __init__(self, small: str = PAIR[0], big: str = PAIR[1], cfg: B.BranchConfig = B.BranchConfig(),
                 threads: Optional[int] = None):
        from .. import zoo
        from ..backends import load

        self.names = {B.SMALL: small, B.BIG: big}
        self.models = {k: load(zoo.path(n), threads=threads) for k, n in self.names.items()}
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        self.state, self.step_ = B.BranchState(), B.Step(B.SMALL)

    def plans(self) -> List[Plan]:
        """The choices a controller can make here: either branch, or the switching policy."""
        return [Plan("local", variant=self.names[B.SMALL]), Plan("local", variant=self.names[B.BIG]),
                Plan("local", variant=f"{self.names[B.SMALL]}|{self.names[B.BIG]}", exit="switch")]

    def run_one(self, frame: np.ndarray, branch: str) -> Frame:
        t0 = time.perf_counter()
        lm, presence = _parse(self.models[branch](frame))
        return Frame(branch, lm, presence, 1e3 * (time.perf_counter() - t0))

    def step(self, frame: np.ndarray) -> Frame:
        """Run the branch the policy chose for this frame (and the probe), then decide the next."""
        out = self.run_one(frame, self.step_.branch)
        probe = None
        if self.step_.probe:
            p = self.run_one(frame, B.SMALL)
            probe, out.ms, out.probed = p.landmarks / INPUT_PX, out.ms + p.ms, True
        obs = B.Observation(out.branch, out.landmarks / INPUT_PX, out.presence, probe)
        self.step_, self.state = B.decide(obs, self.state, self.cfg)
        return out


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
