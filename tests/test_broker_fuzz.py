"""Structured fuzzing of a live ``edgeinf broker`` process (a real worker behind it).

The strategies are the worker's (``edgeinf.transport.fuzz``): schema-valid messages mutated
field by field, each followed by a sentinel INFER for an unknown package that the worker
answers through the broker. Every mutated message gets a decodable answer or silence
before the sentinel's, never ERROR INTERNAL; the broker (and the worker behind it) stays
alive and serves a real request exactly afterwards. 2,000 examples here; ``edgeinf bench
hardening`` runs 10^5.
"""
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeinf.package import open_package
from edgeinf.transport import fuzz, protocol, testing
from edgeinf.transport.protocol import Kind

X = np.linspace(0, 1, 16, dtype=np.float32)[None]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    pkg_dir = testing.make_slow_package(tmp_path_factory.mktemp("fast") / "fast", size=16, depth=1)
    pkg = open_package(pkg_dir)
    with testing.broker("--heartbeat", "0.2") as b, \
            testing.Proc(["worker", "--connect", b.backend, "--package", str(pkg_dir), "--no-verify",
                          "--threads", "1"]) as w:
        assert b.endpoint and w.endpoint, (b.stderr(), w.stderr())
        end = time.monotonic() + 15
        with testing.RawClient(b.endpoint) as c:
            while c.hello()["load"]["nodes"] < 1 and time.monotonic() < end:
                time.sleep(0.1)
        bases = [fuzz.infer_base(pkg.hash, {"x": X}), *fuzz.control_bases()]
        fz = fuzz.Fuzzer(b.endpoint, fuzz.unknown_package_sentinel(bases[0]))
        try:
            yield b, w, pkg, bases, fz
        finally:
            fz.close()


def test_structured_fuzz_2000_messages_broker_survives(target):
    b, w, pkg, bases, fz = target
    cases = st.sampled_from(bases).flatmap(lambda base: st.tuples(st.just(base), fuzz.mutations(base)))

    @settings(max_examples=2000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(cases)
    def one(case):
        base, muts = case
        first = fz.send(fuzz.apply(base, muts))
        assert first is not None, f"no answer to the sentinel after {muts!r}: broker dead or stalled"
        assert b.proc.poll() is None, b.stderr()
        assert fz.report.bad_replies == 0 and "INTERNAL" not in fz.report.codes, (muts, fz.report)

    one()
    fz.drain(0.5)
    rep = fz.report
    print("\nbroker structured fuzz:", rep.to_dict())
    assert rep.sent >= 2000 and rep.lost_sentinels == 0 and rep.bad_replies == 0
    assert rep.replies.get("ERROR", 0) > rep.sent // 2
    assert b.proc.poll() is None and w.proc.poll() is None
    with testing.RawClient(b.endpoint) as c:
        specs, frames = protocol.pack_raw({"x": X})
        c.send_msg(Kind.INFER, {"id": 1, "budget_ms": 20000, "pkg": pkg.hash, "client": "after", "tensors": specs},
                   frames)
        r = c.recv(20)
        while r is not None and r.kind != Kind.RESULT and r.id != 1:
            r = c.recv(20)
        assert r is not None and r.kind == Kind.RESULT, r
        np.testing.assert_allclose(r.arrays()["y"], pkg.session("full")(x=X)["y"])
        stats = c.hello()["stats"]
    assert stats["internal_errors"] == 0, stats
