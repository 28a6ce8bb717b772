"""EdgeRuntime runs local variants (a smaller branch) as plans, paced like every stage."""
import numpy as np
import pytest

import edgeinf
from edgeinf.errors import ConfigError
from edgeinf.package import PackageWriter
from edgeinf.plan import Plan


@pytest.fixture(scope="module")
def rt(tmp_path_factory, zoo_path):
    full = zoo_path("hand_landmark_full")
    m = edgeinf.load(full)
    w = PackageWriter(tmp_path_factory.mktemp("pkg"), name="hand")
    w.set_model("model.tflite", full, m.inputs, m.outputs)
    lite = edgeinf.load(zoo_path("hand_landmark_lite"))
    with edgeinf.EdgeRuntime(w.save(), variants={"lite": lite}, compute_pace=3.0) as runtime:
        yield runtime, lite


def test_variant_plan_runs_the_variant(rt):
    runtime, lite = rt
    x = np.random.default_rng(0).uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)
    res = runtime.run({"input_1": x}, plan=Plan("local", variant="lite"))
    ref = lite(x)
    assert res.outcome == "local" and set(res.outputs) == set(ref)
    for k in ref:
        np.testing.assert_array_equal(res.outputs[k], ref[k])
    full = runtime.run({"input_1": x}, plan=Plan("local"))
    assert any(not np.array_equal(full.outputs[k], ref[k]) for k in ref)  # really another model


def test_variant_is_paced_from_its_reference(rt):
    runtime, _ = rt
    runtime.set_pace_reference("variant", 10.0, cut="lite")
    x = np.zeros((1, 224, 224, 3), np.float32)
    res = runtime.run({"input_1": x}, plan=Plan("local", variant="lite"))
    assert res.timings["full"] >= 30.0 - 0.5  # EMULATED: pace 3 x 10 ms reference


def test_unknown_variant_names_the_known_ones(rt):
    runtime, _ = rt
    with pytest.raises(ConfigError, match=r"variant 'big'.*\['lite'\]"):
        runtime.run({"input_1": np.zeros((1, 224, 224, 3), np.float32)}, plan=Plan("local", variant="big"))


def test_a_tflite_variant_declared_in_the_package_runs_without_variants_kwarg(tmp_path, zoo_path):
    from edgeinf.cli import main

    full, lite = zoo_path("hand_landmark_full"), zoo_path("hand_landmark_lite")
    m = edgeinf.load(full)
    w = PackageWriter(tmp_path / "pkg", name="hand")
    w.set_model("model.tflite", full, m.inputs, m.outputs)
    root = w.save()
    assert main(["variant", "add", str(root), "--name", "lite", "--model", str(lite)]) == 0
    entry = edgeinf.open_package(root).manifest["variants"]["models"][0]
    assert entry["file"] == "variants/lite/model.tflite" and entry["macs"] is None  # no MAC count for TFLite
    x = np.random.default_rng(1).uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)
    with edgeinf.EdgeRuntime(root) as runtime:
        res = runtime.run({"input_1": x}, plan=Plan("local", variant="lite"))
    ref = edgeinf.load(lite)(x)
    for k in ref:
        np.testing.assert_array_equal(res.outputs[k], ref[k])


def test_fallback_reserve_follows_the_paced_time_not_pace_x_a_slow_host_run(rt):
    runtime, _ = rt
    x = np.zeros((1, 224, 224, 3), np.float32)
    runtime.run({"input_1": x}, plan=Plan("local"))  # learns the host time of the full model
    best = runtime._best_ms[("full", None)]
    paced = runtime._local_ms("full", None, {"input_1": x})
    assert paced == pytest.approx(max(3.0 * best, runtime._est_ms[("full", None)]))
    runtime._learn("full", None, 2.5 * best)  # one slow host run on a busy machine
    # the device still takes pace x best (the pacing sleeps less), not pace x the slow run
    assert runtime._local_ms("full", None, {"input_1": x}) == pytest.approx(3.0 * best)
    runtime._learn("full", None, 4.0 * best)  # slower than the paced time: that is what it takes
    assert runtime._local_ms("full", None, {"input_1": x}) == pytest.approx(4.0 * best)
