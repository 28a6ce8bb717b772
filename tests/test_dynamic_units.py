"""Dynamic inference, pure parts: threshold fitting, the branch policy, MAC counts, manifests.

Plain inputs only; the trained package is exercised in test_dynamic.py.
"""
import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgeinf.dynamic import branch as B
from edgeinf.dynamic import calibrate, macs
from edgeinf.errors import PackageError


# -- calibration ---------------------------------------------------------------------------
def _toy(n=2000, seed=0):
    """Exit 1 right when confident (> 0.8) and a coin flip otherwise; exit 2 always right."""
    rng = np.random.default_rng(seed)
    conf = rng.random((1, n))
    correct = np.stack([np.where(conf[0] > 0.8, True, rng.random(n) < 0.5), np.ones(n, bool)])
    return conf, correct, [1.0, 4.0]


def test_assign_takes_the_earliest_passing_exit():
    conf = np.array([[0.9, 0.2, 0.2], [0.9, 0.9, 0.1]])
    assert calibrate.assign(conf, [0.5, 0.5]).tolist() == [0, 1, 2]


def test_fit_finds_the_cheapest_thresholds_that_meet_the_target():
    conf, correct, cost = _toy()
    thr = calibrate.fit(conf, correct, cost, max_drop=0.01, z=0.0)
    r = calibrate.evaluate(conf, correct, cost, thr)
    assert r["accuracy"] >= 0.99
    assert 0.75 < thr[0] <= 0.85, thr  # the confident region starts at 0.8
    assert r["cost"] < 3.45  # about 20% leave at cost 1, the rest pay 4
    # an unreachable target runs everything to the end rather than failing
    assert np.isinf(calibrate.fit(conf, correct, cost, max_drop=-0.01)).all()


def test_noise_margin_is_more_conservative_and_holds_on_new_data():
    fit_on, held_out = _toy(seed=1), _toy(seed=2)
    bare = calibrate.fit(*fit_on, max_drop=0.02, z=0.0)
    safe = calibrate.fit(*fit_on, max_drop=0.02, z=2.0)
    cost = {k: calibrate.evaluate(*fit_on, t)["cost"] for k, t in (("bare", bare), ("safe", safe))}
    assert cost["safe"] >= cost["bare"]
    assert calibrate.evaluate(*held_out, safe)["accuracy"] >= 0.98  # the last exit is always right


def test_evaluate_names_mismatched_shapes():
    conf, correct, cost = _toy(10)
    with pytest.raises(ValueError, match="calibration shapes disagree"):
        calibrate.evaluate(conf, correct, [1.0], [0.5])


# -- branch policy -------------------------------------------------------------------------
HAND = np.stack([np.linspace(0.3, 0.7, 21), np.linspace(0.3, 0.7, 21)], 1)


def _hand_out(lm=HAND, presence=0.99):
    """A hand_landmark output dict: 21 x (x, y, z) in input pixels, and presence."""
    xyz = np.concatenate([lm * 224, np.zeros((21, 1))], 1).astype(np.float32)
    return {"Identity": xyz.reshape(1, 63), "Identity_1": np.array([[presence]], np.float32)}


def _walk(frames, cfg=None):
    """Feed (branch, output, probe output) frames through the hand measure and the policy."""
    from edgeinf.dynamic.stream import HandConsistency

    m, state, history, steps = HandConsistency(), B.BranchState(), (), []
    cfg = cfg or B.BranchConfig()
    for branch, out, probe in frames:
        change = m.change(out, history) if branch == B.SMALL else 0.0
        d = m.disagreement(probe, out) if probe is not None else None
        history = (history + (out,))[-2:]
        step, state = B.decide(B.Observation(branch, change, d), state, cfg)
        steps.append(step)
    return steps, state


def test_stays_small_while_outputs_are_consistent():
    steps, state = _walk([(B.SMALL, _hand_out(HAND + 0.001 * i), None) for i in range(20)])  # steady motion
    assert all(s.branch == B.SMALL for s in steps) and state.branch == B.SMALL


def test_switches_up_on_temporal_disagreement_and_on_low_confidence():
    calm = (B.SMALL, _hand_out(), None)
    steps, _ = _walk([calm, calm, (B.SMALL, _hand_out(HAND + 0.2), None)])
    assert [s.branch for s in steps] == [B.SMALL, B.SMALL, B.BIG]
    steps, _ = _walk([calm, (B.SMALL, _hand_out(presence=0.3), None)])
    assert [s.branch for s in steps] == [B.SMALL, B.BIG]


