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
    assert "raspberry-pi-4" in info["device_profiles"]["names"]


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


def _one_line_error(r, code=1):
    """The CLI's failure contract: exit code, exactly one stderr line, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_run_missing_input_file_is_one_line(tmp_path, mobilenet_path):
    r = cli("run", str(mobilenet_path), "--input", str(tmp_path / "nope.npy"), check=False)
    assert "--input" in _one_line_error(r) and "nope.npy" in r.stderr and "no such file" in r.stderr


def test_run_input_that_is_not_npy_is_one_line(tmp_path, mobilenet_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3, np.float32))
    r = cli("run", str(mobilenet_path), "--input", str(tmp_path / "x.npz"), check=False)
    assert "expected a .npy" in _one_line_error(r)


@pytest.mark.parametrize("cmd", ["run", "split"])
@pytest.mark.parametrize("kind", ["onnx", "tflite"])
def test_corrupt_model_is_one_line(cmd, kind, tmp_path, zoo_path):
    real = zoo_path("mobilenetv2" if kind == "onnx" else "hand_landmark_lite").read_bytes()
    bad = tmp_path / f"bad.{kind}"
    bad.write_bytes(real[: len(real) // 3])  # truncated: a download cut short
    line = _one_line_error(cli(cmd, str(bad), check=False))
    assert str(bad) in line and line.startswith(f"edgeinf {cmd}: error:") and "unexpected" not in line


@pytest.mark.parametrize("args,prog", [
    (["run"], "edgeinf run"), (["run", "m", "--repeat", "x"], "edgeinf run"),
    (["info", "--bogus"], "edgeinf info"), (["split", "m", "--bogus"], "edgeinf split"),
    (["bench", "kernels", "--bogus"], "edgeinf bench kernels"), (["nope"], "edgeinf")])
def test_bad_arguments_are_one_line_from_the_command_that_took_them(args, prog):
    line = _one_line_error(cli(*args, check=False), code=2)
    assert line.startswith(f"{prog}: error:") and f"`{prog} --help`" in line


# each of these ran before it was refused: a benchmark on nonsense, Ray started for nothing, a
# ZeroDivisionError a minute in, a broker that dropped every worker at once
@pytest.mark.parametrize("args,flag,says", [
    (["bench", "transport", "--seconds", "-1"], "--seconds", "> 0"),
    (["bench", "transport", "--seconds", "nan"], "--seconds", "> 0"),
    (["bench", "scaleout", "--clients", "0"], "--clients", "integer >= 1"),
    (["bench", "fleet", "--resolution-ms", "0"], "--resolution-ms", "> 0"),
    (["bench", "fleet", "--utilisation", "0"], "--utilisation", "(0, 1]"),
    (["bench", "controller", "--accuracy-floor", "3"], "--accuracy-floor", "[0, 1]"),
    (["bench", "llm", "--target", "2"], "--target", "(0, 1]"),
    (["broker", "--heartbeat", "0"], "--heartbeat", "> 0"),
    (["demo", "--offset", "-50"], "--offset", ">= 0"),
    (["generate", "smollm2", "hi", "--threshold", "4"], "--threshold", "[0, 1]"),
    (["serve", "--ray", "--replica-cpus", "0"], "--replica-cpus", "> 0"),
    (["worker", "--drain", "soon"], "--drain", "expected a number >= 0, got 'soon'"),
    (["split", "m", "--accuracy-floor", "9"], "--accuracy-floor", "[0, 1]")])
def test_a_number_out_of_range_is_refused_before_any_work(args, flag, says):
    prog = "edgeinf " + " ".join(args[:2] if args[0] == "bench" else args[:1])
    line = _one_line_error(cli(*args, check=False), code=2)
    assert line.startswith(f"{prog}: error: argument {flag}: ") and says in line, line


@pytest.mark.parametrize("args,says", [(["--isa", "avx9"], "does not run here"), (["--repeat", "0"], "at least 1")])
def test_bench_kernels_refuses_an_isa_it_cannot_run_and_a_repeat_below_one(args, says):
    line = _one_line_error(cli("bench", "kernels", *args, check=False))
    assert line.startswith("edgeinf bench kernels: error:") and says in line and "unexpected" not in line


def test_profile_works_without_matplotlib(tmp_path, mobilenet_path):
    # a plain install has no matplotlib: the profile is still written, only the PNG is skipped
    code = ("import sys; sys.modules['matplotlib'] = None; from edgeinf.cli import main; "
            f"sys.exit(main(['profile', {str(mobilenet_path)!r}, '--device', 'raspberry-pi-4', "
            f"'--at', {_first_cut(mobilenet_path)!r}, '--repeat', '1', '--warmup', '0', '-o', {str(tmp_path)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    prof = json.loads((tmp_path / "mobilenetv2.profile.json").read_text())
    assert prof["device"]["name"] == "raspberry-pi-4" and not list(tmp_path.glob("*.png"))
    assert "no plot" in r.stdout


def _first_cut(path):
    return json.loads(cli("split", str(path), "--list", "--json").stdout)["cuts"][0]["id"]


def test_missing_optional_module_names_its_extra(monkeypatch):
    from edgeinf.cli._util import missing_extra

    monkeypatch.setitem(sys.modules, "skimage", None)  # as on a plain install
    with pytest.raises(ImportError) as e:
        import skimage.data  # noqa: F401
    assert missing_extra(e.value) == ('this command needs scikit-image, which is not installed: '
                                      'pip install "edgeinf[demo]"')
    with pytest.raises(ImportError) as e:
        import edgeinf_no_such_module  # noqa: F401
    assert missing_extra(e.value) is None  # a bug, not an extra: reported as unexpected


def test_models_json_paths_match_the_zoo():
    from edgeinf import zoo

    rows = json.loads(cli("models", "--json").stdout)["models"]
    assert {r["name"] for r in rows} == set(zoo.names())
    assert all(r["path"] == str(zoo.location(r["name"])) for r in rows)
    assert next(r for r in rows if r["name"] == "ppocr_det")["path"].endswith(".onnx")


def test_a_command_that_cannot_load_fails_alone_in_one_line(tmp_path):
    # a command module importing an optional package at the top, on an install without it
    (tmp_path / "needs_skimage.py").write_text("import skimage\n\ndef register(sub):\n    pass\n")
    code = ("import sys; sys.modules['skimage'] = None; import edgeinf.cli as c; "
            f"c.__path__.append({str(tmp_path)!r}); "
            "sys.exit(c.main(sys.argv[1:]))")
    broken = subprocess.run([sys.executable, "-c", code, "needs_skimage", "x", "--y"], capture_output=True,
                            text=True, timeout=120)
    assert 'pip install "edgeinf[demo]"' in _one_line_error(broken)
    other = subprocess.run([sys.executable, "-c", code, "info", "--json"], capture_output=True, text=True,
                           timeout=120)
    assert other.returncode == 0 and json.loads(other.stdout)["kernels"], other.stderr



def test_require_fails_before_any_work():
    from edgeinf.cli._util import require

    require("numpy", "onnx")  # installed: no error
    with pytest.raises(ModuleNotFoundError) as e:
        require("numpy", "edgeinf_no_such_module")
    assert e.value.name == "edgeinf_no_such_module"  # the name missing_extra maps to an extra
