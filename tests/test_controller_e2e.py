"""End to end: the adaptive controller live through the link emulator and a real worker.

A real ``edgeinf worker`` process, real ZeroMQ, every byte through the trace-driven proxy
(the shipped T-Mobile trace, 10 ms RTT), photographs in, compute paced to an emulated Raspberry Pi 4;
a 2 s link cut in the middle. About 25 s.
"""
import pytest

import skimage  # noqa: F401,E402  real photographs come from scikit-image (test extra)


@pytest.mark.slow
def test_adaptive_live_through_emulator_and_worker():
    from edgeinf.evaluation.evaluate import EvalConfig, evaluate

    # NOTE: a 10 ms round trip (a nearby edge server): offload then beats local by ~40% on
    # this uplink, not by the 10-20% of a 20 ms one, which the controller's hysteresis held
    # back for the whole first half in one CI run on a loaded host
    r = evaluate(EvalConfig(duration_s=8.0, rate=10.0, delay_ms=5.0, outages=[(4.0, 2.0)]), say=lambda s: None)
    pol = r["policies"]
    assert set(pol) >= {"adaptive", "local", "offload", "best_static", "oracle"}
    assert pol["adaptive"]["mode"] == "live" and pol["oracle"]["mode"].startswith("replayed")
    tl = r["timeline"]
    assert len(tl) == 80 and all(x["outcome"] in ("local", "offload", "local_fallback") for x in tl)
    why = [(round(x["t_s"], 1), x["outcome"], round(x["predicted_ms"] or 0.0, 1), x["reason"],
            {k: x["estimates"].get(k) for k in ("mbps", "rtt_ms", "slowdown", "server_factor")})
           for x in tl[:40:4]]
    assert any(x["outcome"] == "offload" for x in tl[:40]), why  # a 13 Mbit/s LTE uplink: offload pays
    in_cut = [x for x in tl if 4.3 <= x["t_s"] < 6.0]
    assert in_cut and all(x["outcome"] != "offload" for x in in_cut)  # nothing crosses a cut link
    assert "EMULATED" in r["device"]


@pytest.mark.slow
def test_the_demo_on_the_bottleneck_package_uses_its_widths():
    """`edgeinf demo --model bottleneck --accuracy-floor 0.85`: the widths are among the
    controller's live choices (their fidelity, ~0.88, is under the default floor of 0.9)."""
    from edgeinf.evaluation.evaluate import EvalConfig, evaluate

    r = evaluate(EvalConfig(model="bottleneck", duration_s=6.0, rate=10.0, accuracy_floor=0.85), say=lambda s: None)
    plans = [x["plan"] for x in r["timeline"]]
    assert sum("bn-w" in p for p in plans) >= 10, plans
    assert all(x["outcome"] in ("local", "offload", "local_fallback") for x in r["timeline"])
