"""The slimmable bottleneck on the real hand_landmark_full teacher (edgeinf.bottleneck).

The package is trained once (a few minutes on 2 cores, `make models` does it first) and
cached in $EDGEINF_CACHE/packages/hand_landmark_full-bottleneck. Checks: the TFLite ->
ONNX -> torch conversion on photographs, every exported width against the torch model,
width switching with nothing loaded, local fallback, the controller moving between widths
when the bandwidth steps, and the clear errors for bad input.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgeinf.errors import ConfigError, EdgeInfError, ModelError, PackageError
from edgeinf.plan import Plan


@pytest.fixture(scope="session")
def bn_pkg():
    from edgeinf.bottleneck import build
    from edgeinf.package import open_package

    if not build.current():
        try:
            import torch  # noqa: F401
            import tflite2onnx  # noqa: F401
        except ImportError as e:
            pytest.fail(f"building the bottleneck package needs torch and tflite2onnx ({e}): "
                        'pip install torch==2.13.0 "edgeinf[train]", as `make test` does; no skip, CI must run it')
    return open_package(build.ensure())


@pytest.fixture(scope="session")
def frames():
    from edgeinf.bottleneck import data

    return data.held_out(views=1)[:6]


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12))


# -- the teacher ----------------------------------------------------------------------------
def test_teacher_conversion_is_faithful_on_photographs(bn_pkg, frames):
    from edgeinf import zoo
    from edgeinf.bottleneck import build, teacher

    onx = build._work_dir() / bn_pkg.manifest["bottleneck"]["teacher"]["onnx"]
    chk = teacher.check(zoo.path("hand_landmark_full"), onx, frames)
    assert chk["onnx_vs_tflite"] <= teacher.MAX_REL_ERR and chk["torch_vs_onnx"] <= teacher.MAX_REL_ERR, chk
    assert chk["outputs"] == [s.name for s in bn_pkg.outputs]


def test_converter_names_an_unsupported_op(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgeinf.bottleneck import teacher

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(g), tmp_path / "relu.onnx")
    with pytest.raises(ModelError, match=r"Relu.*not supported"):
        teacher.load_torch(tmp_path / "relu.onnx")


# -- export ---------------------------------------------------------------------------------
def test_each_width_head_and_tail_reproduce_the_torch_model(bn_pkg, frames):
    import torch

    from edgeinf.bottleneck import build, teacher
    from edgeinf.bottleneck.net import Head, Tail
    from edgeinf.bottleneck.train import Recipe

    sec = bn_pkg.manifest["bottleneck"]
    tmod = teacher.load_torch(build._work_dir() / sec["teacher"]["onnx"])
    bn, _ = build._weights(tmod, sec["teacher"]["sha256"], sec["seed"], Recipe(), None)
    name = bn_pkg.inputs[0].name
    for w in sec["widths"]:
        head, tail = bn_pkg.session("head", w["cut"]), bn_pkg.session("tail", w["cut"])
        th, tt = Head(tmod, build.CUT, bn, w["width"]), Tail(tmod, build.CUT, bn, w["width"])
        for f in frames[:3]:
            z = head.run({name: f[None]})["z"]
            with torch.no_grad():
                zt = th(torch.from_numpy(f[None]))
                ref = dict(zip(tmod.graph.outputs, (t.numpy() for t in tt(zt))))
            assert z.shape == (1, w["width"], 28, 28)
            assert _rel(zt.numpy(), z) < 1e-4, w["cut"]
            got = tail.run({"z": zt.numpy()})
            for k, v in ref.items():
                assert np.allclose(got[k], v, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(v).max()))), (w["cut"], k)


def test_exported_graphs_carry_no_pad_or_constant_chains(bn_pkg):
    """The exports are simplified: ORT leaves a Pad unfused and outside its blocked conv
    layout (a tail 11.5 ms instead of 9.3 ms on one thread), so none may remain."""
    import collections

    import onnx

    for cid in [w["cut"] for w in bn_pkg.manifest["bottleneck"]["widths"]]:
        for role in ("head", "tail"):
            ops = collections.Counter(n.op_type for n in onnx.load(str(bn_pkg.path(bn_pkg.file_for(role, cid)))).graph.node)
            assert not ops.keys() & {"Pad", "Constant", "ConstantOfShape", "Reshape", "Slice", "Cast"}, (cid, role, ops)
            assert ops["Conv"] == (5 if role == "head" else 49), (cid, role, ops)


def test_simplify_folds_asymmetric_pads_into_conv_with_the_same_outputs(tmp_path):
    """TF 'SAME' stride-2 padding is (0, 1): the fused Conv must pad asymmetrically, exactly."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgeinf.bottleneck.simplify import simplify

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    pads = [helper.make_node("Constant", [], ["p0"], value=numpy_helper.from_array(np.array([0, 0, 0, 0], np.int64))),
            helper.make_node("Constant", [], ["p1"], value=numpy_helper.from_array(np.array([0, 0, 1, 1], np.int64))),
            helper.make_node("Concat", ["p0", "p1"], ["pads"], axis=0)]  # computed, as torch writes it
    nodes = pads + [helper.make_node("Pad", ["x", "pads"], ["xp"], mode="constant"),
                    helper.make_node("Conv", ["xp", "w"], ["y"], strides=[2, 2]),
                    helper.make_node("Pad", ["y", "pads"], ["yp"], mode="edge"),  # not zeros: must stay
                    helper.make_node("Conv", ["yp", "w2"], ["out"])]
    w2 = numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 9])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 5, 5])], [w, w2])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    res = simplify(path)
    assert res["after"] == {"Conv": 2, "Pad": 1}, res
    conv = next(n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv")
    assert list(helper.get_attribute_value(next(a for a in conv.attribute if a.name == "pads"))) == [0, 0, 1, 1]
    got = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert want.shape == got.shape == (1, 2, 5, 5)
    np.testing.assert_array_equal(got, want)


def test_manifest_records_teacher_and_agreement_per_width_and_codec(bn_pkg):
    from edgeinf.bottleneck import plans as P

    ws = P.widths(bn_pkg)
    assert [w.width for w in ws] == [1, 2, 4, 8]
    sec = P.section(bn_pkg)
    assert sec["teacher"]["sha256"] == bn_pkg.model.sha256
    for w in ws:
        assert set(w.agreement) == set(sec["codecs"])
        assert all(0.0 <= a <= 1.0 for a in w.agreement.values())
    # NOTE: no ordering of agreement by width is asserted: with the CI-sized recipe all four
    # widths agree alike (docs/bottleneck.md, Results), which is a finding, not a test to tune


# -- runtime --------------------------------------------------------------------------------
def _local_split(pkg, plan: Plan, x):
    """head -> codec -> tail here, as the worker would compute it."""
    from edgeinf.profiling.crossing import TensorCodec

    z = pkg.session("head", plan.cut, threads=1).run({pkg.inputs[0].name: x})
    tc = TensorCodec(plan.codec, pkg.cut(plan.cut).channel_axes())
    return pkg.session("tail", plan.cut, threads=1).run(tc.decode(tc.encode(z)))


@pytest.mark.slow
def test_width_switching_per_request_loads_nothing(bn_pkg, frames, monkeypatch):
    import onnxruntime

    import edgeinf.backends
    from edgeinf.evaluation.setup import worker
    from edgeinf.runtime import EdgeRuntime

    plans = [Plan("split", cut=f"bn-w{w}", codec="int8-pc+lz4") for w in (1, 2, 4, 8)]
    x = frames[0][None]
    want = {p: _local_split(bn_pkg, p, x) for p in plans}
    with worker(bn_pkg.root) as port, EdgeRuntime(bn_pkg, f"tcp://127.0.0.1:{port}", threads=1,
                                                   deadline_s=10.0) as rt:
        for p in plans:
            rt.warmup(p, {bn_pkg.inputs[0].name: x})
            assert rt.run({bn_pkg.inputs[0].name: x}, plan=p).outcome == "offload"

        def refuse(*a, **k):
            raise AssertionError("a model was loaded while switching widths")

        monkeypatch.setattr(edgeinf.backends, "load", refuse)
        monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
        for i in range(12):
            p = plans[(i * 3) % 4]  # a different width every request
            res = rt.run({bn_pkg.inputs[0].name: x}, plan=p)
            assert res.outcome == "offload" and res.plan == p, res.error
            for k, v in want[p].items():
                np.testing.assert_allclose(res.outputs[k], v, rtol=1e-4, atol=1e-4)


def test_bottleneck_plan_falls_back_to_local_when_the_worker_is_gone(bn_pkg, frames):
    from edgeinf.evaluation.setup import free_port
    from edgeinf.runtime import EdgeRuntime

    p = Plan("split", cut="bn-w4", codec="int8-pc+lz4")
    x = frames[1][None]
    with EdgeRuntime(bn_pkg, f"tcp://127.0.0.1:{free_port()}", threads=1, deadline_s=1.0) as rt:
        rt.warmup(p, {bn_pkg.inputs[0].name: x})
        res = rt.run({bn_pkg.inputs[0].name: x}, plan=p)
    assert res.outcome == "local_fallback", res
    full = bn_pkg.session("full", threads=1).run({bn_pkg.inputs[0].name: x})
    assert res.outputs.keys() == full.keys()
    for k, v in full.items():  # the fallback is the unmodified model, not the width's own tail
        np.testing.assert_array_equal(res.outputs[k], v)


# -- controller -----------------------------------------------------------------------------
def test_controller_moves_between_widths_when_the_bandwidth_steps(bn_pkg):
    from edgeinf.bottleneck import plans as P
    from edgeinf.controller import Controller, Objective
    from edgeinf.evaluation import replay as R
    from edgeinf.netem import Link, Trace

    costs = [c for c in P.costs(bn_pkg, floor=0.0)[0]
             if c.plan == Plan("local") or str(c.plan.cut).startswith("bn-w")]
    local_ms = next(c.device_ms for c in costs if c.plan == Plan("local"))
    # "best fidelity within a deadline": the objective under which a width is worth its bytes
    ctl = Controller(costs, Objective("accuracy", deadline_ms=local_ms - 1.0))
    link = Link(Trace.steps([(10.0, 50.0), (10.0, 1.0), (10.0, 50.0)]), delay_ms=2.0)  # a LAN server
    choose, feedback = R.adaptive(ctl)
    served = R.run(link, costs, [i * 100.0 for i in range(300)], choose, fallback=Plan("local"),
                   feedback=feedback)

    # NOTE: local cannot meet the deadline, so each request goes to the most faithful width
    # (and codec) that can: at 50 Mbit/s that is the most faithful of all, at 1 Mbit/s only
    # narrower ones fit. Which width is most faithful is the training's outcome (they differ
    # by < 1%), so the test reads it from the profile rather than assuming the widest
    cost = {c.plan: c for c in costs}
    best = max((c for c in costs if c.plan.kind == "split"), key=lambda c: c.accuracy)
    high, low, back = ([served[i].plan for i in range(a, a + 20) if "explore" not in served[i].reason]
                       for a in (80, 180, 280))  # (every 100th request tries the runner-up)
    trail = [[str(p) for p in w] for w in (high, low, back)]
    assert all(p == best.plan for p in high + back), (str(best.plan), trail)
    # local would miss the deadline: only after a request timed out behind the 24 kB probe
    # that looks for a faster link every 2 s (192 ms of a 1 Mbit/s uplink)
    assert sum(p.kind != "split" for p in low) <= 2, trail
    assert np.median([cost[p].up_bytes for p in low if p.kind == "split"]) < best.up_bytes, trail  # narrower


# -- bad input ------------------------------------------------------------------------------
def test_unknown_width_or_codec_names_the_choices(bn_pkg):
    from edgeinf.bottleneck import plans as P

    assert P.plan(bn_pkg, 4, "int8-pc+lz4") == Plan("split", cut="bn-w4", codec="int8-pc+lz4")
    with pytest.raises(ConfigError, match=r"no bottleneck width 3; widths: \[1, 2, 4, 8\]"):
        P.plan(bn_pkg, 3, "int8-pc+lz4")
    with pytest.raises(ConfigError, match="codec must be one of"):
        P.plan(bn_pkg, 4, "int3")
    with pytest.raises(PackageError, match="no cut 'bn-w3'"):
        bn_pkg.cut("bn-w3")


def test_package_for_another_teacher_is_refused(bn_pkg):
    from edgeinf import zoo
    from edgeinf.bottleneck import plans as P
    from edgeinf.package import sha256_file

    P.check_teacher(bn_pkg, sha256_file(zoo.path("hand_landmark_full")))
    with pytest.raises(PackageError, match="trained for teacher"):
        P.check_teacher(bn_pkg, sha256_file(zoo.path("hand_landmark_lite")))


def test_input_of_the_wrong_shape_is_refused(bn_pkg):
    from edgeinf.bottleneck import plans as P

    P.check_input(bn_pkg, np.zeros((1, 224, 224, 3), np.float32))
    with pytest.raises(ConfigError, match=r"must be float32\[1, 224, 224, 3\]"):
        P.check_input(bn_pkg, np.zeros((1, 3, 224, 224), np.float32))
    with pytest.raises(EdgeInfError):
        bn_pkg.session("head", "bn-w4").run({"input_1": np.zeros((1, 3, 224, 224), np.float32)})


def test_package_without_a_bottleneck_section_says_how_to_build_one(tmp_path):
    from edgeinf.bottleneck import plans as P
    from edgeinf.package import open_package

    (tmp_path / "m.onnx").write_bytes(b"x")
    from edgeinf.package import sha256_file

    (tmp_path / "edgeinf.json").write_text(json.dumps({
        "format": "edgeinf-package", "version": 1, "name": "plain",
        "model": {"file": "m.onnx", "sha256": sha256_file(tmp_path / "m.onnx"), "inputs": [], "outputs": []}}))
    with pytest.raises(PackageError, match="train_bottleneck.py"):
        P.widths(open_package(tmp_path))


# -- benchmark ------------------------------------------------------------------------------
def test_bench_reports_the_issue_keys(bn_pkg):
    from edgeinf.bench import bottleneck as B

    assert B.UMTS.is_file(), f"the UMTS trace {B.UMTS} is missing from the package data"
    res = B.measure(bn_pkg, "raspberry-pi-4", 0.0, B.UMTS)
    assert {"teacher", "widths", "local_ms", "band_mbit", "split_vs_local", "split_vs_offload",
            "controller"} <= set(res)
    for w in res["widths"]:
        assert {"width", "bytes", "jpeg90_bytes", "agreement", "head_ms", "tail_ms"} <= set(w)
        assert 0 < w["bytes"] < w["jpeg90_bytes"]
    lo, hi = res["band_mbit"]
    assert hi >= 4 * lo * 0.999
    assert {"trace", "adaptive_vs_best_static"} <= set(res["controller"])
