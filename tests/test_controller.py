"""Controller offline: estimators and policies fed recorded observations, plans out.

The "world" is the exact replay (edgeinf.controller.replay) over synthetic mahimahi-format
traces (step changes, outages) with a fixed cost table shaped like a Pi-class device.
"""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from edgeinf.controller import Controller, Objective, PlanCost, State, decide, predict_all, undominated
from edgeinf.evaluation import replay as R
from edgeinf.controller.costmodel import Estimates, Power
from edgeinf.controller.estimators import DeviceEstimator, LinkEstimate, LinkEstimator, ServerEstimator
from edgeinf.controller.policy import Observation, rank, score
from edgeinf.netem import Link, Trace
from edgeinf.plan import Plan

LOCAL = Plan("local")
OFF = Plan("offload", codec="jpeg90")
SPLIT = Plan("split", cut="c1", codec="int8")
COSTS = [PlanCost(LOCAL, 80.0, accuracy=1.0),
         PlanCost(Plan("local", variant="lite"), 25.0, accuracy=0.5),
         PlanCost(OFF, 0.0, 3.0, 17000, 9.0, 1.0, 600),
         PlanCost(SPLIT, 40.0, 0.2, 10000, 1.0, 1.0, 600)]
OBJ = Objective("latency", deadline_ms=200.0, accuracy_floor=0.9)


# -- estimators ------------------------------------------------------------------------------
def test_link_estimator_tracks_a_10x_step_in_two_samples():
    est = LinkEstimator()
    est.observe(0.0, 500, 20.0)  # a small transfer: the RTT
    for i in range(10):  # 16 kB in 20 ms RTT + 10 ms => 12.8 Mbit/s
        est.observe(i * 0.1, 16000, 30.0)
    assert 8 < est.estimate(1.0).mbps < 16
    for i in range(2):  # now 10x slower
        est.observe(1.1 + i * 0.1, 16000, 20.0 + 100.0)
    assert est.estimate(1.3).mbps < 2.6  # within 2x of 1.28 after two samples


def test_a_sample_after_a_long_gap_counts_more_than_one_after_a_short_one():
    """Probes while local come once a second: each must move the estimate further than a
    request's sample 0.1 s after the last (the old estimate is older, so worth less)."""
    def after(gap_s):
        est = LinkEstimator()
        est.observe(0.0, 500, 4.0)  # the RTT
        for i in range(20):  # 24 kB in 4 ms RTT + 96 ms: 2 Mbit/s, settled
            est.observe(0.1 * i, 24000, 100.0)
        est.observe(1.9 + gap_s, 24000, 13.6)  # now 20 Mbit/s
        return est.estimate(1.9 + gap_s).mbps
    quick, slow = after(0.1), after(1.0)
    assert quick < slow, (quick, slow)
    assert slow > 10.0, slow  # most of the way from 2 to 20 after one probe


def test_link_confidence_decays_and_stale_link_wants_a_probe():
    est = LinkEstimator(tau_s=2.0)
    est.observe(0.0, 16000, 30.0)
    assert est.estimate(0.0).confidence == pytest.approx(1.0)
    assert est.estimate(4.0).confidence < 0.2
    assert est.estimate(4.0).log_bw_std > est.estimate(0.0).log_bw_std
    assert not est.needs_probe(0.1, None) and est.needs_probe(4.0, None)
    assert not est.needs_probe(4.0, last_probe_s=3.9, interval_s=0.5)


def test_link_down_on_failure_and_up_on_next_success():
    est = LinkEstimator()
    est.observe(0.0, 16000, 30.0)
    est.fail(1.0)  # peer gone
    assert not est.estimate(1.0).up and math.isinf(est.estimate(1.0).transfer_ms(1000))
    est.observe(2.0, 16000, 30.0)
    assert est.estimate(2.0).up


