"""Scale-out on Ray Serve: the pure arithmetic, then a real local Ray Serve instance behind
the ZeroMQ front (real package, real replicas, real kill -9)."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest

from edgeinf.errors import ConfigError
from edgeinf.scale import policy
from edgeinf.scale.policy import Scaling


# -- pure ------------------------------------------------------------------------------------
def test_target_ongoing_follows_service_time_deadline_and_utilisation():
    assert policy.target_ongoing(20, 200) == 2.33                         # 0.7 / 0.3: the busy bound
    assert policy.target_ongoing(20, 200, utilisation=0.9) == 5           # 0.5 x 200 / 20: the deadline bound
    assert policy.target_ongoing(20, 200, headroom=1.0, utilisation=0.95) == 10
    assert policy.target_ongoing(300, 200) == 1                           # slower than the deadline: still one
    assert policy.target_ongoing(20, 200, slots=2, utilisation=0.9) == 10
    with pytest.raises(ConfigError, match="service_ms"):
        policy.target_ongoing(0, 200)
    with pytest.raises(ConfigError, match="headroom"):
        policy.target_ongoing(20, 200, headroom=1.5)
    with pytest.raises(ConfigError, match="utilisation"):
        policy.target_ongoing(20, 200, utilisation=1.0)


def test_scaling_bounds_and_ray_config():
    s = policy.scaling_for(20, 200, 1, 4, utilisation=0.9)
    cfg = s.autoscaling_config()
    assert cfg["target_ongoing_requests"] == 5 and cfg["min_replicas"] == 1 and cfg["max_replicas"] == 4
    assert [policy.decide(q, 1, s) for q in (0, 5, 6, 11, 100)] == [1, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="min_replicas"):
        Scaling(3, 2)
    with pytest.raises(ConfigError, match="target"):
        Scaling(1, 2, 0)


def test_replicas_needed_and_capacity_misses():
    assert policy.replicas_needed(100, 20) == 3          # 2.0 busy servers / 0.7
    assert policy.replicas_needed(0, 20) == 1
    # 100 req/s for 2 s at 20 ms: one server is 2x overloaded, three keep up
    arrivals = [i / 100 for i in range(200)]
    one = policy.capacity_misses(arrivals, [200] * 200, 20, 1)
    three = policy.capacity_misses(arrivals, [200] * 200, 20, 3)
    assert one["misses"] > 150 and three["misses"] == 0 and three["p99_ms"] == pytest.approx(20)
    assert policy.per_second([0.1, 0.2, 1.5], 1.0, 2.0) == [2, 1]


# -- a real Ray Serve instance -----------------------------------------------------------------
def _ray_procs():
    names = ("raylet", "gcs_server", "ServeController", "ServeReplica")
    out = []
    for p in psutil.process_iter(["cmdline", "ppid"]):
        cmd = " ".join(p.info["cmdline"] or ())
        if any(n in cmd for n in names) and str(os.getpid()) not in cmd:
            out.append((p.pid, cmd[:80]))
    return out


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    from edgeinf.package import open_package
    from edgeinf.transport.testing import make_split_package

    return open_package(make_split_package(tmp_path_factory.mktemp("scale") / "mnv2"))


@pytest.fixture(scope="module")
def cluster():
    from edgeinf.scale.cluster import Cluster, RayConfig

    before = {p for p, _ in _ray_procs()}
    c = Cluster(RayConfig()).start()
    yield c
    c.stop()
    end = time.monotonic() + 20
    while time.monotonic() < end and {p for p, _ in _ray_procs()} - before:
        time.sleep(0.5)
    left = [p for p in _ray_procs() if p[0] not in before]
    assert not left, f"Ray processes left behind: {left}"


class _Front:
    def __init__(self, cluster, pkgs, scaling, **kw):
        from edgeinf.scale.front import RayFront, ScaleConfig
        from edgeinf.worker import WorkerConfig

        self.front = RayFront(pkgs, WorkerConfig(bind="tcp://127.0.0.1:*", queue=16),
                              ScaleConfig(tails=scaling, **kw), cluster=cluster)

    def __enter__(self):
        self.front.initialize()
        self.thread = threading.Thread(target=self.front.serve, daemon=True)
        self.thread.start()
        return self.front

    def __exit__(self, *exc):
        self.front.stop()
        self.thread.join(30)
        self.front.finalize()


def test_a_package_through_the_zmq_front_is_exact(cluster, pkg):
    """Offload and a split tail through the front equal the local graphs; HELLO and LOAD
    look like a worker's, with the replicas counted."""
    from edgeinf.transport import Client, protocol
    from edgeinf.transport.testing import split_cut

    x = np.random.default_rng(1).random((1, 3, 224, 224), np.float32)
    cut = split_cut(pkg)
    mid = pkg.session("head", cut).run({"input": x})
    with _Front(cluster, [pkg], Scaling(1, 1)) as front, Client(front.endpoint) as c:
        assert c.wait_ready(10)
        specs, frames = protocol.pack_raw({"input": x})
        r = c.infer(pkg.hash, None, specs, frames, timeout=10.0)
        assert r.outcome.name == "OK", r
        np.testing.assert_array_equal(r.message.arrays()["logits"], pkg.session("full").run({"input": x})["logits"])
        specs, frames = protocol.pack_raw(mid)
        r = c.infer(pkg.hash, cut, specs, frames, timeout=10.0)
        assert r.outcome.name == "OK", r
        np.testing.assert_array_equal(r.message.arrays()["logits"],
                                      pkg.session("tail", cut).run(dict(mid))["logits"])
        load = r.message.meta["load"]
        assert load["replicas"] == 1 and load["workers"] == 1 and load["capacity"] == 8 + 16
        assert load["service_ms"] > 0
        # a wrong input is refused at the front (no replica sees it), as by a worker
        bad_specs, bad_frames = protocol.pack_raw({"input": x[:, :2]})
        r = c.infer(pkg.hash, None, bad_specs, bad_frames, timeout=10.0)
        assert r.outcome.name == "ERROR" and r.error_code == protocol.ErrorCode.BAD_INPUT


