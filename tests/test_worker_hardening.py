"""Each failure class of issue 11 against a real worker process: it answers that message
(or drops that connection) and stays alive and serving."""
import json
import signal
import struct
import time

import numpy as np
import pytest

from edgeinf import imagecodec
from edgeinf.bench.hardening import make_image_package
from edgeinf.package import open_package
from edgeinf.transport import protocol, testing
from edgeinf.transport.protocol import ErrorCode, Kind

X = np.linspace(0, 1, 16, dtype=np.float32)[None]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field)) / 1024


@pytest.fixture(scope="module")
def fast_dir(tmp_path_factory):
    return testing.make_slow_package(tmp_path_factory.mktemp("fast") / "fast", size=16, depth=1)


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return testing.make_slow_package(tmp_path_factory.mktemp("slow") / "slow")


@pytest.fixture(scope="module")
def fast_worker(fast_dir):
    with testing.worker(fast_dir, "--threads", "1") as w:
        w.pkg = open_package(fast_dir)
        yield w


def infer(pkg, rid, x=X, client="good", **extra):
    specs, frames = protocol.pack_raw({"x": x})
    return {"id": rid, "budget_ms": 20000, "pkg": pkg.hash, "cut": None, "client": client, "tensors": specs,
            **extra}, frames


def assert_serving(w, pkg, x=X, rid=None):
    """The worker process is alive and answers a valid request correctly."""
    assert w.proc.poll() is None, w.stderr()
    rid = rid if rid is not None else int(time.monotonic() * 1e6)
    with testing.RawClient(w.endpoint) as c:
        c.send_msg(Kind.INFER, *infer(pkg, rid, x, client=f"probe{rid}"))
        r = c.recv(20)
        assert r is not None and r.kind == Kind.RESULT and r.id == rid, r and r.meta
        return r


def raw_message(kind, meta_bytes: bytes, frames=()):
    head = protocol.HEADER.pack(protocol.MAGIC, protocol.PROTOCOL_VERSION, int(kind), 0, len(frames), 0,
                                len(meta_bytes))
    return [head + meta_bytes, *frames]


@pytest.mark.parametrize("dtype", [[], {}, ["float32"], {"a": 1}, 4, None, True])
def test_dtype_of_the_wrong_json_type_is_that_messages_error(fast_worker, dtype):
    w = fast_worker
    meta, frames = infer(w.pkg, 1)
    meta["tensors"][0]["dtype"] = dtype
    with testing.RawClient(w.endpoint) as c:
        c.send_msg(Kind.INFER, meta, frames)
        r = c.recv(10)
        assert r.kind == Kind.ERROR and r.meta["code"] in (ErrorCode.PROTOCOL, ErrorCode.BAD_INPUT), r.meta
        assert "dtype" in r.meta["msg"]
    assert_serving(w, w.pkg)


@pytest.mark.parametrize("field,value", [("shape", {"0": 1}), ("shape", [1.0, 16]), ("shape", [True, 16]),
                                         ("name", ["x"]), ("name", {"x": 1})])
def test_other_tensor_fields_of_the_wrong_type(fast_worker, field, value):
    w = fast_worker
    meta, frames = infer(w.pkg, 2)
    meta["tensors"][0][field] = value
    with testing.RawClient(w.endpoint) as c:
        c.send_msg(Kind.INFER, meta, frames)
        r = c.recv(10)
        assert r.kind == Kind.ERROR and r.meta["code"] in (ErrorCode.PROTOCOL, ErrorCode.BAD_INPUT), r.meta
    assert_serving(w, w.pkg)


def test_error_quoting_non_ascii_names_fits_the_metadata_limit(fast_worker):
    w = fast_worker
    # 7 tensors named with 250 emoji each: 7 kB of UTF-8 in, 21 kB once JSON-escaped in an error
    names = [chr(0x1F600 + i) * 250 for i in range(7)]
    specs = [{"name": n, "dtype": "float32", "shape": [1]} for n in names]
    meta = {"id": 3, "budget_ms": 20000, "pkg": w.pkg.hash, "cut": "\u00e9" * 128, "tensors": specs}
    raw = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(raw) <= 8192 < len(json.dumps(meta))
    with testing.RawClient(w.endpoint) as c:
        c.send(raw_message(Kind.INFER, raw, [b"\0" * 4] * 7))
        r = c.recv(10)
        assert r.kind == Kind.ERROR and r.meta["code"] == ErrorCode.UNKNOWN_CUT and r.id == 3, r.meta
        meta["cut"] = None
        raw = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()
        c.send(raw_message(Kind.INFER, raw, [b"\0" * 4] * 7))
        r = c.recv(10)
        assert r.kind == Kind.ERROR and r.meta["code"] == ErrorCode.BAD_INPUT and r.id == 3, r.meta
        assert len(json.dumps(r.meta)) <= protocol.DEFAULT_LIMITS.max_meta
    assert_serving(w, w.pkg)


