"""Broker CURVE on both sides: bad key files, worker registration, fail closed, ZAP health."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from edgeinf.package import open_package
from edgeinf.transport import protocol, testing
from edgeinf.transport.broker import WORKERS_DOMAIN, Broker
from edgeinf.transport.protocol import Kind
from edgeinf.transport.security import ServerSecurity, apply_client_curve, generate_keys

sys.path.insert(0, os.path.dirname(__file__))
from authkill import serve_until_the_authenticator_dies  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = testing.make_slow_package(tmp_path_factory.mktemp("tiny") / "tiny", size=64, depth=2)
    pkg = open_package(d)
    x = np.random.default_rng(0).random((1, 64), dtype=np.float32)
    return d, pkg, x


@pytest.fixture()
def keys(tmp_path):
    k = {n: generate_keys(tmp_path / "keys", n) for n in ("broker", "alice", "bob", "w1", "mallory")}
    (tmp_path / "allow").mkdir()
    (tmp_path / "workers").mkdir()
    shutil.copy(k["alice"][0], tmp_path / "allow" / "alice.key")
    shutil.copy(k["w1"][0], tmp_path / "workers" / "w1.key")
    return k, tmp_path / "allow", tmp_path / "workers"


def _broker(keys, *extra):
    k, allow, workers = keys
    b = testing.broker("--heartbeat", "0.2", "--curve-secret", str(k["broker"][1]), "--allow", str(allow),
                       "--worker-allow", str(workers), *extra)
    assert b.endpoint and b.backend, f"broker did not start: {b.stderr()[-2000:]}"
    return b


def _worker(backend, pkg_dir, keys, name="w1"):
    k = keys[0]
    w = testing.Proc(["worker", "--connect", backend, "--package", str(pkg_dir), "--no-verify", "--threads", "1",
                      "--broker-key", str(k["broker"][0]), "--worker-key", str(k[name][1])])
    assert w.endpoint, w.stderr()[-2000:]
    return w


class _Curve:
    """A DEALER that is a CURVE client of the broker (a new handshake each time)."""

    def __init__(self, endpoint, server_pub, client_secret):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        apply_client_curve(self.sock, server_pub, client_secret)
        self.sock.connect(endpoint)

    def ask(self, kind, meta, frames=(), timeout=3.0):
        self.sock.send_multipart(protocol.encode(kind, meta, frames), copy=False)
        end = time.monotonic() + timeout
        while self.sock.poll(max(int((end - time.monotonic()) * 1000), 0)):
            m = protocol.decode(self.sock.recv_multipart())
            if m.kind == kind or m.id == meta.get("id"):
                return m
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close(linger=0)


def _hello(b, keys, name="alice", timeout=3.0):
    k = keys[0]
    with _Curve(b.endpoint, k["broker"][0], k[name][1]) as c:
        m = c.ask(Kind.HELLO, {}, timeout=timeout)
    return None if m is None else m.meta


def _nodes(b, keys, n, timeout=15.0):
    end = time.monotonic() + timeout
    hello = None
    while time.monotonic() < end:
        hello = _hello(b, keys)
        if hello and hello["load"]["nodes"] == n:
            return hello
        time.sleep(0.1)
    raise AssertionError(f"broker never saw {n} worker(s): {hello}")


def _infer_ok(b, keys, pkg, x, name="alice", rid=1):
    k = keys[0]
    meta = {"id": rid, "budget_ms": 10000, "pkg": pkg.hash, "cut": None,
            "tensors": [{"name": "x", "dtype": "float32", "shape": [1, 64]}]}
    with _Curve(b.endpoint, k["broker"][0], k[name][1]) as c:
        m = c.ask(Kind.INFER, meta, [x], timeout=10)
    return m is not None and m.kind == Kind.RESULT


def test_bad_key_files_do_not_end_authentication(tiny, keys):
    pkg_dir, pkg, x = tiny
    k, allow, _ = keys
    with _broker(keys) as b, _worker(b.backend, pkg_dir, keys):
        _nodes(b, keys, 1)
        (allow / "garbage.key").write_bytes(os.urandom(300))
        (allow / "bob.key").write_text(k["bob"][0].read_text()[:70])  # caught half-copied
        alice = k["alice"][0].read_text()
        (allow / "alice.key").write_text(alice[:90])  # a half-finished rewrite of a good key
        time.sleep(0.3)
        assert _infer_ok(b, keys, pkg, x), "a new handshake failed after bad key files appeared"
        assert _hello(b, keys, "bob", timeout=1.0) is None  # the half copy added nobody
        (allow / "garbage.key").unlink()
        (allow / "alice.key").write_text(alice)
        shutil.copy(k["bob"][0], allow / "bob.key")  # the copy finished
        time.sleep(0.3)
        assert _infer_ok(b, keys, pkg, x, rid=2) and _infer_ok(b, keys, pkg, x, name="bob", rid=3)
        assert _hello(b, keys, "mallory", timeout=1.0) is None
        assert b.proc.poll() is None


def test_unauthenticated_peers_cannot_register_as_workers(tiny, keys):
    pkg_dir, pkg, x = tiny
    _, _, workers = keys
    with _broker(keys) as b:
        fake = zmq.Context.instance().socket(zmq.DEALER)  # plaintext peer on the CURVE backend
        fake.linger = 0
        try:
            fake.connect(b.backend)
            with _worker(b.backend, pkg_dir, keys, name="mallory") as intruder:
                for _ in range(10):  # (the handshake fails, so libzmq may not even queue these)
                    try:
                        fake.send_multipart([b"", *protocol.encode(Kind.HEARTBEAT, {"load": {"capacity": 100}})],
                                            zmq.NOBLOCK)
                    except zmq.Again:
                        pass
                    time.sleep(0.1)
                assert _hello(b, keys)["load"]["nodes"] == 0
                assert intruder.proc.poll() is None  # refused, not crashed: it keeps retrying
        finally:
            fake.close()
        with _worker(b.backend, pkg_dir, keys) as w1:
            _nodes(b, keys, 1)
            assert _infer_ok(b, keys, pkg, x)
            (workers / "w1.key").unlink()  # revoked with its connection open: dropped
            _nodes(b, keys, 0, timeout=5)
            assert _hello(b, keys)["stats"]["worker_refused"] >= 1
            w1.kill()


@pytest.mark.parametrize("case", ["curve front, plaintext back", "plaintext on the network",
                                  "empty worker allowlist", "allow without secret"])
def test_broker_fails_closed(keys, tmp_path, case):
    k, allow, _ = keys
    empty = tmp_path / "empty"
    empty.mkdir()
    sec = ["--curve-secret", str(k["broker"][1])]
    args, backend = {
        "curve front, plaintext back": (sec + ["--allow", str(allow)], "tcp://127.0.0.1:*"),
        "plaintext on the network": ([], "tcp://0.0.0.0:*"),
        "empty worker allowlist": (sec + ["--allow", str(allow), "--worker-allow", str(empty)], "tcp://127.0.0.1:*"),
        "allow without secret": (["--allow", str(allow)], "tcp://127.0.0.1:*"),
    }[case]
    b = testing.broker(*args, backend=backend)
    try:
        assert b.endpoint is None, f"{case}: broker started on {b.endpoint}"
        assert b.wait(10) != 0
        err = b.stderr()
        assert "error:" in err and any(w in err for w in ("worker-allow", "plaintext", "keys", "curve-secret")), err
    finally:
        b.kill()


def test_a_dead_authenticator_ends_serve_with_an_error(keys):
    k, allow, workers = keys
    sec = ServerSecurity(k["broker"][1], allow, domains={WORKERS_DOMAIN: workers})
    broker = Broker("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", heartbeat_s=0.1, security=sec)
    serve_until_the_authenticator_dies(broker, sec, broker.close)


def test_keys_generate_json(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edgeinf", "keys", "generate", str(tmp_path), "--name", "pi",
                        "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["public"].endswith("pi.key") and out["secret"].endswith("pi.key_secret")
    assert len(out["public_key"]) == 40


def test_broker_prints_json_stats_on_exit():
    b = testing.broker("--json")
    assert b.endpoint, b.stderr()[-2000:]
    try:
        with testing.RawClient(b.endpoint) as raw:
            raw.send([b"garbage"])
            assert raw.recv(2).kind == Kind.ERROR
        b.signal()
        assert b.wait(10) == 0
        lines = []
        while (line := b._lines.get(timeout=5)) is not None:
            lines.append(line)
    finally:
        b.kill()
    out = json.loads(lines[-1])
    assert out["stats"]["bad_client"] == 1 and out["load"]["nodes"] == 0, out
