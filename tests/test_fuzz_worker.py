"""Structured fuzzing of a live ``edgeinf worker`` process over a real socket.

Hypothesis mutates schema-valid messages field by field (``edgeinf.transport.fuzz``); every
mutated message must get an answer that decodes (or the silence the protocol allows)
before the sentinel request behind it is answered, never ERROR INTERNAL, and the worker
must be alive and serving correctly afterwards. 2,000 examples here; ``edgeinf bench
hardening`` runs 10^5.
"""
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
    with testing.worker(pkg_dir, "--threads", "1") as w:
        bases = [fuzz.infer_base(pkg.hash, {"x": X}), *fuzz.control_bases()]
        fz = fuzz.Fuzzer(w.endpoint, fuzz.unknown_package_sentinel(bases[0]))
        try:
            yield w, pkg, bases, fz
        finally:
            fz.close()


def _cases(bases):
    return st.sampled_from(bases).flatmap(lambda b: st.tuples(st.just(b), fuzz.mutations(b)))


def test_structured_fuzz_2000_messages_worker_survives(target):
    w, pkg, bases, fz = target

    @settings(max_examples=2000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(_cases(bases))
    def one(case):
        base, muts = case
        first = fz.send(fuzz.apply(base, muts))
        assert first is not None, f"no answer to the sentinel after {muts!r}: worker dead or stalled"
        assert w.proc.poll() is None, w.stderr()
        assert fz.report.bad_replies == 0 and "INTERNAL" not in fz.report.codes, (muts, fz.report)

    one()
    fz.drain(0.5)
    rep = fz.report
    print("\nstructured fuzz:", rep.to_dict())
    assert rep.sent >= 2000 and rep.lost_sentinels == 0 and rep.bad_replies == 0
    assert rep.replies.get("ERROR", 0) > rep.sent // 2  # most mutations are refused, each with its ERROR
    assert "INTERNAL" not in rep.codes
    with testing.RawClient(w.endpoint) as c:
        specs, frames = protocol.pack_raw({"x": X})
        c.send_msg(Kind.INFER, {"id": 1, "budget_ms": 20000, "pkg": pkg.hash, "client": "after", "tensors": specs},
                   frames)
        r = c.recv(20)
        assert r.kind == Kind.RESULT
        np.testing.assert_allclose(r.arrays()["y"], pkg.session("full")(x=X)["y"])
        assert c.hello()["stats"]["internal"] == 0


def test_seeded_random_fuzz_is_reproducible_and_shared_with_the_bench(target):
    w, _, bases, _ = target
    a = [fuzz.apply(b, m) for _, (b, m) in zip(range(50), fuzz.random_mutations(bases, seed=3))]
    b = [fuzz.apply(b, m) for _, (b, m) in zip(range(50), fuzz.random_mutations(bases, seed=3))]
    assert a == b
    rep = fuzz.run(w.endpoint, bases, 300, seed=11)
    assert rep.sent == 300 and rep.lost_sentinels == 0 and rep.bad_replies == 0 and "INTERNAL" not in rep.codes
    assert w.proc.poll() is None