def test_81_frames_of_4_mib_cost_no_memory_and_only_that_connection(fast_worker):
    w = fast_worker
    before = rss_mb(w.proc.pid)
    big = b"\0" * (4 * 2**20)
    meta, _ = infer(w.pkg, 4)
    head = protocol.encode(Kind.INFER, meta)[0]
    with testing.RawClient(w.endpoint) as c:
        for _ in range(3):
            c.send([head, *[big] * 80])  # frames over MAXMSGSIZE: libzmq drops the connection
        time.sleep(1.0)
    grown = rss_mb(w.proc.pid) - before
    assert grown < 50, f"RSS grew {grown:.0f} MB"  # buffered whole, it was +330 MB per message
    assert_serving(w, w.pkg)


def test_zmtp_frames_claiming_200_mib_reserve_nothing(fast_worker):
    from edgeinf.bench.hardening import zmtp_claim

    w = fast_worker
    host, port = w.endpoint.rsplit("/", 1)[1].rsplit(":", 1)
    before = rss_mb(w.proc.pid, "VmSize")
    socks = [zmtp_claim(host, int(port), 200 * 2**20) for _ in range(10)]
    time.sleep(0.5)
    grown = rss_mb(w.proc.pid, "VmSize") - before
    for s in socks:
        s.close()
    assert grown < 100, f"address space grew {grown:.0f} MB"  # without the frame cap: 200 MiB per connection
    assert_serving(w, w.pkg)


def test_tensor_claiming_200_mib_is_refused_before_allocation(fast_worker):
    w = fast_worker
    before = rss_mb(w.proc.pid)
    meta, frames = infer(w.pkg, 5)
    meta["tensors"][0]["shape"] = [1, 50 * 2**20]
    with testing.RawClient(w.endpoint) as c:
        for rid in range(20):
            c.send_msg(Kind.INFER, {**meta, "id": rid}, frames)
            r = c.recv(10)
            assert r.kind == Kind.ERROR and r.meta["code"] == ErrorCode.PROTOCOL and "limit" in r.meta["msg"], r.meta
    assert rss_mb(w.proc.pid) - before < 20
    assert_serving(w, w.pkg)


def test_jpeg_stream_lying_about_its_size_is_refused_before_decoding(tmp_path):
    pkg_dir = make_image_package(tmp_path / "mean")
    pkg = open_package(pkg_dir)
    img = np.stack(np.meshgrid(np.linspace(0, 1, 64), np.linspace(0, 1, 48), indexing="ij") * 2, -1)[..., :3]
    img = img[None].astype(np.float32)
    good = imagecodec.encode(img, "jpeg90")
    i = good.index(b"\xff\xc0", imagecodec.HEAD.size + 16)
    liar = good[: i + 5] + struct.pack(">HH", 10000, 10000) + good[i + 9:]
    specs = [{"name": "x", "dtype": "float32", "shape": [1, 64, 48, 3]}]
    with testing.worker(pkg_dir, "--threads", "1") as w, testing.RawClient(w.endpoint) as c:
        before = rss_mb(w.proc.pid)
        for rid in range(10):
            meta = {"id": rid, "budget_ms": 20000, "pkg": pkg.hash, "codec": "jpeg90", "tensors": specs}
            t = time.monotonic()
            c.send_msg(Kind.INFER, meta, [liar])
            r = c.recv(10)
            assert r.kind == Kind.ERROR and r.meta["code"] == ErrorCode.CODEC and "10000x10000" in r.meta["msg"]
            assert time.monotonic() - t < 1.0  # decoding it took 1.3 s and 632 MB
        assert rss_mb(w.proc.pid) - before < 50
        c.send_msg(Kind.INFER, {"id": 99, "budget_ms": 20000, "pkg": pkg.hash, "codec": "jpeg90", "tensors": specs},
                   [good])
        r = c.recv(20)
        assert r.kind == Kind.RESULT and abs(r.arrays()["y"][0] - img.mean()) < 0.02


