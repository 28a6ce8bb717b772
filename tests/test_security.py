"""CurveZMQ: only allowlisted keys are served, revocation bites open connections, fail closed."""
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeinf.package import open_package
from edgeinf.transport import Client, Outcome, protocol, testing


@pytest.fixture(scope="module")
def pkg_dir(tmp_path_factory):
    return testing.make_split_package(tmp_path_factory.mktemp("pkg") / "mnv2")


@pytest.fixture(scope="module")
def request_frames(pkg_dir):
    pkg = open_package(pkg_dir, verify=False)
    cut = pkg.cut(testing.split_cut(pkg))
    x = {t.name: np.random.default_rng(0).random(t.shape, dtype=np.float32) for t in cut.tensors}
    return pkg.hash, cut.id, protocol.pack_raw(x)


def _keys(tmp_path):
    def gen(name):
        r = subprocess.run([sys.executable, "-m", "edgeinf", "keys", "generate", str(tmp_path / "keys"),
                            "--name", name], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return tmp_path / "keys" / f"{name}.key", tmp_path / "keys" / f"{name}.key_secret"

    keys = {n: gen(n) for n in ("server", "alice", "mallory")}
    allow = tmp_path / "allow"
    allow.mkdir()
    shutil.copy(keys["alice"][0], allow / "alice.key")
    return keys, allow


@pytest.fixture()
def secured(tmp_path, pkg_dir):
    keys, allow = _keys(tmp_path)
    w = testing.worker(pkg_dir, "--curve-secret", str(keys["server"][1]), "--allow", str(allow))
    yield w, keys, allow
    w.kill()


def _infer(c, req, timeout=1.5):
    pkg_hash, cut, (specs, bufs) = req
    t = time.monotonic()
    r = c.infer(pkg_hash, cut, specs, bufs, timeout=timeout)
    return r, time.monotonic() - t


def test_keys_generate_writes_a_private_secret(tmp_path):
    keys, _ = _keys(tmp_path)
    pub, sec = keys["alice"]
    assert pub.read_text().count("public-key") == 1 and "secret-key" in sec.read_text()
    assert stat.S_IMODE(os.stat(sec).st_mode) == 0o600


def test_only_the_allowlisted_key_is_served(secured, request_frames):
    w, keys, _ = secured
    with Client(w.endpoint, server_key=keys["server"][0], client_key=keys["alice"][1]) as alice:
        assert alice.wait_ready(10)
        r, _ = _infer(alice, request_frames)
        assert r.ok, r
    intruders = {
        "unknown key": dict(server_key=keys["server"][0], client_key=keys["mallory"][1]),
        "wrong server key": dict(server_key=keys["mallory"][0], client_key=keys["alice"][1]),
        "no key": {},
    }
    for what, kw in intruders.items():
        with Client(w.endpoint, backoff_s=0.5, **kw) as c:
            end = time.monotonic() + 2.0  # the client's own requests end, and it notices, fast
            outcomes = []
            while time.monotonic() < end:
                r, took = _infer(c, request_frames, timeout=1.0)
                assert not r.ok and took < 2.0, (what, r)
                outcomes.append(r.outcome)
                time.sleep(0.1)
            if what == "unknown key":  # the monitor saw HANDSHAKE_FAILED_AUTH: no endless retries
                assert c.status()[0]["auth_failed"] and outcomes[-1] is Outcome.AUTH_FAILED, outcomes
    with testing.RawClient(w.endpoint) as probe:  # plaintext probe gets nothing at all
        probe.send_msg(protocol.Kind.HELLO, {})
        assert probe.recv(0.5) is None
    with Client(w.endpoint, server_key=keys["server"][0], client_key=keys["alice"][1]) as alice:
        assert alice.wait_ready(10)
        r, _ = _infer(alice, request_frames)
        assert r.ok and r.load is not None


def test_revocation_applies_to_an_open_connection(secured, request_frames):
    w, keys, allow = secured
    with Client(w.endpoint, server_key=keys["server"][0], client_key=keys["alice"][1]) as alice:
        assert alice.wait_ready(10)
        assert _infer(alice, request_frames)[0].ok
        (allow / "alice.key").unlink()  # the connection stays open; the next message must fail
        time.sleep(0.3)
        r, took = _infer(alice, request_frames)
        assert r.outcome is Outcome.AUTH_FAILED and took < 1.0, (r, took)


@pytest.mark.parametrize("case", ["empty allowlist", "missing allowlist", "secret without allowlist",
                                  "public key as secret", "plaintext on the network"])
def test_worker_fails_closed(tmp_path, pkg_dir, case):
    keys, allow = _keys(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {
        "empty allowlist": ["--curve-secret", str(keys["server"][1]), "--allow", str(empty)],
        "missing allowlist": ["--curve-secret", str(keys["server"][1]), "--allow", str(tmp_path / "nope")],
        "secret without allowlist": ["--curve-secret", str(keys["server"][1])],
        "public key as secret": ["--curve-secret", str(keys["server"][0]), "--allow", str(allow)],
        "plaintext on the network": [],
    }[case]
    bind = "tcp://0.0.0.0:*" if case == "plaintext on the network" else "tcp://127.0.0.1:*"
    w = testing.worker(pkg_dir, *args, bind=bind)
    try:
        assert w.endpoint is None, f"{case}: worker started on {w.endpoint}"
        assert w.wait(10) != 0
        err = w.stderr()
        assert "error:" in err and ("CURVE" in err or "secret" in err or "plaintext" in err), err
    finally:
        w.kill()


def test_a_dead_authenticator_ends_the_worker_with_an_error(tmp_path, pkg_dir):
    """Without its ZAP thread no handshake completes: the worker exits (AuthError), so a
    supervisor restarts it, instead of staying up and refusing everyone."""
    sys.path.insert(0, str(Path(__file__).parent))
    from authkill import serve_until_the_authenticator_dies
    from edgeinf.worker import Worker, WorkerConfig

    keys, allow = _keys(tmp_path)
    cfg = WorkerConfig(bind="tcp://127.0.0.1:0", curve_secret=str(keys["server"][1]), allow_dir=str(allow))
    w = Worker([open_package(pkg_dir)], cfg).initialize()
    serve_until_the_authenticator_dies(w, w._security, w.finalize)
