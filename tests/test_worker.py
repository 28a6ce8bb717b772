"""Worker admission, idempotency, shutdown and many clients, on real processes and sockets."""
import signal
import threading
import time

import numpy as np
import pytest

from edgeinf.package import open_package
from edgeinf.plan import Plan
from edgeinf.runtime import EdgeRuntime
from edgeinf.transport import protocol, testing
from edgeinf.transport.protocol import ErrorCode, Kind


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return testing.make_slow_package(tmp_path_factory.mktemp("slow") / "slow")


@pytest.fixture(scope="module")
def slow(slow_dir):
    pkg = open_package(slow_dir)
    x = np.random.default_rng(0).random((1, 768), dtype=np.float32)
    return pkg, protocol.pack_raw({"x": x})


def _meta(pkg, rid, budget_ms=20000, client="t"):
    specs = [{"name": "x", "dtype": "float32", "shape": [1, 768]}]
    return {"id": rid, "budget_ms": budget_ms, "pkg": pkg.hash, "cut": None, "client": client, "tensors": specs}


def _collect(raw, n, timeout=30.0):
    out, end = {}, time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        m = raw.recv(end - time.monotonic())
        if m is not None and m.id is not None:
            out.setdefault(m.id, []).append((time.monotonic(), m))
    return out


def test_backpressure_busy_fast_and_admitted_all_succeed(slow, slow_dir):
    pkg, (_, frames) = slow
    with testing.worker(slow_dir, "--workers", "1", "--queue", "1", "--threads", "1", "--per-client", "2") as w, \
            testing.RawClient(w.endpoint) as raw:
        for rid in range(2):  # one running, one queued: full
            raw.send_msg(Kind.INFER, _meta(pkg, rid), frames)
        time.sleep(0.05)
        busy_ms, early = [], {}
        for rid in range(2, 12):
            t = time.monotonic()
            raw.send_msg(Kind.INFER, _meta(pkg, rid), frames)
            m = raw.recv(10)
            while m is not None and m.id in (0, 1):  # an admitted one finished meanwhile
                early[m.id] = m
                m = raw.recv(10)
            busy_ms.append((time.monotonic() - t) * 1e3)
            assert m is not None and m.kind == Kind.BUSY and m.id == rid, m
            assert m.meta["load"]["capacity"] == 2 and m.meta["reason"] == "queue full"
        got = {**early, **{i: v[0][1] for i, v in _collect(raw, 2 - len(early)).items()}}
        assert sorted(got) == [0, 1] and all(m.kind == Kind.RESULT for m in got.values()), got
        assert raw.recv(0.3) is None  # nothing answered twice
        # 10 ms target on the median: a shared 2-core box stalls now and then
        assert np.median(busy_ms) < 10, f"BUSY took {np.median(busy_ms):.1f} ms (median); all: {busy_ms}"
        assert raw.hello()["stats"]["busy"] == 10


def test_expired_requests_are_never_executed(slow, slow_dir):
    pkg, (_, frames) = slow
    with testing.worker(slow_dir, "--workers", "1", "--queue", "32", "--threads", "1") as w, \
            testing.RawClient(w.endpoint) as raw:
        t = time.monotonic()
        raw.send_msg(Kind.INFER, _meta(pkg, 0), frames)
        assert raw.recv(30).kind == Kind.RESULT
        one = time.monotonic() - t
        # about 1 s of queued work, and never more than the queue holds (else BUSY, not EXPIRED);
        # 30 x even a fast request still outlasts the late one's 200 ms budget
        n = min(max(2, int(1.0 / one) + 1), 30)
        for rid in range(1, n + 1):
            raw.send_msg(Kind.INFER, _meta(pkg, rid), frames)
        raw.send_msg(Kind.INFER, _meta(pkg, 99, budget_ms=200), frames)
        got = _collect(raw, n + 1, timeout=60)
        late = got[99][0][1]
        assert late.kind == Kind.ERROR and late.meta["code"] == ErrorCode.EXPIRED
        stats = raw.hello()["stats"]
        assert stats["executed"] == n + 1 and stats["expired"] == 1, stats