def test_retry_after_the_window_or_after_eviction_is_refused_not_rerun(fast_dir):
    pkg = open_package(fast_dir)
    with testing.worker(fast_dir, "--retry-window", "1", "--threads", "1") as w, \
            testing.RawClient(w.endpoint) as c:
        c.send_msg(Kind.INFER, *infer(pkg, 5, client="r"))
        assert c.recv(10).kind == Kind.RESULT
        c.send_msg(Kind.INFER, *infer(pkg, 5, client="r"))  # inside the window: the cached answer
        r = c.recv(10)
        assert r.kind == Kind.RESULT and r.flags & protocol.FLAG_CACHED
        time.sleep(1.5)
        c.send_msg(Kind.INFER, *infer(pkg, 5, client="r"))
        r = c.recv(10)
        assert r.kind == Kind.ERROR and r.meta["code"] == ErrorCode.RETRY_WINDOW and r.id == 5, r.meta
        assert c.hello()["stats"]["executed"] == 1
    with testing.worker(fast_dir, "--threads", "1") as w, testing.RawClient(w.endpoint) as c:
        # a reply cache of 64 MiB holds 1 answer of this size: the first is evicted by bytes
        big = np.zeros((1, 16), np.float32)
        for rid in range(1, 1100):  # more answers than cache entries (1024)
            c.send_msg(Kind.INFER, *infer(pkg, rid, big, client="e"))
            assert c.recv(10).kind == Kind.RESULT
        c.send_msg(Kind.INFER, *infer(pkg, 1, big, client="e"))
        r = c.recv(10)
        assert r.kind == Kind.ERROR and r.meta["code"] == ErrorCode.RETRY_WINDOW, r.meta
        stats = c.hello()["stats"]
        assert stats["executed"] == 1099 and stats["retry_refused"] == 1, stats
        assert_serving(w, pkg)


def test_requests_queued_while_the_worker_was_stopped_are_not_run_late(fast_dir):
    pkg = open_package(fast_dir)
    with testing.worker(fast_dir, "--threads", "1") as w, testing.RawClient(w.endpoint) as c:
        assert_serving(w, pkg)
        w.signal(signal.SIGSTOP)
        try:
            c.send_msg(Kind.INFER, *infer(pkg, 1, budget_ms=300))  # relative budget only
            c.send_msg(Kind.INFER, *infer(pkg, 2, budget_ms=60000, deadline=time.time() + 0.3))  # absolute
            time.sleep(1.2)  # the client fell back long ago
        finally:
            w.signal(signal.SIGCONT)
        got = {m.id: m for m in (c.recv(10), c.recv(10)) if m is not None}
        assert sorted(got) == [1, 2], got
        for m in got.values():
            assert m.kind == Kind.ERROR and m.meta["code"] == ErrorCode.EXPIRED, m.meta
        stats = c.hello()["stats"]
        assert stats["executed"] == 1 and stats["expired"] == 2 and stats["stalls"] >= 1, stats
        assert_serving(w, pkg)


def test_cancel_drops_a_queued_request_unexecuted(slow_dir):
    pkg = open_package(slow_dir)
    x = np.zeros((1, 768), np.float32)
    with testing.worker(slow_dir, "--workers", "1", "--threads", "1") as w, testing.RawClient(w.endpoint) as c:
        c.send_msg(Kind.INFER, *infer(pkg, 1, x, client="k"))  # occupies the only executor
        c.send_msg(Kind.INFER, *infer(pkg, 2, x, client="k"))  # queued behind it
        c.send_msg(Kind.CANCEL, {"id": 2, "client": "k"})      # the client ran #2 locally
        c.send_msg(Kind.CANCEL, {"id": 77, "client": "k"})     # unknown: ignored, no answer
        got = {m.id: m for m in (c.recv(30), c.recv(30)) if m is not None}
        assert got[1].kind == Kind.RESULT
        assert got[2].kind == Kind.ERROR and got[2].meta["code"] == ErrorCode.CANCELLED, got[2].meta
        assert c.recv(0.3) is None
        stats = c.hello()["stats"]
        assert stats["executed"] == 1 and stats["cancelled"] == 1, stats


def test_a_client_that_never_reads_cannot_starve_a_well_behaved_one(slow_dir):
    import zmq

    pkg = open_package(slow_dir)
    x = np.zeros((1, 768), np.float32)
    with testing.worker(slow_dir, "--workers", "1", "--queue", "8", "--threads", "1") as w:
        hog = zmq.Context.instance().socket(zmq.DEALER)
        hog.linger, hog.rcvhwm = 0, 1
        hog.connect(w.endpoint)
        try:
            for rid in range(60):  # never reads a reply
                hog.send_multipart(protocol.encode(Kind.INFER, *infer(pkg, rid, x, client="hog")), copy=False)
            time.sleep(0.3)
            with testing.RawClient(w.endpoint) as good:
                lat = []
                for rid in range(4):
                    t = time.monotonic()
                    good.send_msg(Kind.INFER, *infer(pkg, 1000 + rid, x, client="good"))
                    r = good.recv(30)
                    lat.append(time.monotonic() - t)
                    assert r is not None and r.kind == Kind.RESULT, r and r.meta
                stats = good.hello()["stats"]
        finally:
            hog.close(linger=0)
    # taking turns: each good request waits for at most the hog's running one, not its backlog of 8
    one = min(lat) / 2
    assert max(lat) < 2 * 3.5 * max(one, 0.05) + 1.0, lat
    assert stats["client_limit"] > 0 and stats["busy"] == stats["client_limit"], stats


