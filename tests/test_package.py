"""Model package: manifest, hashes checked at load, cached sessions."""
import json

import numpy as np
import pytest

import edgeinf
from edgeinf.errors import PackageError
from edgeinf.package import PackageWriter, open_package


@pytest.fixture()
def pkg_dir(tmp_path, mobilenet_path):
    m = edgeinf.load(mobilenet_path)
    w = PackageWriter(tmp_path / "pkg", name="mobilenetv2")
    w.set_model("model.onnx", mobilenet_path, m.inputs, m.outputs)
    w.add_file("notes/calibration.json", b'{"top1": 0.5}')
    return w.save()


def test_roundtrip_and_session_is_cached(pkg_dir):
    pkg = open_package(pkg_dir)
    assert pkg.name == "mobilenetv2" and len(pkg.hash) == 64
    assert pkg.inputs[0].shape == ("batch", 3, 224, 224)
    s1, s2 = pkg.session("full"), pkg.session("full")
    assert s1 is s2
    out = s1(np.zeros((1, 3, 224, 224), np.float32))
    assert out["logits"].shape == (1, 1000)


def test_tampered_file_is_named(pkg_dir):
    with open(pkg_dir / "notes/calibration.json", "ab") as f:
        f.write(b" ")
    with pytest.raises(PackageError, match=r"notes/calibration\.json does not match its hash"):
        open_package(pkg_dir)


def test_missing_file_is_named(pkg_dir):
    (pkg_dir / "model.onnx").unlink()
    with pytest.raises(PackageError, match="missing: model.onnx"):
        open_package(pkg_dir)


def test_newer_version_is_refused(pkg_dir):
    man = json.loads((pkg_dir / "edgeinf.json").read_text())
    man["version"] = 99
    (pkg_dir / "edgeinf.json").write_text(json.dumps(man))
    with pytest.raises(PackageError, match="newer"):
        open_package(pkg_dir)


def test_path_escape_is_refused(pkg_dir):
    man = json.loads((pkg_dir / "edgeinf.json").read_text())
    man["files"] = [{"file": "../../etc/passwd", "sha256": "0" * 64}]
    (pkg_dir / "edgeinf.json").write_text(json.dumps(man))
    with pytest.raises(PackageError, match="outside"):
        open_package(pkg_dir)


def test_unknown_cut_names_choices(pkg_dir):
    pkg = open_package(pkg_dir)
    with pytest.raises(PackageError, match="no cut 'c9'"):
        pkg.cut("c9")


def test_not_a_package(tmp_path):
    with pytest.raises(PackageError, match="not a model package"):
        open_package(tmp_path)


def test_build_package_writes_verified_cuts(tmp_path, mobilenet_path):
    from edgeinf.split import build_package, open_model

    m = open_model(mobilenet_path)
    at = [m.cuts[3].id, m.cuts[-1].id]
    pkg = open_package(build_package(m, tmp_path / "split", at=at))
    assert sorted(pkg.cuts) == sorted(at)
    assert pkg.manifest["split"]["input_shapes"] == {"input": [1, 3, 224, 224]}
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    ref = pkg.session("full")(x)["logits"]
    for cid, cut in pkg.cuts.items():
        assert cut.extra["verify"]["ok"] and cut.bytes == sum(t.nbytes() for t in cut.tensors)
        mid = pkg.session("head", cid)(x)
        assert list(mid) == [t.name for t in cut.tensors]  # head output order = manifest order
        out = pkg.session("tail", cid).run(mid)["logits"]
        assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()


def test_build_package_unknown_cut_names_nearest(tmp_path, mobilenet_path):
    from edgeinf.errors import SplitError
    from edgeinf.split import build_package

    with pytest.raises(SplitError, match=r"no cut 'c003-zzzz'.*nearest: \['c003-"):
        build_package(mobilenet_path, tmp_path / "x", at="c003-zzzz")