def test_retry_with_same_id_runs_once(slow, slow_dir):
    pkg, (_, frames) = slow
    with testing.worker(slow_dir) as w:
        a = testing.RawClient(w.endpoint)
        a.send_msg(Kind.INFER, _meta(pkg, 5, client="c1"), frames)
        a.send_msg(Kind.INFER, _meta(pkg, 5, client="c1"), frames)  # retry while it runs: joins it
        first = _collect(a, 1, timeout=30)[5]
        assert len(first) == 1 and first[0][1].kind == Kind.RESULT
        assert a.recv(0.5) is None  # no second answer
        a.close()  # the reply of the next attempt is "lost" with this socket
        b = testing.RawClient(w.endpoint)
        b.send_msg(Kind.INFER, _meta(pkg, 6, client="c1"), frames)
        b.close()
        time.sleep(0.1)
        with testing.RawClient(w.endpoint) as c:
            end = time.monotonic() + 30
            while c.hello()["stats"]["executed"] < 2 and time.monotonic() < end:
                time.sleep(0.05)
            c.send_msg(Kind.INFER, _meta(pkg, 6, client="c1"), frames)  # retry after the loss
            r = c.recv(10)
            # NOTE: on a loaded machine the retry can land between "executed" and the reply
            # entering the cache; it then joins the pending result (no FLAG_CACHED). Either
            # way it must not run again, which the executed count below checks.
            assert r.kind == Kind.RESULT
            ref = c.recv(0.2)
            assert ref is None
            assert c.hello()["stats"]["executed"] == 2
            c.send_msg(Kind.INFER, _meta(pkg, 6, client="other"), frames)  # other client, same id: runs
            assert c.recv(30).flags & protocol.FLAG_CACHED == 0
            stats = c.hello()["stats"]
        assert stats["executed"] == 3 and stats["replayed"] <= 1, stats


def test_sigterm_finishes_in_flight_refuses_new_and_exits(slow, slow_dir):
    pkg, (_, frames) = slow
    w = testing.worker(slow_dir, "--workers", "1", "--threads", "1")
    try:
        with testing.RawClient(w.endpoint) as raw:
            for rid in range(3):
                raw.send_msg(Kind.INFER, _meta(pkg, rid), frames)
            time.sleep(0.1)
            w.signal(signal.SIGTERM)
            time.sleep(0.1)
            raw.send_msg(Kind.INFER, _meta(pkg, 9), frames)
            got = _collect(raw, 4, timeout=30)
            assert [got[r][0][1].kind for r in range(3)] == [Kind.RESULT] * 3
            assert got[9][0][1].kind == Kind.BUSY and got[9][0][1].meta["reason"] == "draining"
        assert w.wait(15) == 0
    finally:
        w.kill()


