"""The CLI, run as a user would run it: a separate process."""
import json
import subprocess
import sys

import numpy as np
import pytest


def cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "edgeinf", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_info_json_lists_backends_kernels_device():
    info = json.loads(cli("info", "--json").stdout)
    assert {"backends", "kernels", "device"} <= set(info)
    assert "onnxruntime" in info["backends"] and "litert" in info["backends"]
    assert info["kernels"]["isa"] and "-O3" in info["kernels"]["flags"]


def test_info_text():
    out = cli("info").stdout
    assert "onnxruntime" in out and "ISA path" in out


@pytest.mark.parametrize("name", ["mobilenetv2", "hand_landmark_lite"])
def test_run_reports_latency(name, zoo_path):
    zoo_path(name)
    rep = json.loads(cli("run", name, "--repeat", "3", "--json").stdout)
    lat = rep["latency"]
    assert lat["n"] == 3 and 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p90_ms"]


def test_run_with_npy_input(tmp_path, zoo_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((1, 224, 224, 3), np.float32))
    rep = json.loads(cli("run", str(zoo_path("hand_landmark_lite")), "--input", str(p), "--repeat", "1", "--json").stdout)
    assert rep["backend"] == "litert"


def test_run_bad_input_shape_is_a_clear_error(tmp_path, zoo_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((1, 3, 224, 224), np.float32))
    r = cli("run", str(zoo_path("hand_landmark_lite")), "--input", str(p), check=False)
    assert r.returncode == 1
    assert "given shape 1x3x224x224" in r.stderr and "Traceback" not in r.stderr


def test_run_unknown_model_suggests_names():
    r = cli("run", "hand_landmark_lit", check=False)
    assert r.returncode == 1 and "not found" in r.stderr
