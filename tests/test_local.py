"""Local executors on a user's own models: a classifier, a narrower variant, a two-stage exit model.

The models are exported here from torch (not the zoo), split by ``edgeinf.split.build_package``
and declared with the ``edgeinf variant`` CLI; every executor is checked against running
its graphs directly with ONNX Runtime.

The exit model is built so that confidence and agreement go together: the exit head has no
bias and the full model adds a constant bias to the exit's logits, so a strong input (large
amplitude) gives a confident exit that agrees with the full model, and a faint one gives a
near-uniform exit that the bias overrules.
"""
import json

import numpy as np
import pytest
import torch
from torch import nn

import edgeinf
import edgeinf.dynamic
from edgeinf import local as L
from edgeinf.cli import main
from edgeinf.errors import ConfigError, ModelError
from edgeinf.package import open_package
from edgeinf.plan import LOCAL, Plan
from edgeinf.split import build_package

SHAPE = (1, 3, 16, 16)
BIAS = torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0])


class Body(nn.Module):
    def __init__(self, ch=8):
        super().__init__()
        self.conv = nn.Conv2d(3, ch, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.relu(self.conv(x))


class ExitHead(nn.Module):
    def __init__(self, ch=8):
        super().__init__()
        self.fc = nn.Linear(ch, 5, bias=False)

    def forward(self, f):
        return self.fc(f.mean((2, 3)))


class Rest(nn.Module):
    """Stage 1: the exit's logits, the model's bias and a small second branch."""

    def __init__(self, head):
        super().__init__()
        self.head, self.conv, self.fc = head, nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 5)

    def forward(self, f):
        return self.head(f) + BIAS + 0.01 * self.fc(torch.relu(self.conv(f)).mean((2, 3)))


class Full(nn.Module):
    def __init__(self, body, rest):
        super().__init__()
        self.body, self.rest = body, rest

    def forward(self, x):
        return self.rest(self.body(x))


class Stage0(nn.Module):
    def __init__(self, body, head):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x):
        f = self.body(x)
        return self.head(f), f


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = Body(4), ExitHead(4)

    def forward(self, x):
        return self.head(self.body(x))


def _export(module, path, inputs, outputs, example):
    torch.onnx.export(module.eval(), example, str(path), input_names=inputs, output_names=outputs,
                      dynamic_axes={n: {0: "batch"} for n in inputs + outputs}, dynamo=False)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("models")
    body, head = Body(), ExitHead()
    rest = Rest(head)
    x, f = torch.zeros(SHAPE), torch.zeros(1, 8, 16, 16)
    with torch.no_grad():
        return {"full": _export(Full(body, rest), d / "full.onnx", ["x"], ["logits"], x),
                "small": _export(Small(), d / "small.onnx", ["x"], ["logits"], x),
                "s0": _export(Stage0(body, head), d / "s0.onnx", ["x"], ["logits", "feat"], x),
                "s1": _export(rest, d / "s1.onnx", ["feat"], ["logits"], f),
                "bad": _export(Small(), d / "bad.onnx", ["x"], ["scores"], x)}


def _inputs(n, amp, seed):
    return np.random.default_rng(seed).standard_normal((n,) + SHAPE).astype(np.float32) * amp


@pytest.fixture(scope="module")
def pkg_dir(models, tmp_path_factory):
    out = build_package(models["full"], tmp_path_factory.mktemp("pkg") / "user")
    calib = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(calib, x=np.concatenate([_inputs(24, 100.0, 1), _inputs(24, 0.01, 2)]))
    for argv in (["add", str(out), "--name", "small", "--model", str(models["small"])],
                 ["add-exits", str(out), "--name", "ee", "--stages", f"{models['s0']},{models['s1']}"],
                 ["add-branch", str(out), "--small", "small", "--big", "full"],
                 ["calibrate", str(out), "--inputs", str(calib), "--max-drop", "0.01"]):
        assert main(["variant", *argv]) == 0, argv
    return out


@pytest.fixture(scope="module")
def execs(pkg_dir):
    return L.executors(open_package(pkg_dir))


def _direct(path, feeds):
    return edgeinf.load(path).run(feeds)


EE, DROP1 = Plan("local", variant="ee"), Plan("local", variant="ee", exit="drop1")
BRANCH = Plan("local", branch=("small", "full"))


