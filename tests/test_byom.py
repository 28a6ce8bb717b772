"""Bring your own model, end to end, through the public API only.

Three ONNX models exported here (tests/byom_models.py, not zoo models): an NCHW image
classifier, a model with an image and a non-image input, and one whose cut carries an
int64 shape tensor. Each is split and profiled (`edgeinf split ... --profile`), served by a
real `edgeinf worker` process, and run by `edgeinf.AdaptiveRuntime` over a link emulator
replaying a trace whose bandwidth steps 10x (20 -> 2 -> 20 Mbit/s), compute paced to an
EMULATED Raspberry Pi 4. The test asserts that the plan follows the bandwidth and that every
result equals local execution within codec tolerance.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edgeinf
from edgeinf.evaluation.setup import worker
from edgeinf.netem import LinkProxy, Trace
from edgeinf.plan import Plan

sys.path.insert(0, str(Path(__file__).parent))
import byom_models  # noqa: E402

HIGH, LOW, SEG = 20.0, 2.0, 4.0  # Mbit/s, Mbit/s, seconds per segment (a 10x step)


def _cli(*args) -> str:
    r = subprocess.run([sys.executable, "-m", "edgeinf", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"edgeinf {' '.join(args)} failed:\n{r.stderr[-2000:]}"
    return r.stdout


def _package(tmp: Path, builder, shapes) -> Path:
    model = builder(tmp / f"{builder.__name__}.onnx")
    out = tmp / "pkg"
    args = ["split", str(model), "-o", str(out), "--profile", "--device", "raspberry-pi-4"]
    for s in shapes:
        args += ["--shape", s]
    _cli(*args)
    return out


def _inputs(pkg, n: int = 6):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        feeds = {}
        for s in pkg.inputs:
            shape = tuple(d if isinstance(d, int) else 1 for d in s.shape)
            feeds[s.name] = (rng.uniform(0, 1, shape) if len(shape) == 4 else rng.standard_normal(shape)).astype(np.float32)
        out.append(feeds)
    return out


def _wait_phase(proxy: LinkProxy, period_s: float) -> float:
    """Sleep to the next start of the trace's period; returns that time (s, link clock)."""
    now = proxy.now_ms() / 1000.0
    start = (np.floor(now / period_s) + 1) * period_s
    while proxy.now_ms() / 1000.0 < start:
        time.sleep(0.005)
    return start


def _run(pkg_dir: Path, tmp: Path):
    pkg = edgeinf.open_package(pkg_dir)
    local = pkg.session("full", threads=1)
    trace = Trace.steps([(SEG, HIGH), (SEG, LOW)], name="10x step")
    feeds = _inputs(pkg)
    records = []
    with worker(pkg_dir) as port:
        proxy = LinkProxy(("127.0.0.1", port), up=trace, delay_ms=2.0)
        proxy.start()
        try:
            with edgeinf.AdaptiveRuntime(pkg, f"tcp://127.0.0.1:{proxy.port}", device="raspberry-pi-4",
                                         samples=feeds[0], clock=lambda: proxy.now_ms() / 1000.0) as rt:
                t0 = _wait_phase(proxy, 2 * SEG)
                for i in range(int(3 * SEG * 10)):  # high, low, high at 10 requests/s
                    while proxy.now_ms() / 1000.0 < t0 + i / 10:
                        time.sleep(0.002)
                    x = feeds[i % len(feeds)]
                    res = rt.run(x)
                    records.append((proxy.now_ms() / 1000.0 - t0, res, local.run(x)))
                split_cuts = [c.plan for c in rt.costs if c.plan.kind == "split"]
                split_runs = [(p, rt.rt.run(feeds[0], plan=p, deadline=5.0)) for p in split_cuts]
        finally:
            proxy.stop()
    return pkg, records, split_runs, local.run(feeds[0])


def _close(got: dict, ref: dict, plan: Plan) -> None:
    assert set(got) == set(ref), plan
    for k, r in ref.items():
        g = got[k]
        assert g.shape == r.shape and g.dtype == r.dtype, (plan, k)
        scale = float(np.abs(r).max()) + 1e-6
        # fp16/int8 codecs on the crossing tensors: errors of a few % of the output scale
        tol = 1e-5 if plan.kind == "local" or (plan.codec or "raw").startswith("raw") else 0.08
        assert float(np.abs(g - r).max()) <= tol * scale, (plan, k, float(np.abs(g - r).max()), scale)


