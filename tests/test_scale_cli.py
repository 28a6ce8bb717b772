"""``edgeinf serve --ray`` as a process: a real package served through its ZeroMQ front by a
local Ray Serve instance it starts itself; SIGTERM drains, exits 0 and leaves no Ray process."""
from __future__ import annotations

import json
import signal
import time

import numpy as np
import psutil
import pytest


def _ray_children(pid):
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_serve_ray_cli_serves_a_package_and_exits_clean(tmp_path):
    from edgeinf.package import open_package
    from edgeinf.transport import Client, protocol
    from edgeinf.transport.testing import Proc, make_split_package

    pkg = open_package(make_split_package(tmp_path / "mnv2"))
    x = np.random.default_rng(2).random((1, 3, 224, 224), np.float32)
    with Proc(["serve", "--ray", "--package", str(pkg.root), "--bind", "tcp://127.0.0.1:*", "--no-verify",
               "--min-replicas", "1", "--max-replicas", "2", "--deadline-ms", "300", "--json"],
              ready_timeout=120) as proc:
        assert proc.endpoint, proc.stderr()
        line = next(ln for ln in proc.seen if "edgeinf serve:" in ln)
        assert "1..2 tail replicas" in line and "target" in line
        ray_pids = {p.pid for p in _ray_children(proc.proc.pid)}
        assert ray_pids, "no Ray processes under the serve process"
        with Client(proc.endpoint) as c:
            assert c.wait_ready(10)
            specs, frames = protocol.pack_raw({"input": x})
            r = c.infer(pkg.hash, None, specs, frames, timeout=10.0)
            assert r.outcome.name == "OK", r
            np.testing.assert_array_equal(r.message.arrays()["logits"],
                                          pkg.session("full").run({"input": x})["logits"])
        proc.signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        lines = []
        while (ln := proc._lines.get(timeout=10)) is not None:  # stdout, read by Proc's pump thread
            lines.append(ln)
        out = json.loads(lines[-1])
        assert out["stats"]["executed"] == 1
    end = time.monotonic() + 20
    while time.monotonic() < end and any(psutil.pid_exists(p) for p in ray_pids):
        time.sleep(0.5)
    left = [p for p in ray_pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"Ray processes outlived edgeinf serve: {left}"