def test_hello_details_only_for_trusted_peers(fast_dir, tmp_path):
    from edgeinf.transport import security

    with testing.worker(fast_dir, "--allow-plaintext", bind="tcp://0.0.0.0:*") as w:
        port = w.endpoint.rsplit(":", 1)[1]
        with testing.RawClient(f"tcp://127.0.0.1:{port}") as c:
            h = c.hello()
        assert "pkgs" not in h and "stats" not in h and "cuts" not in h and h["codecs"], h
    server_pub, server_sec = security.generate_keys(tmp_path / "server", "server")
    allow = tmp_path / "allow"
    _, client_sec = security.generate_keys(allow, "client")
    with testing.worker(fast_dir, "--curve-secret", str(server_sec), "--allow", str(allow)) as w:
        import zmq

        s = zmq.Context.instance().socket(zmq.DEALER)
        s.linger = 0
        security.apply_client_curve(s, server_pub, client_sec)
        s.connect(w.endpoint)
        try:
            s.send_multipart(protocol.encode(Kind.HELLO, {}))
            assert s.poll(10000)
            h = protocol.decode(s.recv_multipart()).meta
        finally:
            s.close(linger=0)
        assert h["pkgs"] == [open_package(fast_dir).hash] and "stats" in h, h


def test_json_stats_on_exit(fast_dir):
    w = testing.worker(fast_dir, "--json", "--threads", "1")
    try:
        with testing.RawClient(w.endpoint) as c:
            c.send_msg(Kind.HEARTBEAT, {})
            assert c.recv(10).kind == Kind.HEARTBEAT
        w.signal(signal.SIGTERM)
        assert w.wait(15) == 0
        lines = []
        while (ln := w._lines.get(timeout=5)) is not None:
            lines.append(ln)
    finally:
        w.kill()
    last = json.loads(lines[-1])
    assert last["stats"]["executed"] == 0 and last["stats"]["bad"] == 0 and last["max_frame"] < 2**20, last


def test_client_that_times_out_cancels_its_queued_request(slow_dir):
    from edgeinf.transport.client import Client, Outcome

    pkg = open_package(slow_dir)
    x = np.zeros((1, 768), np.float32)
    specs, frames = protocol.pack_raw({"x": x})
    with testing.worker(slow_dir, "--workers", "1", "--threads", "1") as w, Client(w.endpoint) as cl:
        assert cl.wait_ready(10)
        first = cl.submit(pkg.hash, None, specs, frames, timeout=20.0)  # occupies the only executor
        time.sleep(0.05)
        late = cl.submit(pkg.hash, None, specs, frames, timeout=0.1)  # queued; the client gives up
        assert late.result(10).outcome == Outcome.TIMEOUT
        assert first.result(30).outcome == Outcome.OK
        with testing.RawClient(w.endpoint) as c:
            end = time.monotonic() + 10
            while (stats := c.hello()["stats"])["cancelled"] + stats["expired"] < 1 and time.monotonic() < end:
                time.sleep(0.05)
        # the CANCEL reached the worker while #2 was queued: dropped unexecuted, never run late
        assert stats["executed"] == 1 and stats["cancelled"] == 1, stats


def test_throwaway_connections_of_one_curve_key_share_its_budget(slow_dir, tmp_path):
    import zmq

    from edgeinf.transport import security

    pkg = open_package(slow_dir)
    server_pub, server_sec = security.generate_keys(tmp_path / "server", "server")
    allow = tmp_path / "allow"
    _, client_sec = security.generate_keys(allow, "client")
    specs, frames = protocol.pack_raw({"x": np.zeros((1, 768), np.float32)})
    with testing.worker(slow_dir, "--workers", "1", "--queue", "8", "--per-client", "2", "--threads", "1",
                        "--curve-secret", str(server_sec), "--allow", str(allow)) as w:
        socks = []
        try:
            for i in range(10):  # ten identities, one key
                s = zmq.Context.instance().socket(zmq.DEALER)
                s.linger = 0
                security.apply_client_curve(s, server_pub, client_sec)
                s.connect(w.endpoint)
                socks.append(s)
            for i, s in enumerate(socks):
                meta = {"id": 1, "budget_ms": 60000, "pkg": pkg.hash, "client": f"c{i}", "tensors": specs}
                s.send_multipart(protocol.encode(Kind.INFER, meta, frames))
            kinds = []
            for s in socks:
                assert s.poll(20000)
                m = protocol.decode(s.recv_multipart())
                kinds.append((m.kind, m.meta.get("reason")))
        finally:
            for s in socks:
                s.close(linger=0)
    # the key's budget is 2 in flight however many connections it opens
    assert kinds.count((Kind.BUSY, "client limit")) == 8 and [k for k, _ in kinds].count(Kind.RESULT) == 2, kinds