def test_curve_is_kept_at_the_front(cluster, pkg, tmp_path):
    """The front is the only door: an allowlisted key is served through Ray, an unknown key
    and a plaintext peer get nothing from the replicas (AUTH_FAILED / no answer)."""
    import shutil

    from edgeinf.scale.front import RayFront, ScaleConfig
    from edgeinf.transport import Client, protocol
    from edgeinf.transport.security import generate_keys
    from edgeinf.transport.testing import RawClient
    from edgeinf.worker import WorkerConfig

    keys = {n: generate_keys(tmp_path / "keys", n) for n in ("front", "alice", "mallory")}
    allow = tmp_path / "allow"
    allow.mkdir()
    shutil.copy(keys["alice"][0], allow / "alice.key")
    front = RayFront([pkg], WorkerConfig(bind="tcp://127.0.0.1:*", curve_secret=str(keys["front"][1]),
                                         allow_dir=str(allow)), ScaleConfig(tails=Scaling(1, 1)), cluster=cluster)
    front.initialize()
    t = threading.Thread(target=front.serve, daemon=True)
    t.start()
    try:
        specs, frames = protocol.pack_raw({"input": np.zeros((1, 3, 224, 224), np.float32)})
        with Client(front.endpoint, server_key=keys["front"][0], client_key=keys["alice"][1]) as alice:
            assert alice.wait_ready(10)
            assert alice.infer(pkg.hash, None, specs, frames, timeout=10.0).outcome.name == "OK"
        with Client(front.endpoint, server_key=keys["front"][0], client_key=keys["mallory"][1],
                    backoff_s=0.5) as mallory:
            outcomes, end = [], time.monotonic() + 2.0  # the client notices the refused handshake fast
            while time.monotonic() < end:
                outcomes.append(mallory.infer(pkg.hash, None, specs, frames, timeout=1.0).outcome.name)
                time.sleep(0.1)
            assert "OK" not in outcomes and outcomes[-1] == "AUTH_FAILED", outcomes
        with RawClient(front.endpoint) as probe:
            probe.send_msg(protocol.Kind.HELLO, {})
            assert probe.recv(0.5) is None
        assert front.stats["executed"] == 1
    finally:
        front.stop()
        t.join(30)
        front.finalize()


