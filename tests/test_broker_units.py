"""Pure parts of the broker and security: ledger, load cleaning, loopback parsing, allowlist."""
import os
import shutil

import pytest

from edgeinf.errors import ConfigError
from edgeinf.transport._ledger import Ledger, Request, Worker, clean_load
from edgeinf.transport._util import check_plaintext, is_loopback
from edgeinf.transport.security import Allowlist, generate_keys, read_public_key


def _req(owner=b"a", rid=1, deadline=10.0):
    return Request(client=owner, rid=rid, owner=owner, deadline=deadline, body=[])


def test_ledger_limits_each_owner_and_the_number_of_owners():
    led = Ledger(per_client=2, max_clients=2)
    for rid in range(2):
        assert led.refuse(b"a") is None
        led.add((b"a", rid), _req(b"a", rid))
    assert led.refuse(b"a") == "client limit"
    led.add((b"b", 0), _req(b"b"))
    assert led.refuse(b"c") == "too many clients" and led.refuse(b"b") is None
    led.pop((b"b", 0))
    assert led.refuse(b"c") is None and led.owners() == 1  # an idle identity leaves no trace
    assert led.pop((b"b", 0)) is None  # popping twice is harmless (a duplicate answer)
    assert led.expired(5.0) == [] and sorted(led.expired(11.0)) == [(b"a", 0), (b"a", 1)]
    with pytest.raises(ValueError):
        Ledger(per_client=0)


@pytest.mark.parametrize("load, expected", [
    ({"capacity": 10, "queue": 2, "busy": 1, "workers": 2}, {"capacity": 10, "queue": 2, "busy": 1, "workers": 2}),
    ({"capacity": "lots", "queue": [1], "busy": None, "workers": {}}, {}),
    ({"capacity": -5, "busy": 1e11, "queue": float("nan"), "workers": float("inf")}, {}),
    ({"capacity": True, "queue": 2.9}, {"queue": 2}),
    ("heavy", {}), ([1, 2], {}), (None, {}),
])
def test_clean_load_keeps_only_sane_numbers(load, expected):
    assert clean_load(load) == expected


def test_worker_capacity_is_at_least_one():
    w = Worker(b"w", 0.0)
    w.set_load(clean_load({"capacity": 0}))
    assert w.capacity == 1 and w.room() == 1
    w.set_load({})  # a report without numbers keeps the last good one
    assert w.capacity == 1


@pytest.mark.parametrize("endpoint, loop", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.0.0.1:*", True), ("tcp://127.3.4.5:1", True),
    ("tcp://[::1]:5555", True), ("tcp://localhost:5555", True), ("tcp://[::ffff:127.0.0.1]:5", True),
    ("ipc:///tmp/edgeinf", True), ("inproc://x", True),
    ("tcp://127.evil.com:5555", False), ("tcp://127.0.0.1.nip.io:5", False), ("tcp://0.0.0.0:5555", False),
    ("tcp://*:5555", False), ("tcp://eth0:5555", False), ("tcp://10.0.0.2:5555", False),
    ("tcp://127.0.0.1;10.0.0.2:5555", False), ("tcp://[::1:5", False), ("ws://127.0.0.1:5", False),
    ("tcp://localhost.evil.com:5", False),
])
def test_is_loopback_parses_addresses(endpoint, loop):
    assert is_loopback(endpoint) is loop


def test_check_plaintext_refuses_a_look_alike_host():
    with pytest.raises(ConfigError, match="not loopback"):
        check_plaintext("tcp://127.evil.com:5555", curve=False, allow_plaintext=False)
    check_plaintext("tcp://127.evil.com:5555", curve=True, allow_plaintext=False)


def test_allowlist_skips_bad_files_and_keeps_the_previous_key(tmp_path):
    keys = {n: generate_keys(tmp_path / "keys", n)[0] for n in ("alice", "bob")}
    allow = tmp_path / "allow"
    allow.mkdir()
    shutil.copy(keys["alice"], allow / "alice.key")
    al = Allowlist(allow, recheck_s=0.0)
    alice, bob = read_public_key(keys["alice"]), read_public_key(keys["bob"])
    assert al.allowed(alice) and not al.allowed(bob)
    (allow / "junk.key").write_bytes(os.urandom(500))
    (allow / "alice.key").write_text(keys["alice"].read_text()[:80])  # half-rewritten
    (allow / "bob.key").write_text(keys["bob"].read_text().replace("public-key", "public-kee"))
    assert al.allowed(alice) and not al.allowed(bob) and al.skipped == 3
    shutil.copy(keys["alice"], allow / "alice.key")
    shutil.copy(keys["bob"], allow / "bob.key")
    (allow / "junk.key").unlink()
    assert al.allowed(alice) and al.allowed(bob)
    (allow / "alice.key").unlink()
    assert not al.allowed(alice) and al.allowed(bob)  # removal is revocation
    assert al.callback("*", b"x" * 40) is False  # never raises in the ZAP thread
    shutil.rmtree(allow)
    assert not al.allowed(bob)  # the directory vanished: nobody


def test_allowlist_refuses_to_start_without_a_valid_key(tmp_path):
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(ConfigError, match="no valid client keys"):
        Allowlist(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        Allowlist(tmp_path / "missing")