def _check(records, split_runs, ref0):
    for t, res, ref in records:
        _close(res.outputs, ref, res.plan if res.outcome != "local_fallback" else Plan("local"))
    def remote_share(a, b):
        sel = [r for t, r, _ in records if a <= t < b]
        return sum(r.outcome == "offload" for r in sel) / max(len(sel), 1)
    # the controller needs time to see a step: judge the last 1.5 s of each segment. Going
    # back up is found only by probes while local runs: one per second when no remote plan
    # looks hopeful at the stale estimate, and every 5th measures only the RTT, so it took
    # 2.0-2.3 s here (and once in CI over 2 s, when the judged window began at 2 s)
    high1, low, high2 = (remote_share(a - 1.5, a) for a in (SEG, 2 * SEG, 3 * SEG))
    if not (high1 >= 0.7 and high2 >= 0.7 and low <= 0.3):
        # NOTE: the assertion's own message is cut short by pytest; captured stdout is shown whole
        # (once in CI no request of the last high segment went remote, 2026-12-03)
        for t, r, _ in records:
            print(f"{t:6.2f} {str(r.plan):28s} {str(r.outcome):14s} {str(r.reason):10s} {r.latency_ms!r:>8} {r.estimates}")
    assert high1 >= 0.7 and high2 >= 0.7, (high1, low, high2, [(round(t, 2), str(r.plan), r.reason) for t, r, _ in records])
    # NOTE: on failure, what the controller believed in the low segment (once in CI every
    # request there was offloaded as "best"; not reproduced on the same kind of VM, loaded or not)
    assert low <= 0.3, (high1, low, high2, [(round(t, 2), str(r.plan), r.reason, round(r.latency_ms, 1), r.estimates)
                                            for t, r, _ in records if SEG <= t < 2 * SEG])
    for plan, res in split_runs:
        assert res.outcome == "offload", (plan, res.transport, res.error)
        _close(res.outputs, ref0, plan)


@pytest.mark.slow
def test_nchw_image_classifier(tmp_path):
    pkg_dir = _package(tmp_path, byom_models.nchw_classifier, ["image=1x3x64x64"])
    _check(*_run(pkg_dir, tmp_path)[1:])


@pytest.mark.slow
def test_two_inputs_one_not_an_image(tmp_path):
    pkg_dir = _package(tmp_path, byom_models.two_input, ["image=1x3x64x64", "meta=1x16"])
    pkg, records, split_runs, ref0 = _run(pkg_dir, tmp_path)
    assert {s.name for s in pkg.inputs} == {"image", "meta"}
    _check(records, split_runs, ref0)


@pytest.mark.slow
def test_cut_carrying_an_int64_tensor(tmp_path):
    pkg_dir = _package(tmp_path, byom_models.int64_cut, ["image=1x3x64x64"])
    pkg = edgeinf.open_package(pkg_dir)
    int_cuts = [c for c in pkg.cuts.values() if any(t.dtype == "int64" for t in c.tensors)]
    if not int_cuts:  # the Pareto choice may skip them: package the int64 cut explicitly
        cid = next(line.split()[0] for line in _cli("split", str(tmp_path / "int64_cut.onnx"), "--list",
                                                    "--shape", "image=1x3x64x64").splitlines()
                   if "shape_of_y" in line)
        subprocess.run(["rm", "-rf", str(pkg_dir)], check=True)
        _cli("split", str(tmp_path / "int64_cut.onnx"), "--at", cid, "-o", str(pkg_dir), "--profile",
             "--device", "raspberry-pi-4", "--shape", "image=1x3x64x64")
        pkg = edgeinf.open_package(pkg_dir)
        int_cuts = [c for c in pkg.cuts.values() if any(t.dtype == "int64" for t in c.tensors)]
    assert int_cuts
    pkg, records, split_runs, ref0 = _run(pkg_dir, tmp_path)
    assert any(p.cut == int_cuts[0].id for p, _ in split_runs)
    _check(records, split_runs, ref0)