def test_one_timeout_is_a_slow_sample_two_are_down():
    est = LinkEstimator()
    est.observe(0.0, 16000, 30.0)
    before = est.estimate(0.0).mbps
    est.fail(0.1, 16000, waited_ms=300.0)
    assert est.estimate(0.1).up and est.estimate(0.1).mbps < before
    est.fail(0.2, 16000, waited_ms=300.0)
    assert not est.estimate(0.2).up


def test_device_and_server_estimators():
    dev = DeviceEstimator(tau_s=5.0)
    for i in range(5):
        dev.observe(i, 160.0, 80.0)  # twice slower than profiled (thermal throttling, say)
    assert dev.slowdown(4.0) == pytest.approx(2.0, rel=0.05)
    assert dev.slowdown(100.0) == pytest.approx(1.0, rel=0.05)  # stale: back to the psutil prior
    dev.observe_system(cpu_percent=50.0, freq_mhz=750, max_freq_mhz=1500, cores=1)
    assert dev.prior == pytest.approx(4.0)
    srv = ServerEstimator()
    srv.observe(12.0, 18.0, 9.0)
    assert srv.queue == 12.0 and srv.factor == 2.0


# -- policies ----------------------------------------------------------------------------------
def _est(mbps, up=True, std=0.1, conf=1.0):
    from edgeinf.controller import LinkEstimate

    return Estimates(LinkEstimate(up, math.log(mbps * 1e6), std, 20.0, conf, 0.0))


def test_small_transfers_measure_rtt_and_leave_the_bandwidth_aging():
    est = LinkEstimator()
    for i in range(5):
        est.observe(i * 0.1, 16000, 30.0)  # bandwidth samples
    fresh = est.estimate(0.5)
    for i in range(30):  # 3 s of 500-byte transfers
        est.observe(0.5 + i * 0.1, 500, 21.0)
    e = est.estimate(3.5)
    assert e.confidence > 0.9  # the link is known to be up and answering...
    assert e.bw_confidence < 0.2 < fresh.bw_confidence  # ...its bandwidth is not known afresh
    assert e.log_bw_std > 2 * fresh.log_bw_std  # and grows uncertain from the last sample


def test_rtt_is_the_recent_minimum_less_serialization_not_inflated_by_queueing():
    est = LinkEstimator()
    for i in range(4):  # 1 Mbit/s: 16 kB in 128 ms + a 10 ms RTT
        est.observe(i * 0.2, 16000, 138.0)
    assert 0.8 < est.estimate(1.0).mbps < 1.25
    est.observe(1.0, 1200, 19.6)  # 1.2 kB: 9.6 ms of it is serialization at 1 Mbit/s
    assert est.estimate(1.0).rtt_ms == pytest.approx(10.0, abs=1.5)
    for i in range(10):  # small transfers that waited behind a probe still crossing: 60-150 ms
        est.observe(1.1 + i * 0.1, 500, 60.0 + 10 * i)
    assert est.estimate(2.0).rtt_ms == pytest.approx(10.0, abs=1.5)  # (a mean read 40-100 ms)
    est.observe(15.0, 500, 34.0)  # past the 10 s window the RTT may grow (a route change)
    assert est.estimate(15.0).rtt_ms > 25.0


def test_remote_budget_keeps_the_fallback_reserve_unless_local_would_miss_anyway():
    from edgeinf.plan import fallback_reserve_ms, remote_budget_ms

    assert remote_budget_ms(200.0, 50.0) == 200.0 - fallback_reserve_ms(50.0)  # 120 ms
    assert remote_budget_ms(60.0, 50.0) < 1.0  # local still meets it: no time for the remote
    assert remote_budget_ms(45.0, 50.0) == 45.0  # local alone would miss: the remote gets it all


