"""`edgeinf bench daemon` runs end to end (tiny sizes) and reports what the issue asks for:
requests/s and p50/p99 over KServe v2 and the OpenAI route against in-process, and idle RSS."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow  # three daemons and two in-process models: ~40 s on 2 loaded cores
def test_bench_daemon_reports_overhead_ratios_and_idle_rss():
    r = subprocess.run([sys.executable, "-m", "edgeinf", "bench", "daemon", "--requests", "10",
                        "--llm-requests", "1", "--llm-tokens", "2", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    v = res["vision"]
    for side in ("direct", "kserve"):
        assert v[side]["n"] == 10 and v[side]["req_per_s"] > 0 and v[side]["p99_ms"] >= v[side]["p50_ms"] > 0
    assert v["overhead_p50"] > 0.5 and v["rss_idle_mib"] > res["bare"]["rss_idle_mib"] > 10
    assert res["llm"]["openai"]["n"] == 1 and res["llm"]["overhead_p50"] > 0
