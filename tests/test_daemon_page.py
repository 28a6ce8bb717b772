"""The status page at ``/`` in a real headless Chromium (Debian's ``chromium``): after a few
requests the latency and bandwidth charts of each model are drawn (checked in the DOM the
page's own script leaves, and in a screenshot), and nothing loads from outside."""
from __future__ import annotations

import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import tritonclient.http as tc

from edgeinf.daemon.testing import DaemonProc

KEY = "page-key-0123456789"
CONFIG = '[models.lite]\nsource = "hand_landmark_lite"\ncuts = "none"\n'


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "headless Chromium is needed: apt-get install chromium (.ci/run installs it)"
    return exe


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("page") / "daemon.toml"
    cfg.write_text(CONFIG)
    with DaemonProc("--config", str(cfg), "--api-key", KEY) as d:
        c = tc.InferenceServerClient(d.host)
        x = tc.InferInput("input_1", [1, 224, 224, 3], "FP32")
        x.set_data_from_numpy(np.random.default_rng(0).uniform(0, 1, (1, 224, 224, 3)).astype(np.float32))
        for _ in range(8):
            c.infer("lite", [x], headers={"Authorization": f"Bearer {KEY}"})
        yield d


def _browse(url: str, *mode: str, tmp_path) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000", "--window-size=1000,900",
           *mode, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def test_page_draws_each_models_charts_after_requests(daemon, tmp_path):
    r = _browse(f"{daemon.url}/#key={KEY}", "--dump-dom", tmp_path=tmp_path)
    dom = r.stdout
    assert 'id="m-lite"' in dom, (dom[-2000:], r.stderr[-2000:])
    canvases = re.findall(r'<canvas class="(\w+)" data-points="(\d+)" data-inked="(\d+)"', dom)
    assert {c[0] for c in canvases} == {"latency", "bandwidth"}, canvases
    lat = next(c for c in canvases if c[0] == "latency")
    # 8 requests plotted and coloured pixels really drawn (a blank chart has 0). NOTE: at least one
    # whole 3x3 marker, not 8: requests a second apart at the same latency land on the same pixels
    # of a 10-minute axis (CI once saw 15 inked pixels for 8 points)
    assert int(lat[1]) >= 8 and int(lat[2]) >= 9, lat
    assert 'data-plan="local"' in dom and "no worker: local only" in dom and "Mbit/s" in dom
    assert "http://" not in dom.replace(daemon.url, "") and "https://" not in dom  # nothing from elsewhere


def test_screenshot_shows_plan_colored_points(daemon, tmp_path):
    png = tmp_path / "shot.png"
    r = _browse(f"{daemon.url}/#key={KEY}", f"--screenshot={png}", tmp_path=tmp_path)
    assert png.is_file(), r.stderr[-2000:]
    img = cv2.imread(str(png))
    b, g, rr = (img[..., i].astype(int) for i in range(3))
    # the first plan's colour (#1f77b4): the latency points; the page is otherwise grey on white
    blue = (abs(b - 0xb4) < 30) & (abs(g - 0x77) < 30) & (abs(rr - 0x1f) < 30)
    assert blue.sum() >= 20, blue.sum()


def test_without_the_key_the_page_says_so_and_draws_nothing(daemon, tmp_path):
    dom = _browse(f"{daemon.url}/", "--dump-dom", tmp_path=tmp_path).stdout
    assert "API key" in dom and 'id="m-lite"' not in dom