def test_a_remote_plan_of_small_transfers_probes_for_a_faster_link():
    from dataclasses import replace
    from edgeinf.controller import LinkEstimate

    narrow = PlanCost(Plan("split", cut="n", codec="int4"), 5.0, 0.1, 500, 10.0, 0.88, 100)
    wide = PlanCost(Plan("split", cut="w", codec="int4"), 5.0, 0.1, 4000, 10.0, 0.99, 100)
    costs = (PlanCost(LOCAL, 80.0, accuracy=1.0), narrow, wide)
    obj = Objective("accuracy", deadline_ms=60.0)  # local cannot meet it
    # 1 Mbit/s last measured long ago, RTT fresh (the narrow plan's transfers)
    link = LinkEstimate(True, math.log(1e6), 1.0, 20.0, 1.0, 0.0, 0, 0.1)
    d, s = decide(Observation(10.0, Estimates(link), costs, obj), State(plan=narrow.plan))
    assert d.plan == narrow.plan and d.probe, d.reason  # wide would win if the link were faster
    d, s = decide(Observation(11.0, Estimates(link), costs, obj), s)
    assert not d.probe  # at most one such probe per 2 s: it shares the uplink
    d, s = decide(Observation(12.1, Estimates(link), costs, obj), s)
    assert d.probe
    # freshly measured: no probe
    d, _ = decide(Observation(20.0, Estimates(replace(link, bw_confidence=1.0, log_bw_std=0.05)), costs, obj),
                  State(plan=narrow.plan))
    assert not d.probe


def test_decide_is_pure_and_respects_objectives():
    obs = Observation(1.0, _est(20.0), tuple(COSTS), OBJ)
    a, sa = decide(obs, State())
    b, sb = decide(obs, State())
    assert a == b and sa == sb and a.plan == OFF  # fast link: offload beats 80 ms local
    slow = Observation(1.0, _est(0.5), tuple(COSTS), OBJ)
    assert decide(slow, State())[0].plan == LOCAL
    # the 0.5-accuracy lite variant only wins when the floor allows it
    loose = Observation(1.0, _est(0.5), tuple(COSTS), Objective("latency", 200.0, 0.4))
    assert decide(loose, State())[0].plan == Plan("local", variant="lite")
    # max accuracy under a deadline local cannot meet: the remote plan that can
    acc = Observation(1.0, _est(20.0), tuple(COSTS), Objective("accuracy", 70.0))
    assert decide(acc, State())[0].plan.remote
    energy = Observation(1.0, _est(20.0), tuple(COSTS), Objective("energy", 200.0))
    assert decide(energy, State())[0].plan == OFF  # radio for 10 ms beats CPU for 80


def test_link_down_goes_local_at_once_and_probes():
    s = State(plan=OFF)
    d, s = decide(Observation(1.0, _est(20.0, up=False), tuple(COSTS), OBJ), s)
    assert d.plan == LOCAL and d.probe and "link down" in d.reason
    d, s = decide(Observation(1.1, _est(20.0, up=False), tuple(COSTS), OBJ), s)
    assert not d.probe  # rate-limited: one probe per interval


def _settle(trace, step_at_ms, n=120, start_ms=0.0):
    link = Link(trace, delay_ms=10.0)
    arrivals = [start_ms + i * 100.0 for i in range(n)]
    ctl = Controller(COSTS, OBJ)
    choose, feedback = R.adaptive(ctl)
    served = R.run(link, COSTS, arrivals, choose, fallback=LOCAL, feedback=feedback)
    oracle = R.run(link, COSTS, arrivals, R.oracle([c.plan for c in COSTS if c.accuracy >= 0.9]), fallback=LOCAL)
    after = [i for i, a in enumerate(arrivals) if a >= step_at_ms]
    target = oracle[after[-1]].plan.kind
    last_wrong = max((i for i in after if served[i].plan.kind != target and "explore" not in served[i].reason),
                     default=after[0] - 1)
    return last_wrong - after[0] + 1, served, ctl


@pytest.mark.parametrize("steps", [[(6, 20.0), (8, 2.0)], [(6, 2.0), (8, 20.0)]], ids=["10x-down", "10x-up"])
def test_plan_settles_within_5_requests_after_a_10x_step(steps):
    n_to_settle, served, _ = _settle(Trace.steps(steps), 6000.0, n=140)
    assert n_to_settle <= 5, [str(s.plan) for s in served[55:75]]


