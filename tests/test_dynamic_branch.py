"""Branch switching on the real mediapipe pair over the deterministic synthetic hand clip."""
import numpy as np
import pytest

import skimage  # noqa: F401,E402  the synthetic clip draws over a scikit-image photograph


@pytest.fixture(scope="module")
def clip():
    from edgeinf.dynamic import video

    return video.clip(0)


def test_clip_is_deterministic_from_its_seed(clip):
    from edgeinf.dynamic import video

    frames, phases = clip
    again = np.concatenate([f for f, _ in zip((f for f, _ in video.frames(0)), range(5))])
    assert np.array_equal(again, frames[:5])
    assert not np.array_equal(next(video.frames(1))[0], frames[:1])
    assert frames.shape == (len(phases), 224, 224, 3) and set(phases) == {"calm", "fast", "dark"}


def test_switches_up_on_hard_stretches_and_back_down_when_calm(clip):
    from edgeinf.dynamic import stream

    frames, phases = clip
    r = stream.compare(frames, stream.BranchSwitcher(threads=1))
    big = np.array([b == "big" for b in r["branch_per_frame"]])
    phases = np.array(phases)
    assert big[phases != "calm"].mean() > 0.6, big[phases != "calm"].mean()
    assert big[phases == "calm"].mean() < 0.15, big[phases == "calm"].mean()
    assert r["switches"] >= 4  # up and back down, at least twice
    assert not big[-20:].any()  # the clip ends calm: back on the small branch
    # closer to always-big than always-small is, while running big on under half the frames
    assert r["agreement"]["switch"] > r["agreement"]["small"] + 0.05, r["agreement"]
    assert r["big_fraction"] < 0.5


def test_branch_plans_name_both_models():
    from edgeinf.dynamic import stream

    labels = [p.label() for p in stream.BranchSwitcher(threads=1).plans()]
    assert labels[0] == "local[hand_landmark_lite]" and labels[1] == "local[hand_landmark_full]"
    assert labels[2] == "local[hand_landmark_lite|hand_landmark_full]"  # Plan.branch, a typed pair
