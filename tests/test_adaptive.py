"""AdaptiveRuntime on a user's model: errors, local-only use, fallback, device awareness.

Real packages (a classifier exported here), real `edgeinf worker` processes on loopback,
real competing processes loading the CPU.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import edgeinf
from edgeinf import profiling
from edgeinf.errors import ConfigError, PackageError
from edgeinf.evaluation.setup import worker
from edgeinf.plan import Plan
from edgeinf.split import build_package

sys.path.insert(0, str(Path(__file__).parent))
import byom_models  # noqa: E402

LOCAL = Plan("local")


@pytest.fixture(scope="module")
def pkg_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adaptive")
    model = byom_models.nchw_classifier(tmp / "clf.onnx")
    out = build_package(model, tmp / "pkg", shapes={"image": "1x3x64x64"})
    profiling.profile_package(edgeinf.open_package(out), repeat=5)
    return out


def _x(seed=0):
    return {"image": np.random.default_rng(seed).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)}


def test_unprofiled_package_is_one_clear_error(tmp_path):
    model = byom_models.nchw_classifier(tmp_path / "clf.onnx")
    out = build_package(model, tmp_path / "pkg", shapes={"image": "1x3x64x64"})
    with pytest.raises(PackageError, match="edgeinf profile"):
        edgeinf.AdaptiveRuntime(out)


def test_unknown_plan_names_the_profiled_ones(pkg_dir):
    with pytest.raises(ConfigError, match=r"not in the package's profile.*local"):
        edgeinf.AdaptiveRuntime(pkg_dir, plans=[LOCAL, Plan("split", cut="nope", codec="raw")])


def test_local_only_runs_the_model(pkg_dir):
    pkg = edgeinf.open_package(pkg_dir)
    with edgeinf.AdaptiveRuntime(pkg) as rt:
        assert all(not c.plan.remote for c in rt.costs)
        res = rt.run(_x())
    ref = pkg.session("full", threads=1).run(_x())
    np.testing.assert_array_equal(res.outputs["logits"], ref["logits"])
    assert res.plan == LOCAL and res.outcome == "local" and res.predicted_ms > 0
    assert res.to_dict()["plan"] == "local"
    assert 0 < res.decide_ms < res.latency_ms and res.to_dict()["decide_ms"] == round(res.decide_ms, 4)


def test_worker_killed_mid_run_falls_back_and_stays_correct(pkg_dir):
    pkg = edgeinf.open_package(pkg_dir)
    ref = pkg.session("full", threads=1).run(_x())["logits"]
    # NOTE: server time made small in the costs so offload is the clear choice while it lives
    costs = [replace(c, server_ms=0.1) if c.plan.kind == "offload" else c for c in profiling.load_profile(pkg).costs()]
    with worker(pkg_dir) as port:
        with edgeinf.AdaptiveRuntime(pkg, f"tcp://127.0.0.1:{port}", costs=costs, deadline_ms=2000,
                                     heartbeat_s=0.2, dead_after=3) as rt:
            outs = [rt.run(_x()) for _ in range(20)]
            assert any(r.outcome == "offload" for r in outs), [r.reason for r in outs]
            subprocess.run(["pkill", "-9", "-f", f"tcp://127.0.0.1:{port}"], check=False)
            after = [rt.run(_x()) for _ in range(15)]
    for r in outs + after:
        np.testing.assert_allclose(r.outputs["logits"], ref, rtol=0, atol=0.05 * np.abs(ref).max())
    assert any(r.outcome == "local_fallback" for r in after) or all(r.plan == LOCAL for r in after[-5:])
    assert all(r.outcome != "offload" for r in after[-5:])
    assert "down" in after[-1].reason or after[-1].plan == LOCAL


def _hogs(n, cpu):
    return [subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _pin_worker(port, cpu):
    import psutil

    for p in psutil.Process().children(recursive=True):
        if any(f"127.0.0.1:{port}" in a for a in p.cmdline()):
            p.cpu_affinity([cpu])
            return p
    raise AssertionError("worker process not found")


def test_cpu_load_from_another_process_raises_the_prediction_and_moves_the_plan(pkg_dir):
    import os

    pkg = edgeinf.open_package(pkg_dir)
    prof = profiling.load_profile(pkg)
    if len(os.sched_getaffinity(0)) < 2:
        pytest.fail("this test needs 2 CPUs: the device on one, the server on the other")
    # NOTE: the device's compute (this thread) on one core with the competing load; the
    # server (the worker process) and the client's I/O thread on the other, as on a real Pi
    # whose network stack is not starved and whose server is elsewhere
    before = os.sched_getaffinity(0)
    dev_cpu, srv_cpu = sorted(before)[:2]
    # NOTE: BLAS helper threads (numpy's matmul in host-speed measurements) spin after each
    # call on both cores; in a full CI run they made the "idle" device 7.8x slower than its
    # profile (failing 1.3x-under-load). One BLAS thread here: nothing spins beside the device.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), worker(pkg_dir) as port:
        _pin_worker(port, srv_cpu)
        os.sched_setaffinity(0, {dev_cpu})  # this thread only (Linux: pid 0 is the caller)
        try:
            # what local costs on this device right now, as the controller itself sees it
            local_only = [c for c in prof.costs() if c.plan == LOCAL]
            # NOTE: the median of 30 runs, after a pause: right after profiling, BLAS threads
            # still spinning from the host-speed matmul made idle runs 7x slow in CI
            time.sleep(1.0)
            with edgeinf.AdaptiveRuntime(pkg, costs=local_only) as probe_rt:
                for _ in range(30):
                    probe_rt.run(_x())
                idle_ms = float(np.median([h.run.timings["full"] for h in probe_rt.history]))
            # offload costs 2.2x that: local wins (despite idle noise) until the device slows down
            off = next(c for c in prof.costs() if c.plan.kind == "offload")
            costs = local_only + [replace(off, server_ms=2.2 * idle_ms, up_bytes=2000, encode_ms=0.0)]
            with edgeinf.AdaptiveRuntime(pkg, f"tcp://127.0.0.1:{port}", costs=costs, deadline_ms=5000) as rt:
                for t in threading.enumerate():
                    if t is not threading.main_thread() and t.native_id:
                        os.sched_setaffinity(t.native_id, {srv_cpu})
                idle_slow, loaded_slow, plans_loaded = _load_moves_the_plan(rt, dev_cpu)
        finally:
            os.sched_setaffinity(0, before)
    idle_off = sum(h.plan.kind == "offload" for h in rt.history[40:50])
    loaded_off = sum(p.kind == "offload" for p in plans_loaded)
    trail = [(str(h.plan), h.reason) for h in rt.history]
    # the predicted device time is the profiled time x this slowdown
    assert loaded_slow > 1.3 * idle_slow, (idle_ms, idle_slow, loaded_slow)
    assert loaded_off > idle_off and loaded_off >= 5, (idle_ms, idle_slow, loaded_slow, idle_off, loaded_off, rt.last_predictions,
                                                       rt.history[-1].estimates, trail)


def _load_moves_the_plan(rt, dev_cpu):
    """(idle slowdown, highest loaded slowdown, plans of the last 10 loaded requests)."""
    time.sleep(1.0)  # whatever spun up while the runtime opened (warmup, probes) settles first
    for _ in range(50):  # link measured by probes, device by its own runs
        rt.run(_x())
        time.sleep(0.02)
    idle = float(np.median([h.estimates["slowdown"] for h in rt.history[40:50]]))
    hogs = _hogs(5, dev_cpu)  # this thread's share of its core drops to about a sixth
    try:
        time.sleep(0.6)
        # NOTE: back to back, no pause: a thread that sleeps between runs wakes with CFS's
        # sleeper credit and runs most of a short inference before the hogs get the core back
        # (measured: 1.4x slower, not 6x, with 20 ms pauses), so the load would barely show
        for _ in range(30):
            rt.run(_x())
        d = rt.ctl.decide(time.monotonic())
        rt.last_predictions = [(str(p.plan), round(p.latency_ms, 2)) for p in d.predictions]
        loaded = max(h.estimates["slowdown"] for h in rt.history[50:])
        return idle, loaded, [h.plan for h in rt.history[-10:]]
    finally:
        for h in hogs:
            h.kill()


def test_a_probe_that_raises_does_not_stop_later_probes(pkg_dir):
    """A probe's Future that fails (here the client's submit is replaced by one returning a
    failed Future: the only stand-in in this file) must not leave the in-flight flag set."""
    from concurrent.futures import Future

    pkg = edgeinf.open_package(pkg_dir)
    with worker(pkg_dir) as port, edgeinf.AdaptiveRuntime(pkg, f"tcp://127.0.0.1:{port}") as rt:
        real = rt.rt.client.submit

        def failing(*a, **kw):
            f = Future()
            f.set_exception(RuntimeError("connection reset"))
            return f

        rt.rt.client.submit = failing
        assert rt._probe(_x()) is not None
        rt.rt.client.submit = real
        fut = rt._probe(_x())  # was None for good: the flag stayed set
        assert fut is not None and fut.result(5).ok