def test_outage_no_miss_that_local_alone_would_meet():
    link = Link(Trace.constant(20.0), 10.0, outages=[(3000.0, 13000.0)])  # 10 s cut
    arrivals = [i * 100.0 for i in range(200)]
    ctl = Controller(COSTS, OBJ)
    choose, feedback = R.adaptive(ctl)
    served = R.run(link, COSTS, arrivals, choose, fallback=LOCAL, feedback=feedback)
    local = R.run(link, COSTS, arrivals, R.static(LOCAL), fallback=LOCAL)
    missed = [s.i for s, lo in zip(served, local) if s.latency_ms > OBJ.deadline_ms >= lo.latency_ms]
    assert missed == []
    assert any(s.plan.remote for s in served[170:])  # offload again after recovery
    assert all(not s.plan.remote or "explore" in s.reason for s in served[40:125])


def test_noise_does_not_flap_plans():
    # capacity alternating +-30% every 300 ms around the local/offload break-even point
    segs = [(0.3, 3.2 if i % 2 else 2.0) for i in range(200)]
    _, served, ctl = _settle(Trace.steps(segs), 0.0, n=600)
    switches = sum(1 for a, b in zip(served, served[1:]) if a.plan != b.plan and "explore" not in b.reason + a.reason)
    assert switches <= 60 / 10  # at most one switch per 10 s from noise


def test_local_only_candidates_never_probe():
    local = [c for c in COSTS if not c.plan.remote]
    ctl = Controller(local, OBJ)
    d = ctl.decide(0.0)
    assert d.plan == LOCAL and not d.probe and "local only" in d.reason


# -- pricing every plan at once, and the plans never priced ----------------------------------
_h_ms = hs.floats(0.0, 500.0)
_h_cost = hs.builds(lambda kind, i, d, e, up, s, a, down: PlanCost(
    Plan("local", variant=f"v{i}") if kind == "local" else Plan(kind, cut=f"c{i}" if kind == "split" else None,
                                                                codec=f"k{i}"),
    d, e if kind != "local" else 0.0, up if kind != "local" else 0, s, a, down if kind != "local" else 0),
    hs.sampled_from(["local", "split", "split", "offload"]), hs.integers(0, 10**6), _h_ms, hs.floats(0.0, 20.0),
    hs.integers(0, 2 * 10**6), _h_ms, hs.floats(0.0, 1.0), hs.integers(0, 5000))
_h_link = hs.builds(LinkEstimate, hs.booleans(), hs.floats(math.log(1e4), math.log(1e9)), hs.floats(0.0, 6.0),
                    hs.floats(0.1, 300.0), hs.floats(0.0, 1.0), hs.floats(0.0, 100.0))
_h_est = hs.builds(Estimates, _h_link, hs.floats(0.2, 8.0), hs.floats(0.0, 200.0), hs.floats(0.5, 4.0))


def _reference(c: PlanCost, est: Estimates, power: Power, z: float):
    """The cost model as docs/controller.md writes it, through ``LinkEstimate.transfer_ms``."""
    dev = (c.device_ms + c.encode_ms) * est.slowdown
    if not c.plan.remote:
        return (dev, dev, dev * power.active_w)
    link = est.link.transfer_ms(c.up_bytes + c.down_bytes)
    if math.isinf(link):
        return (math.inf, math.inf, math.inf)
    server = est.server_queue_ms + c.server_ms * est.server_factor
    lat = dev + link + server
    send = max(link - est.link.rtt_ms, 0.0)
    energy = dev * power.active_w + send * (power.idle_w + power.radio_w) + (lat - dev - send) * power.idle_w
    return (lat, dev + est.link.transfer_ms(c.up_bytes + c.down_bytes, z=z) + server, energy)