def test_nan_measure_switches_up():
    step, state = B.decide(B.Observation(B.SMALL, float("nan")), B.BranchState())
    assert step.branch == B.BIG and state.branch == B.BIG


def test_switches_back_down_only_after_agreeing_probes_and_min_frames():
    cfg = B.BranchConfig(probe_every=3, calm_probes=2, min_big=6)
    state = B.BranchState(B.BIG)
    seen, step = [], B.Step(B.BIG)
    for _ in range(12):
        step, state = B.decide(B.Observation(B.BIG, 0.0, 0.01 if step.probe else None), state, cfg)
        seen.append(step)
    first_down = next(i for i, s in enumerate(seen) if s.branch == B.SMALL)
    assert first_down >= cfg.min_big - 1 and sum(s.probe for s in seen[:first_down]) >= 2


def test_stays_big_while_probes_disagree():
    from edgeinf.dynamic.stream import HandConsistency

    m, state, step = HandConsistency(), B.BranchState(B.BIG), B.Step(B.BIG)
    for _ in range(30):
        d = m.disagreement(_hand_out(HAND + 0.3), _hand_out()) if step.probe else None
        step, state = B.decide(B.Observation(B.BIG, 0.0, d), state)
        assert step.branch == B.BIG


def test_range_distance_is_relative_to_the_reference_spread():
    a = {"y": np.array([0.0, 10.0]), "s": np.array([1.0, 1.0])}
    b = {"y": np.array([1.0, 11.0]), "s": np.array([1.0, 1.0])}
    assert B.RangeDistance().disagreement(a, b) == pytest.approx((1 / 10 + 0) / 2)
    assert B.RangeDistance(["y"]).change(a, (b,)) == pytest.approx(0.1)
    assert B.RangeDistance().change(a, ()) == 0.0  # nothing to compare with yet
    with pytest.raises(ValueError, match="unknown consistency measure 'nope'.*range"):
        B.measure("nope")


# -- MACs and the manifest -----------------------------------------------------------------
def test_mac_count_of_a_conv_and_a_gemm():
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], np.zeros(216, np.float32))
    fc = helper.make_tensor("fc", TensorProto.FLOAT, [8 * 16 * 16, 10], np.zeros(20480, np.float32))
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
         helper.make_node("Flatten", ["y"], ["f"]), helper.make_node("Gemm", ["f", "fc"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 10])], [w, fc])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert macs.count(model) == 16 * 16 * 8 * 27 + 2048 * 10


def test_old_packages_still_load_and_say_they_have_no_variants(tmp_path, mobilenet_path):
    import edgeinf
    from edgeinf.dynamic import read
    from edgeinf.package import PackageWriter, open_package

    m = edgeinf.load(mobilenet_path)
    w = PackageWriter(tmp_path / "p", name="plain")
    w.set_model("model.onnx", mobilenet_path, m.inputs, m.outputs)
    pkg = open_package(w.save())
    with pytest.raises(PackageError, match="has no 'variants' section"):
        read(pkg)


def test_variants_must_name_hashed_files(tmp_path, mobilenet_path):
    import edgeinf
    from edgeinf.dynamic import read
    from edgeinf.package import PackageWriter, open_package

    m = edgeinf.load(mobilenet_path)
    w = PackageWriter(tmp_path / "p", name="bad")
    w.set_model("model.onnx", mobilenet_path, m.inputs, m.outputs)
    w.write_file("unhashed.onnx", b"x")  # written but not in 'files'
    stage = {"file": "unhashed.onnx", "input": "x", "cut": None, "macs": 1}
    w.manifest["variants"] = {"version": 1, "classes": 10, "exits": ["exit1"],
                              "input": {"name": "x", "shape": [1], "dtype": "float32"},
                              "widths": [{"id": "w1.0", "mult": 1.0, "stages": [stage],
                                          "full": {"file": "model.onnx", "macs": 1}}]}
    with pytest.raises(PackageError, match="'unhashed.onnx' is not in the package's hashed 'files'"):
        read(open_package(w.save()))


def test_runtime_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import edgeinf.dynamic, edgeinf.dynamic.runtime, edgeinf.dynamic.plans\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