def test_many_concurrent_clients_lose_nothing(tmp_path_factory):
    pkg_dir = testing.make_split_package(tmp_path_factory.mktemp("pkg") / "mnv2")
    pkg = open_package(pkg_dir)
    x = {"input": np.random.default_rng(3).random((1, 3, 224, 224), dtype=np.float32)}
    ref = pkg.session("full")(**x)["logits"]
    n_clients, run_s, deadline = 32, 4.0, 1.0
    plan = Plan("split", cut=testing.split_cut(pkg))
    with testing.worker(pkg_dir, "--workers", "2", "--queue", "16", "--threads", "1") as w:
        runtimes = [EdgeRuntime(pkg, [w.endpoint], deadline_s=deadline, backoff_s=0.2) for _ in range(n_clients)]
        for rt in runtimes:
            assert rt.client.wait_ready(10)
        records, errors = [], []
        stop = time.monotonic() + run_s

        def loop(rt):
            try:
                while time.monotonic() < stop:
                    t = time.monotonic()
                    r = rt.run(x, plan)
                    records.append((time.monotonic() - t, r.outcome, r.transport,
                                    np.array_equal(r.outputs["logits"], ref)))
            except Exception as e:  # noqa: BLE001 - counted and asserted below
                errors.append(e)

        threads = [threading.Thread(target=loop, args=(rt,)) for rt in runtimes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(run_s + 10)
        for rt in runtimes:
            rt.close()
        with testing.RawClient(w.endpoint) as raw:
            stats = raw.hello()["stats"]
    assert not errors and not any(t.is_alive() for t in threads)
    lat = np.array([r[0] for r in records]) * 1e3
    by = {}
    for _, outcome, transport, _ in records:
        by[(outcome, transport)] = by.get((outcome, transport), 0) + 1
    assert all(r[3] for r in records), "a result differs from the local reference"
    # "lost" = no outcome by deadline + 1 s (RELIABILITY.md); 32 threads on 2 shared cores
    # can be descheduled past the deadline itself, so that is reported, not asserted
    assert lat.max() < (deadline + 1.0) * 1e3, f"a request took {lat.max():.0f} ms"
    late = int((lat > deadline * 1e3).sum())
    offloaded = by.get(("offload", "ok"), 0)
    # one endpoint, no retries: every executed request was delivered unless its client had
    # already timed out and run it locally; every BUSY fell back
    timeouts = by.get(("local_fallback", "timeout"), 0)
    assert offloaded > 0 and offloaded <= stats["executed"] <= offloaded + timeouts, (by, stats)
    assert by.get(("local_fallback", "busy"), 0) == stats["busy"]
    accounted = sum(v for (o, t), v in by.items() if o == "offload" or t in ("busy", "timeout", "down", "skipped"))
    # an ERROR here can only be EXPIRED: a request sent with (almost) no budget left is refused at once
    assert accounted + by.get(("local_fallback", "error"), 0) == len(records), by
    assert by.get(("local_fallback", "error"), 0) <= stats["expired"], (by, stats)
    print(f"\n{n_clients} clients x {run_s} s: {len(records)} requests, outcomes {by}, "
          f"p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, {late} past the deadline, "
          f"worker stats {stats}")


def test_replay_cache_is_bounded_in_entries_and_bytes():
    from edgeinf.transport.replay import ReplayWindow

    w = ReplayWindow(60.0, cache_entries=3, cache_bytes=1000)
    for i in range(5):
        w.remember(("", "c", i), ("reply", i), 100)
    assert [w.lookup(("", "c", i))[0] for i in range(5)] == ["refused"] * 2 + ["cached"] * 3 and w.nbytes == 300
    w.remember(("", "c", 9), ("reply", 9), 950)
    assert len(w) == 1 and w.nbytes == 950 and w.lookup(("", "c", 9)) == ("cached", ("reply", 9))
    assert w.lookup(("", "c", 10))[0] == "new" and w.lookup(("", "other", 1))[0] == "new"


def test_replay_window_forgets_by_time_and_count_into_a_refusing_watermark():
    from edgeinf.transport.replay import ReplayWindow

    now = [0.0]
    w = ReplayWindow(10.0, max_keys=4, clock=lambda: now[0])
    for i in range(6):  # ids 0 and 1 fall out by count
        w.remember(("u", "c", i), ("r", i), 0)
    assert w.stats()["known"] == 4
    assert w.lookup(("u", "c", 0))[0] == "refused" and w.lookup(("u", "c", 5))[0] == "cached"
    now[0] = 11.0  # the window passed: every answered id is forgotten, all still refused
    assert w.stats()["known"] == 4 and w.lookup(("u", "c", 5))[0] == "refused" and w.stats()["known"] == 0
    assert w.lookup(("u", "c", 6))[0] == "new" and w.lookup(("u", "d", 0))[0] == "new"