@settings(max_examples=300, deadline=None)
@given(hs.lists(_h_cost, min_size=1, max_size=12), _h_est, hs.sampled_from([0.0, 1.28, -1.0]))
def test_predict_all_gives_the_very_floats_of_the_cost_model_per_plan(costs, est, z):
    power = Power()
    preds = predict_all(costs, est, power, z)
    assert [p.plan for p in preds] == [c.plan for c in costs]
    for c, p in zip(costs, preds):
        assert (p.latency_ms, p.pessimistic_ms, p.energy_mj) == _reference(c, est, power, z), c
        assert p.accuracy == c.accuracy


@settings(max_examples=300, deadline=None)
@given(hs.lists(_h_cost, min_size=1, max_size=12), _h_est,
       hs.sampled_from([Objective("latency", accuracy_floor=0.5), Objective("accuracy", deadline_ms=300.0),
                        Objective("energy", deadline_ms=300.0, accuracy_floor=0.3), Objective("latency")]))
def test_a_plan_left_unpriced_could_never_have_ranked_first(costs, est, obj):
    kept = undominated(costs)
    assert all(c in kept for c in costs if not c.plan.remote)
    full, pruned = rank(predict_all(costs, est), obj), rank(predict_all(kept, est), obj)
    assert score(pruned, obj) == score(full, obj), (full, pruned)


def test_dominated_codecs_are_not_priced_but_stay_observable():
    raw = PlanCost(Plan("split", cut="c1", codec="raw"), 40.0, 0.0, 40000, 1.0, 1.0)
    int8 = PlanCost(Plan("split", cut="c1", codec="int8"), 40.0, 0.2, 10000, 1.2, 1.0)
    int8pc = PlanCost(Plan("split", cut="c1", codec="int8-pc"), 40.0, 0.4, 10400, 1.3, 1.0)  # worse on all
    twin = PlanCost(Plan("split", cut="c1", codec="int8-copy"), 40.0, 0.2, 10000, 1.2, 1.0)  # a tie: first kept
    ctl = Controller([COSTS[0], raw, int8, int8pc, twin], OBJ)
    assert [c.plan for c in ctl.candidates] == [LOCAL, raw.plan, int8.plan]
    assert set(ctl.dominated) == {int8pc.plan, twin.plan} and int8pc.plan in ctl.costs
    assert all(p.plan in {LOCAL, raw.plan, int8.plan} for p in ctl.decide(0.0).predictions)


def test_under_the_latency_objective_too_a_narrow_remote_plan_probes_for_a_faster_link():
    """The what-if must price the wider plan at the optimistic bandwidth: compared at the mean
    (where it loses), a latency-objective runtime on a small-transfer plan never probed."""
    from dataclasses import replace

    from edgeinf.controller import LinkEstimate

    narrow = PlanCost(Plan("split", cut="n", codec="int4"), 30.0, 0.1, 500, 10.0, 1.0, 0)
    wide = PlanCost(Plan("split", cut="w", codec="int4"), 5.0, 0.1, 4000, 10.0, 1.0, 0)
    costs = (PlanCost(LOCAL, 80.0, accuracy=1.0), narrow, wide)
    obj = Objective("latency")
    # 1 Mbit/s measured long ago (std 1: the optimistic bound is 2.7 Mbit/s), RTT fresh
    link = LinkEstimate(True, math.log(1e6), 1.0, 20.0, 1.0, 0.0, 0, 0.1)
    d, _ = decide(Observation(10.0, Estimates(link), costs, obj), State(plan=narrow.plan))
    by = {p.plan: p for p in d.predictions}
    assert d.plan == narrow.plan and by[wide.plan].latency_ms > by[narrow.plan].latency_ms  # wide loses at the mean
    assert d.probe, d.reason  # ... but would win at 2.7 Mbit/s: 47 ms against 67
    d, _ = decide(Observation(10.0, Estimates(replace(link, log_bw=math.log(2e5))), costs, obj),
                  State(plan=narrow.plan))
    assert d.plan == narrow.plan and not d.probe  # 0.2 Mbit/s: wide loses even at the bound (local wins: no probe for it)