def test_executors_list_every_declared_plan(execs, pkg_dir, capsys):
    assert set(execs) == {LOCAL, Plan("local", variant="small"), EE, DROP1,
                          Plan("local", variant="ee", exit="exit1"), BRANCH}
    assert main(["variant", "list", str(pkg_dir), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["plans"]
    assert {r["label"] for r in listed} == {p.label() for p in execs}
    kinds = {type(e).__name__ for e in execs.values()}
    assert kinds == {"FullModel", "Variant", "StagedExit", "BranchPair"}


def test_full_and_variant_match_their_own_graphs(execs, models):
    feeds = {"x": _inputs(1, 1.0, 5)[0]}
    for plan, path in ((LOCAL, models["full"]), (Plan("local", variant="small"), models["small"])):
        execs[plan].warmup()
        out, _ = execs[plan].run(feeds)
        np.testing.assert_array_equal(out["logits"], _direct(path, feeds)["logits"])


def test_staged_exit_matches_the_stage_graphs(execs, models):
    feeds = {"x": _inputs(1, 1.0, 6)[0]}
    s0 = _direct(models["s0"], feeds)
    s1 = _direct(models["s1"], {"feat": s0["feat"]})
    out, info = execs[EE].run(feeds)  # exit=None: every stage
    np.testing.assert_array_equal(out["logits"], s1["logits"])
    assert info["exit"].tolist() == [1] and info["stages"] == 2
    out, info = execs[Plan("local", variant="ee", exit="exit1")].run(feeds)  # forced
    np.testing.assert_array_equal(out["logits"], s0["logits"])
    assert info["exit"].tolist() == [0] and info["stages"] == 1
    full = _direct(models["full"], feeds)["logits"]
    np.testing.assert_allclose(s1["logits"], full, rtol=1e-5, atol=1e-5)  # the stages are the model


def test_calibrated_exit_leaves_on_confident_inputs_only(execs, models, pkg_dir):
    prof = open_package(pkg_dir).manifest["variants"]["staged"][0]["profiles"]["drop1"]
    assert prof["thresholds"][0] is not None and prof["calib"]["exit_rate"][0] > 0.3, prof
    strong, faint = _inputs(1, 100.0, 7)[0], _inputs(1, 0.01, 8)[0]
    out, info = execs[DROP1].run({"x": strong})
    assert info["exit"].tolist() == [0]
    np.testing.assert_array_equal(out["logits"], _direct(models["s0"], {"x": strong})["logits"])
    out, info = execs[DROP1].run({"x": faint})
    assert info["exit"].tolist() == [1]
    np.testing.assert_allclose(out["logits"], _direct(models["full"], {"x": faint})["logits"], atol=1e-5)
    # a batch: each sample leaves on its own, in order
    both = np.concatenate([strong, faint, strong])
    out, info = execs[DROP1].run({"x": both})
    assert info["exit"].tolist() == [0, 1, 0]
    np.testing.assert_array_equal(out["logits"][0], execs[DROP1].run({"x": strong})[0]["logits"][0])
    np.testing.assert_array_equal(out["logits"][1], execs[DROP1].run({"x": faint})[0]["logits"][0])


def test_branch_pair_switches_on_the_default_measure(execs):
    pair = execs[BRANCH]
    pair.reset()
    x = {"x": _inputs(1, 1.0, 9)[0]}
    sides = [pair.run(x)[1]["side"] for _ in range(4)]  # the same frame: perfectly consistent
    assert sides == ["small"] * 4
    _, info = pair.run({"x": -50 * x["x"]})  # a frame far from the last: change >> jump
    assert info["side"] == "small" and info["change"] > pair.config.jump
    assert pair.run(x)[1]["side"] == "big"
    pair.reset()
    assert pair.run(x)[1]["side"] == "small"


def test_branch_pair_follows_a_user_measure_up_and_back_down(execs):
    level = {"d": 0.0}
    cfg = edgeinf.dynamic.BranchConfig(jump=0.5, agree=0.2, probe_every=2, calm_probes=2, min_big=3)
    pair = L.BranchPair(BRANCH, execs[Plan("local", variant="small")], execs[LOCAL],
                        measure=lambda a, b: level["d"], config=cfg)
    x = {"x": _inputs(1, 1.0, 10)[0]}
    sides = [pair.run(x)[1]["side"] for _ in range(3)]
    level["d"] = 0.9  # over jump: up on the next frame
    sides += [pair.run(x)[1]["side"] for _ in range(4)]
    level["d"] = 0.1  # probes agree again: back down after min_big frames and two calm probes
    sides += [pair.run(x)[1]["side"] for _ in range(10)]
    assert sides[:4] == ["small"] * 4 and sides[4] == "big"
    down = sides.index("small", 4)
    assert down >= 4 + cfg.min_big and all(s == "big" for s in sides[4:down]), sides


def test_bad_contract_is_one_clear_error_and_leaves_the_package(models, pkg_dir, capsys):
    before = open_package(pkg_dir).hash
    assert main(["variant", "add", str(pkg_dir), "--name", "bad", "--model", str(models["bad"])]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing output logits" in err and "extra output(s) ['scores']" in err
    with pytest.raises(ModelError, match=r"stage 0 .* takes input feat.*available: \[.x.\]"):
        edgeinf.dynamic.add_exits(pkg_dir, "ee2", [models["s1"], models["s1"]])
    with pytest.raises(ConfigError, match="already has a variant 'small'"):
        edgeinf.dynamic.add_variant(pkg_dir, "small", models["small"])
    with pytest.raises(ConfigError, match="branch member 'huge'.*'small'"):
        edgeinf.dynamic.add_branch(pkg_dir, "small", "huge")
    assert open_package(pkg_dir).hash == before


def test_edge_runtime_runs_every_local_plan_through_the_executors(pkg_dir, execs):
    x = {"x": _inputs(1, 100.0, 9)[0]}  # a confident one (0.98 max_prob at exit 1)
    with edgeinf.EdgeRuntime(pkg_dir) as rt:
        for plan in execs:
            rt.warmup(plan, samples=x)
            res = rt.run(x, plan=plan)
            ref, _ = execs[plan].run(x)
            np.testing.assert_allclose(res.outputs["logits"], ref["logits"], atol=1e-5, err_msg=str(plan))
        assert rt.run(x, plan=DROP1).info["exit"].tolist() == [0]
        assert rt.run(x, plan=BRANCH).info["branch"] in ("small", "full")


def test_staged_exit_names_its_inputs(execs):
    with pytest.raises(edgeinf.errors.InputError, match=r"staged variant 'ee' expects inputs \[x: batchx3x16x16"):
        execs[DROP1].run({"image": np.zeros(SHAPE, np.float32)})


def test_recalibrate_without_inputs_and_replace_a_variant(pkg_dir, models, tmp_path):
    import shutil

    copy = shutil.copytree(pkg_dir, tmp_path / "copy")
    report = edgeinf.dynamic.calibrate_variants(copy, samples=8, max_drop=0.05)
    assert report["inputs"].startswith("generated") and report["samples"] == 8
    assert "drop5" in open_package(copy).manifest["variants"]["staged"][0]["profiles"]
    edgeinf.dynamic.add_variant(copy, "small", models["full"], replace=True)  # now the full graph
    pkg = open_package(copy)  # every listed file still hashes
    files = [f["file"] for f in pkg.manifest["files"]]
    assert files.count("variants/small/model.onnx") == 1 and pkg.hash != open_package(pkg_dir).hash
    x = {"x": _inputs(1, 1.0, 12)[0]}
    out, _ = L.executors(pkg)[Plan("local", variant="small")].run(x)
    np.testing.assert_array_equal(out["logits"], _direct(models["full"], x)["logits"])


def test_executors_carry_the_calibrated_fidelity(execs, pkg_dir):
    v = open_package(pkg_dir).manifest["variants"]
    assert execs[LOCAL].fidelity == 1.0
    assert execs[Plan("local", variant="small")].fidelity == v["models"][0]["fidelity"]["value"]
    assert execs[DROP1].fidelity == v["staged"][0]["profiles"]["drop1"]["calib"]["agreement"]
    assert execs[Plan("local", variant="ee", exit="exit1")].fidelity == v["staged"][0]["fidelity"]["per_exit"][0]
    assert execs[Plan("local", variant="ee", exit="exit1")].fidelity < execs[EE].fidelity == 1.0
