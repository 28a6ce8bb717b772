"""Package profiles (edgeinf.profiling) on small ONNX models built here, not zoo models:
an NCHW classifier, an image + feature-vector model, a cut carrying an int64 shape tensor,
and an NHWC RGB model (for the frame codecs). Also the shared photo loader and MAC rule."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from edgeinf import photos, profiling
from edgeinf.cli import main
from edgeinf.errors import InputError, PackageError
from edgeinf.package import MANIFEST, open_package
from edgeinf.plan import LOCAL, Plan
from edgeinf.split import build_package

REPEAT = 2


def _w(rng, name, *shape):
    return nh.from_array((rng.standard_normal(shape) * (2.0 / np.prod(shape[1:])) ** 0.5).astype(np.float32), name)


def _save(nodes, name, ins, outs, inits, path):
    m = h.make_model(h.make_graph(nodes, name, ins, outs, inits), opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def _conv(x, w, y, **kw):
    return [h.make_node("Conv", [x, w], [y + "_c"], pads=[1, 1, 1, 1], **kw), h.make_node("Relu", [y + "_c"], [y])]


def nchw_classifier(path):
    rng = np.random.default_rng(0)
    nodes = _conv("image", "w1", "r1") + _conv("r1", "w2", "r2", strides=[2, 2]) + [
        h.make_node("GlobalAveragePool", ["r2"], ["p"]), h.make_node("Flatten", ["p"], ["f"]),
        h.make_node("Gemm", ["f", "w3"], ["logits"], transB=1)]
    return _save(nodes, "cls", [h.make_tensor_value_info("image", T.FLOAT, ["N", 3, 32, 32])],
                 [h.make_tensor_value_info("logits", T.FLOAT, ["N", 10])],
                 [_w(rng, "w1", 8, 3, 3, 3), _w(rng, "w2", 16, 8, 3, 3), _w(rng, "w3", 10, 16)], path)


def two_input(path):
    """An image and a non-image vector; two outputs, so fidelity is the relative-error metric."""
    rng = np.random.default_rng(1)
    nodes = _conv("image", "w1", "r1") + [
        h.make_node("GlobalAveragePool", ["r1"], ["p"]), h.make_node("Flatten", ["p"], ["f"]),
        h.make_node("Concat", ["f", "meta"], ["cat"], axis=1), h.make_node("MatMul", ["cat", "w2"], ["embedding"]),
        h.make_node("MatMul", ["embedding", "w3"], ["score"])]
    return _save(nodes, "two", [h.make_tensor_value_info("image", T.FLOAT, [1, 3, 16, 16]),
                                h.make_tensor_value_info("meta", T.FLOAT, [1, 8])],
                 [h.make_tensor_value_info("embedding", T.FLOAT, [1, 12]), h.make_tensor_value_info("score", T.FLOAT, [1, 1])],
                 [_w(rng, "w1", 8, 3, 3, 3), _w(rng, "w2", 16, 12), _w(rng, "w3", 12, 1)], path)


def int64_cut(path):
    """Shape(a) feeds a later Reshape: a cut crosses the activation and an int64 tensor."""
    rng = np.random.default_rng(2)
    nodes = _conv("x", "w1", "a") + [h.make_node("Shape", ["a"], ["shp"])] + _conv("a", "w2", "b") + [
        h.make_node("Flatten", ["b"], ["fb"]), h.make_node("Reshape", ["fb", "shp"], ["r"]),
        h.make_node("Add", ["r", "a"], ["y"])]
    return _save(nodes, "i64", [h.make_tensor_value_info("x", T.FLOAT, [1, 4, 8, 8])],
                 [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8])],
                 [_w(rng, "w1", 4, 4, 3, 3), _w(rng, "w2", 4, 4, 3, 3)], path)


def nhwc_rgb(path):
    rng = np.random.default_rng(3)
    nodes = [h.make_node("Transpose", ["frame"], ["t"], perm=[0, 3, 1, 2])] + _conv("t", "w1", "y")
    return _save(nodes, "nhwc", [h.make_tensor_value_info("frame", T.FLOAT, [1, 24, 24, 3])],
                 [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 24, 24])], [_w(rng, "w1", 4, 3, 3, 3)], path)


@pytest.fixture(scope="module")
def pkgs(tmp_path_factory):
    root = tmp_path_factory.mktemp("profiling")
    out = {}
    for make in (nchw_classifier, two_input, int64_cut, nhwc_rgb):
        model = make(root / f"{make.__name__}.onnx")
        out[make.__name__] = (model, build_package(model, root / make.__name__, at="all"))
    return out


def _labels(prof):
    return {p.plan.label() for p in prof.plans}


def test_nchw_classifier_every_plan_measured(pkgs):
    pkg = open_package(pkgs["nchw_classifier"][1])
    before = pkg.hash
    prof = profiling.profile_package(pkg, repeat=REPEAT, device="raspberry-pi-4")
    assert prof.metric == profiling.TOP1 and prof.inputs == {"source": "photos", "n": 8, "per_input": {"image": "photos"}}
    want = {"local", "offload/raw+lz4", "offload/fp16+lz4"} | {
        f"split@{c}/{k}" for c in pkg.cuts for k in profiling.TENSOR_CODECS}
    assert _labels(prof) == want  # NCHW: no JPEG/WebP offload
    for cut in pkg.cuts.values():  # raw crosses exactly the cut's bytes, plus the header allowance
        raw = prof.plan(Plan("split", cut=cut.id, codec="raw"))
        assert raw.up_bytes == cut.bytes + profiling.HEADER_BYTES and raw.accuracy == 1.0 and raw.device_ms > 0
        assert prof.plan(f"split@{cut.id}/fp16+lz4").accuracy == 1.0
    local = prof.plan(LOCAL)
    assert local.device_ms > 0 and local.up_bytes == 0 and prof.plan("offload/raw+lz4").device_ms == 0.0
    assert prof.host["gflops_fp64"] > 0 and prof.host["cpu"] and prof.host["logical_cores"] >= 1
    assert prof.device["name"] == "raspberry-pi-4" and prof.device["pace"] >= 1.0
    # profile.json is outside the hashed manifest: the package keeps its hash
    again = open_package(pkg.root)
    assert again.hash == before and "profile.json" not in (again.root / MANIFEST).read_text()
    loaded = profiling.load_profile(again)
    assert loaded.to_dict() == prof.to_dict()
    paced = {c.plan: c for c in loaded.costs(3.0)}
    split = loaded.plan(f"split@{sorted(pkg.cuts)[0]}/raw")
    assert paced[split.plan].device_ms == pytest.approx(3 * split.device_ms)
    assert paced[split.plan].server_ms == pytest.approx(split.server_ms)  # server side is never paced


def test_local_variants_are_measured_and_always_offered(pkgs):
    pkg = open_package(pkgs["nchw_classifier"][1])
    full = pkg.session("full", threads=1)

    def blurred(feeds):  # a stand-in local executor: the model on a 2x-downsampled image
        x = feeds["image"]
        return full.run({"image": np.repeat(np.repeat(x[:, :, ::2, ::2], 2, axis=2), 2, axis=3)})

    plan = Plan("local", variant="blur")
    prof = profiling.profile_package(pkg, repeat=REPEAT, local_variants={plan: blurred}, cuts=[])
    got = prof.plan(plan)
    assert got.device_ms > 0 and got.up_bytes == 0 and 0.0 <= got.accuracy <= 1.0
    assert plan in {c.plan for c in prof.costs(floor=1.0)}  # a local plan is the controller's trade


def test_floor_rule_never_bytes_alone(pkgs):
    """int2 is the smallest on every cut, but its fidelity is far under the floor: never chosen."""
    pkg = open_package(pkgs["two_input"][1])
    prof = profiling.profile_package(pkg, repeat=REPEAT, codecs=profiling.TENSOR_CODECS + ("int2+lz4",))
    assert prof.metric == profiling.REL_L2
    assert prof.inputs["per_input"] == {"image": "photos", "meta": "random"} and prof.inputs["source"] == "photos"
    cut = sorted(pkg.cuts, key=lambda c: -pkg.cuts[c].bytes)[0]
    table = prof.cuts[cut]["codecs"]
    assert min(table, key=lambda c: table[c]["bytes"]) == "int2+lz4"
    assert table["int2+lz4"]["fidelity"] < 0.8 < prof.accuracy_floor
    best = prof.best_codec(cut)
    assert best != "int2+lz4" and table[best]["fidelity"] >= prof.accuracy_floor
    assert all(table[c]["bytes"] >= table[best]["bytes"] for c in table if table[c]["fidelity"] >= 0.99)
    offered = {c.plan.label() for c in prof.costs()}
    assert f"split@{cut}/int2+lz4" not in offered and f"split@{cut}/raw" in offered
    assert f"split@{cut}/int2+lz4" in {c.plan.label() for c in prof.costs(floor=0.0)}
    with pytest.raises(PackageError, match="no cut 'c999'"):
        prof.best_codec("c999")
    with pytest.raises(PackageError, match="no plan"):
        prof.plan("split@c999/raw")


def test_int64_crossing_is_lossless(pkgs):
    pkg = open_package(pkgs["int64_cut"][1])
    cut = next(c for c in pkg.cuts.values() if any(t.dtype == np.int64 for t in c.tensors))
    prof = profiling.profile_package(pkg, repeat=REPEAT, cuts=[cut.id])
    assert prof.inputs["source"] == "random" and prof.metric == profiling.REL_L2
    plans = [p for p in prof.plans if p.plan.cut == cut.id]
    assert {p.plan.codec for p in plans} == set(profiling.TENSOR_CODECS)
    assert all(p.lossless == ("shp",) for p in plans) and prof.cuts[cut.id]["lossless"] == ["shp"]
    # the int64 tensor crosses raw under every codec: 4 x int64 bytes in each encoded size
    assert all(v["bytes"] >= 32 for v in prof.cuts[cut.id]["codecs"].values())
    assert prof.plan(f"split@{cut.id}/raw").accuracy == 1.0


def test_nhwc_rgb_gets_frame_codecs(pkgs):
    prof = profiling.profile_package(pkgs["nhwc_rgb"][1], repeat=REPEAT, cuts=[])
    assert {"offload/jpeg90", "offload/jpeg75", "offload/webp75"} <= _labels(prof)
    jpeg = prof.plan("offload/jpeg75")
    assert jpeg.up_bytes < prof.plan("offload/raw+lz4").up_bytes and 0.5 < jpeg.accuracy < 1.0


def test_user_inputs_and_npz_mismatch(pkgs, tmp_path):
    pkg = open_package(pkgs["two_input"][1])
    rng = np.random.default_rng(5)
    good = {"image": rng.random((3, 1, 3, 16, 16), np.float32), "meta": rng.random((3, 1, 8), np.float32)}
    np.savez(tmp_path / "ok.npz", **good)
    stacked = profiling.load_inputs_npz(tmp_path / "ok.npz", pkg.inputs)
    prof = profiling.profile_package(pkg, stacked, repeat=REPEAT, cuts=[])
    assert prof.inputs["source"] == "user" and prof.inputs["n"] == 3
    bad = {"wrong name": {"image": good["image"], "metadata": good["meta"]},
           "wrong shape": {"image": good["image"][:, :, :, :8], "meta": good["meta"]},
           "wrong dtype": {"image": good["image"].astype(np.float64), "meta": good["meta"]},
           "no sample axis": {"image": good["image"][0], "meta": good["meta"][0]}}
    for _why, arrays in bad.items():
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(InputError, match=r"expected image: Nx1x3x16x16 float32; meta: Nx1x8 float32"):
            profiling.load_inputs_npz(tmp_path / "bad.npz", pkg.inputs)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        profiling.load_inputs_npz(tmp_path / "junk.npz", pkg.inputs)


def test_missing_and_stale_profile(pkgs, tmp_path):
    import shutil

    root = shutil.copytree(pkgs["nhwc_rgb"][1], tmp_path / "pkg")
    (root / "profile.json").unlink(missing_ok=True)
    with pytest.raises(PackageError, match=r"no profile.json: run `edgeinf profile"):
        profiling.load_profile(root)
    profiling.profile_package(root, repeat=1, cuts=[])
    assert profiling.load_profile(root).package_hash == open_package(root).hash
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["name"] = "renamed"  # any manifest change is a new package hash
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match=r"stale: profiled package hash .* run `edgeinf profile"):
        profiling.load_profile(root)


def test_cli_split_profile_and_errors(pkgs, tmp_path, capsys):
    model = pkgs["two_input"][0]
    rng = np.random.default_rng(6)
    np.savez(tmp_path / "in.npz", image=rng.random((2, 1, 3, 16, 16), np.float32), meta=rng.random((2, 1, 8), np.float32))
    out = tmp_path / "pkg"
    assert main(["split", str(model), "--all", "-o", str(out), "--profile", "--inputs", str(tmp_path / "in.npz"),
                 "--device", "raspberry-pi-4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["inputs"]["source"] == "user" and doc["inputs"]["n"] == 2 and doc["device"]["name"] == "raspberry-pi-4"
    assert profiling.load_profile(out).to_dict() == doc
    assert main(["profile", str(out), "--repeat", "1"]) == 0
    text = capsys.readouterr().out
    assert "best codec (fewest bytes at fidelity >= 0.99)" in text and "1-rel_l2" in text
    np.savez(tmp_path / "bad.npz", image=np.zeros((2, 1, 3, 16, 16), np.float32))
    assert main(["profile", str(out), "--inputs", str(tmp_path / "bad.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "expected image: Nx1x3x16x16 float32; meta: Nx1x8 float32" in err
    assert main(["profile", str(out), "--at", "c999-zzzz"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no cut 'c999-zzzz'" in err
    assert main(["split", str(model), "--all", "-o", str(tmp_path / "never"), "--profile",
                 "--inputs", str(tmp_path / "bad.npz")]) == 1  # checked before packaging
    assert "expected image" in capsys.readouterr().err and not (tmp_path / "never").exists()
    (tmp_path / "corrupt.onnx").write_bytes(model.read_bytes()[:200])
    assert main(["split", str(tmp_path / "corrupt.onnx"), "-o", str(tmp_path / "x"), "--profile"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "corrupt.onnx" in err


def test_model_profile_best_codec_respects_floor(pkgs, tmp_path, capsys):
    model = pkgs["two_input"][0]
    assert main(["profile", str(model), "--repeat", "1", "--warmup", "0", "-o", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["host"]["gflops_fp64"] > 0 and doc["metric"] == profiling.REL_L2
    for c in doc["cuts"]:
        fid, best = c["codec_fidelity"], c["best_codec"]
        assert fid[best] >= 0.99 and fid["int2"] < 0.99 and best != "int2"


def test_pace_for_uses_the_measured_host():
    from edgeinf.split.devices import load_device

    pi = load_device("raspberry-pi-4")
    pace, label = profiling.pace_for({"gflops_fp64": 4 * pi.cpu_gflops, "cpu": "X"}, "raspberry-pi-4")
    assert pace == pytest.approx(4.0) and "raspberry-pi-4" in label and "EMULATED" in label
    pace, label = profiling.pace_for({"gflops_fp64": pi.cpu_gflops / 2, "cpu": "X"}, "raspberry-pi-4")
    assert pace == 1.0 and "faster" in label


def test_fidelity_metrics_by_hand():
    ref = [{"logits": np.array([[0.1, 0.9, 0.0]], np.float32)}, {"logits": np.array([[0.8, 0.1, 0.1]], np.float32)}]
    got = [{"logits": np.array([[0.2, 0.7, 0.1]], np.float32)}, {"logits": np.array([[0.1, 0.8, 0.1]], np.float32)}]
    assert profiling.metric_for(ref[0]) == profiling.TOP1 and profiling.fidelity.fidelity(profiling.TOP1, ref, got) == 0.5
    ref = [{"a": np.array([3.0, 4.0]), "n": np.array([1, 2, 3, 4])}]
    got = [{"a": np.array([3.0, 4.5]), "n": np.array([1, 2, 3, 0])}]  # rel L2 0.1; ints 1/4 differ
    assert profiling.metric_for(ref[0]) == profiling.REL_L2
    assert profiling.fidelity.fidelity(profiling.REL_L2, ref, got) == pytest.approx(0.75)


def test_one_photo_loader():
    x = photos.load(8, 32)
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32 and 0.0 <= x.min() < x.max() <= 1.0
    assert len({a.tobytes() for a in x}) == 8  # past six: mirrored copies, all different
    assert photos.load(2, (24, 40), layout="NCHW", dtype=np.uint8).shape == (2, 3, 24, 40)
    assert photos.load(1, 16, channels=1).shape == (1, 16, 16, 1)
    assert photos.image("coffee").shape == (400, 600, 3)


def test_one_mac_rule_gemm_trans_a(tmp_path):
    """Gemm with transA=1: A is K x M = 5 x 3, B 5 x 4, out 3 x 4: 3 * 4 * 5 = 60 MACs by hand."""
    from edgeinf.dynamic import macs
    from edgeinf.split import open_model
    from edgeinf.split.flops import node_costs, onnx_macs

    path = _save([h.make_node("Gemm", ["a", "b"], ["y"], transA=1)], "g", [h.make_tensor_value_info("a", T.FLOAT, [5, 3])],
                 [h.make_tensor_value_info("y", T.FLOAT, [3, 4])], [nh.from_array(np.ones((5, 4), np.float32), "b")],
                 tmp_path / "gemm.onnx")
    assert onnx_macs(path) == macs.count(path) == sum(c["macs"] for c in node_costs(open_model(path))) == 60
