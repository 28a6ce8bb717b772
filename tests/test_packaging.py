"""The distributions, built as a user's pip builds them: an sdist, then a wheel FROM it.

A Raspberry Pi or Jetson gets no x86 wheel and compiles the sdist, so the sdist must hold
every header and every ISA's sources, not only what this machine compiles; a wheel must
hold the device profiles and ``py.typed``. Built without isolation (the venv's own
setuptools and pybind11, from the ``test`` extra) so the test needs no network.
"""
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # compiles the extension once (~30 s on 2 cores)


def _run(cmd, cwd, timeout=900, env=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


def _tracked(*patterns):
    out = _run(["git", "ls-files", "--", *patterns], ROOT).stdout.split()
    return sorted(p for p in out if (ROOT / p).is_file())


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), "."], ROOT)
    (sdist,) = out.glob("edgeinf-*.tar.gz")
    # the wheel is built from the sdist alone, as pip does on a board with no wheel
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(out), str(sdist)], out)
    (wheel,) = out.glob("edgeinf-*.whl")
    return sdist, wheel


def _sdist_names(sdist):
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        return {n[len(top) + 1:] for n in tf.getnames() if n.startswith(top + "/")}


def test_sdist_holds_every_header_and_every_isa_source(dist):
    names = _sdist_names(dist[0])
    needed = _tracked("csrc/*.h", "csrc/*.cpp", "csrc/arch/*")
    assert any(p.startswith("csrc/arch/arm/") for p in needed)  # the NEON code a Pi compiles
    assert any(p.endswith(".inc") for p in needed) and any(p.endswith(".h") for p in needed)
    missing = [p for p in needed if p not in names]
    assert not missing, f"sdist lacks {missing}"
    assert {"setup.py", "pyproject.toml", "MANIFEST.in", "README.md"} <= names


def test_wheel_holds_profiles_types_and_the_extension(dist):
    with zipfile.ZipFile(dist[1]) as zf:
        names = set(zf.namelist())
    profiles = [p for p in _tracked("edgeinf/data/devices/*.toml")]
    assert len(profiles) >= 5 and "edgeinf/data/devices/raspberry-pi-4.toml" in profiles
    assert not [p for p in profiles if p not in names]
    assert "edgeinf/py.typed" in names
    assert any(n.startswith("edgeinf/_kernels") and n.endswith((".so", ".pyd")) for n in names)
    missing = [p for p in _tracked("edgeinf/*.py", "edgeinf/**/*.py") if p not in names]
    assert not missing, f"wheel lacks {missing}"


def test_unpacked_wheel_finds_its_profiles_outside_the_checkout(dist, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(dist[1]) as zf:
        zf.extractall(site)
    # cwd and PYTHONPATH away from the checkout, so only the wheel's files can be imported
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import json, edgeinf; from edgeinf.split import devices; from edgeinf import _native; "
            "print(json.dumps({'file': edgeinf.__file__, 'names': devices.names(), "
            "'pi': devices.load_device('raspberry-pi-4').cpu_gflops, 'isa': _native.build_info()['isa']}))")
    got = json.loads(_run([sys.executable, "-c", code], tmp_path, env=env).stdout)
    assert got["file"].startswith(str(site))
    assert "raspberry-pi-4" in got["names"] and "jetson-orin-nano" in got["names"] and got["pi"] > 0
    assert got["isa"]
    info = json.loads(_run([sys.executable, "-m", "edgeinf", "info", "--json"], tmp_path, env=env).stdout)
    assert info["kernels"]["isa"] == got["isa"]
    assert info["device_profiles"]["dirs"][-1].startswith(str(site))
