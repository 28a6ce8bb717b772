"""Broker: requests spread over workers by load; a killed worker loses nothing."""
import threading
import time

import numpy as np
import pytest

from edgeinf.package import open_package
from edgeinf.plan import Plan
from edgeinf.runtime import EdgeRuntime
from edgeinf.transport import testing


@pytest.fixture(scope="module")
def pkg_dir(tmp_path_factory):
    return testing.make_split_package(tmp_path_factory.mktemp("pkg") / "mnv2")


def _stats(endpoint):
    with testing.RawClient(endpoint) as raw:
        return raw.hello()


def test_broker_spreads_load_and_survives_a_killed_worker(pkg_dir):
    pkg = open_package(pkg_dir)
    x = {"input": np.random.default_rng(5).random((1, 3, 224, 224), dtype=np.float32)}
    ref = pkg.session("full")(**x)["logits"]
    with testing.broker("--heartbeat", "0.2") as b:
        assert b.backend and b.endpoint
        workers = [testing.Proc(["worker", "--connect", b.backend, "--package", str(pkg_dir), "--no-verify",
                                 "--workers", "1", "--threads", "1"]) for _ in range(2)]
        try:
            end = time.monotonic() + 10
            while _stats(b.endpoint)["load"]["nodes"] < 2 and time.monotonic() < end:
                time.sleep(0.1)
            assert _stats(b.endpoint)["load"]["nodes"] == 2
            rts = [EdgeRuntime(pkg, [b.endpoint], deadline_s=1.0, backoff_s=0.3) for _ in range(4)]
            for rt in rts:
                assert rt.client.wait_ready(10)
            results, stop = [], threading.Event()

            def loop(rt):
                while not stop.is_set():
                    t = time.monotonic()
                    r = rt.run(x, Plan("offload"))
                    results.append((time.monotonic() - t, r))

            threads = [threading.Thread(target=loop, args=(rt,)) for rt in rts]
            for t in threads:
                t.start()
            time.sleep(1.0)
            spread = _stats(b.endpoint)["spread"]
            assert len(spread) == 2 and min(spread) > 0, spread  # both workers got work
            workers[0].kill()  # SIGKILL: the broker notices by heartbeat and re-dispatches
            time.sleep(1.5)
            stop.set()
            for t in threads:
                t.join(10)
            for rt in rts:
                rt.close()
            stats = _stats(b.endpoint)
        finally:
            for w in workers:
                w.kill()
    assert all(np.array_equal(r.outputs["logits"], ref) for _, r in results)
    assert max(took for took, _ in results) < 1.1
    assert stats["load"]["nodes"] == 1 and stats["stats"]["dead_workers"] == 1, stats
    late = [r.outcome for took, r in results[-10:]]
    assert "offload" in late, late  # the surviving worker kept serving
    assert stats["stats"]["forwarded"] >= sum(r.outcome == "offload" for _, r in results)
