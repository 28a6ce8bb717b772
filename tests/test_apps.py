"""Smoke tests of apps/: each app's one command against a real daemon (vision models and
SmolLM2), checking what it produced, not only its exit code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from edgeinf.daemon.testing import DaemonProc

APPS = Path(__file__).resolve().parent.parent / "apps"
CONFIG = """
[models.lite]
source = "hand_landmark_lite"
cuts = "none"
[models.full]
source = "hand_landmark_full"
cuts = "none"
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from edgeinf.llm.models import smollm2

    cfg = tmp_path_factory.mktemp("apps") / "daemon.toml"
    cfg.write_text(CONFIG)
    with DaemonProc("--config", str(cfg), "--llm", f"chat={smollm2()}") as d:
        yield d


def _app(name: str, *args: str, timeout: float = 300, stdin: str = None) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(APPS / name), *args], capture_output=True, text=True,
                       timeout=timeout, input=stdin)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_hand_tracking_switches_branches_and_writes_a_video(daemon, tmp_path):
    out = tmp_path / "hands.mp4"
    r = _app("hand_tracking.py", "--url", daemon.host, "--frames", "100", "--out", str(out))
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["frames"] == 100
    # calm frames (the first 50) stay on lite; the fast phase after them needs full
    assert s["branches"].get("lite", 0) >= 40 and s["branches"].get("full", 0) >= 5, s
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 100 and (tmp_path / "hands_input.mp4").is_file()  # the clip made from the photographs


def test_kserve_client_lists_and_runs_any_served_model(daemon):
    r = _app("kserve_client.py", "--url", daemon.host, "--list")
    assert "lite input_1:FP32[1, 224, 224, 3]" in r.stdout and "full " in r.stdout
    s = json.loads(_app("kserve_client.py", "--url", daemon.host, "--model", "full", "--json").stdout)
    assert s["outputs"]["Identity"]["shape"] == [1, 63] and s["parameters"]["edgeinf_plan"] == "local"


def test_chat_streams_an_answer_and_names_the_mode(daemon):
    r = _app("chat.py", "--url", daemon.url, "--max-tokens", "3", "--temperature", "0", "Hello!")
    assert "mode local]" in r.stdout and len(r.stdout.split("[")[0].strip()) > 0
    r = _app("chat.py", "--url", daemon.url, "--max-tokens", "2", stdin="Hi\nAnd again?\n")
    assert r.stdout.count("mode local]") == 2  # a conversation: one answer per line of stdin