@pytest.mark.slow
def test_autoscaling_goes_from_1_to_2_replicas_under_load(cluster, pkg):
    """Queue length drives Ray Serve's autoscaler: sustained load on one replica (target one
    ongoing request) brings a second; every request ends in exactly one outcome."""
    from edgeinf.bench.scaleout import drive, summarize

    x = np.zeros((1, 3, 224, 224), np.float32)
    fast = dict(upscale_delay_s=0.5, metrics_interval_s=0.2, look_back_s=1.0, downscale_delay_s=60.0)
    seen = []

    def watch(t0):
        while time.monotonic() - t0 < 25 and (not seen or seen[-1] < 2):
            seen.append(cluster.replicas("edgeinf-tails"))
            time.sleep(0.25)

    with _Front(cluster, [pkg], Scaling(1, 2, 1.0, **fast)) as front:
        assert cluster.replicas("edgeinf-tails") == 1
        run = drive(front.endpoint, pkg.hash, None, {"input": x}, clients=3, window=2, seconds=25, during=watch)
        load = front.load()
    s = summarize(run)
    assert 2 in seen, f"never scaled up: replica counts seen {sorted(set(seen))}"
    assert seen[0] == 1
    assert s["lost"] == 0 and s["duplicated"] == 0, s
    assert load["replicas"] == 2 and load["workers"] == 2


@pytest.mark.slow
def test_replica_kill_minus_9_loses_nothing(cluster, pkg):
    """kill -9 of one of two replicas with requests in flight: every request gets exactly one
    reply (RESULT: retried on the live replica), Ray starts a fresh replica process."""
    from edgeinf.bench.scaleout import drive, kill_during, summarize

    x = np.zeros((1, 3, 224, 224), np.float32)
    out = {}
    with _Front(cluster, [pkg], Scaling(2, 2)) as front:
        cluster.wait_replicas("edgeinf-tails", 2, 60)
        run = drive(front.endpoint, pkg.hash, None, {"input": x}, clients=4, window=2, seconds=8,
                    during=kill_during(cluster, at_s=2.0, out=out))
        retried = front.scale_stats["retried"]
        assert cluster.replicas("edgeinf-tails") == 2
    s = summarize(run)
    assert s["lost"] == 0 and s["duplicated"] == 0, s
    assert s["outcomes"] == {"RESULT": s["sent"]}, s
    assert out.get("recovery_s") is not None, f"no fresh replica after the kill: {out}"
    assert retried >= 1  # something was in flight on the victim (window 8 over 2 replicas)


@pytest.mark.slow
def test_llm_sessions_stick_to_their_replica_and_survive_its_death(cluster):
    """Two language-model replicas: every step of a session lands on the replica that holds
    it (random routing would miss half the time, and a miss is a reopen); kill -9 that replica
    mid-answer: the edge gets SESSION once, reopens from its token history on the other
    replica, and the answer goes on; Ray restarts the dead one."""
    from edgeinf.llm.models import smollm2
    from edgeinf.llm.remote import RemoteSession
    from edgeinf.scale.cluster import LLMS
    from edgeinf.scale.front import RayFront, ScaleConfig
    from edgeinf.transport import Client
    from edgeinf.worker import WorkerConfig

    front = RayFront([], WorkerConfig(bind="tcp://127.0.0.1:*", llm_ctx=512),
                     ScaleConfig(llm=Scaling(2, 2), replica_cpus=0.5), llms={"lm": smollm2()}, cluster=cluster)
    front.initialize()
    t = threading.Thread(target=front.serve, daemon=True)
    t.start()
    try:
        cluster.wait_replicas(LLMS, 2, 90)
        with Client(front.endpoint) as c:
            assert c.wait_ready(10)
            rs = RemoteSession(c, "lm", timeout_s=10.0)
            history = list(range(200, 232))
            history += rs.open(history, n=4).tokens
            first = front._llm._where[rs.id]
            for _ in range(6):
                history += rs.step(history, 4).tokens
            assert rs.reopened == 0, "a step missed its session's replica"
            assert front._llm._where[rs.id] == first
            victim = front.llm_handle.pid.remote(affinity=first).result(timeout_s=10)
            os.kill(victim, signal.SIGKILL)
            time.sleep(0.5)
            before = len(history)
            history += rs.step(history, 4).tokens
            assert rs.reopened == 1 and len(history) == before + 4
            assert rs.n_past == len(history) - 1      # the new session holds the whole history
            assert front._llm._where[rs.id] != first
            history += rs.step(history, 4).tokens
            assert rs.reopened == 1
            cluster.wait_replicas(LLMS, 2, 90)
    finally:
        front.stop()
        t.join(30)
        front.finalize()
