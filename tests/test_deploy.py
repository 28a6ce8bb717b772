"""deploy/: the systemd units parse, sandbox the services, restart on failure, and their
command lines (with the example environment files) are valid ``edgeinf`` invocations."""
import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgeinf.cli import build_parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = {"edgeinf-broker.service": "broker.env.example", "edgeinf-worker.service": "worker.env.example"}
SANDBOX = {"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
           "ProtectHome": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": ""}


def _unit(name) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string((DEPLOY / name).read_text())
    return cp


def _env(name) -> dict:
    env = {}
    for line in (DEPLOY / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip()
    return env


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_restarts_on_failure_sandboxed_with_an_environment_file(unit):
    svc = _unit(unit)["Service"]
    assert svc["Restart"] == "on-failure" and svc["Type"] == "simple"
    assert svc["EnvironmentFile"].startswith("/etc/edgeinf/")
    for key, value in SANDBOX.items():
        assert svc.get(key) == value, f"{unit}: {key}={svc.get(key)!r}, want {value!r}"
    assert _unit(unit)["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_exec_start_with_the_example_environment_is_a_valid_command(unit):
    exec_start = _unit(unit)["Service"]["ExecStart"]
    env = _env(UNITS[unit])
    words = []
    for w in shlex.split(exec_start):  # systemd: ${X} is one word, $X splits on whitespace
        if w.startswith("${") and w.endswith("}"):
            words.append(env[w[2:-1]])
        elif w.startswith("$"):
            words.extend(shlex.split(env[w[1:]]))
        else:
            words.append(w)
    assert words[0].endswith("/edgeinf")
    args = build_parser().parse_args(words[1:])  # SystemExit (a failure) on unknown flags
    assert args.command == unit.split("-")[1].split(".")[0]
    if args.command == "broker":  # the example is CURVE on both sides, as off-loopback needs
        assert args.curve_secret and args.allow and args.worker_allow
    else:
        assert args.connect and args.broker_key and args.worker_key


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd); the configparser checks ran")
    edgeinf = Path(sys.executable).with_name("edgeinf")
    assert edgeinf.exists(), edgeinf
    paths = []
    for unit in UNITS:  # verify insists that ExecStart exists: point it at this venv's edgeinf
        p = tmp_path / unit
        p.write_text((DEPLOY / unit).read_text().replace("/opt/edgeinf/bin/edgeinf", str(edgeinf)))
        paths.append(str(p))
    r = subprocess.run([tool, "verify", *paths], capture_output=True, text=True, timeout=60)
    complaints = [ln for ln in (r.stdout + r.stderr).splitlines() if "edgeinf-" in ln]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr
