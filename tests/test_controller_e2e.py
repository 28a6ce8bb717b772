"""End to end: the adaptive controller live through the link emulator and a real worker.

A real ``edgeinf worker`` process, real ZeroMQ, every byte through the trace-driven proxy
(the shipped T-Mobile trace), photographs in, compute paced to an emulated Raspberry Pi 4;
a 2 s link cut in the middle. About 25 s.
"""
import pytest

import skimage  # noqa: F401,E402  real photographs come from scikit-image (test extra)


@pytest.mark.slow
def test_adaptive_live_through_emulator_and_worker():
    from edgeinf.evaluation.evaluate import EvalConfig, evaluate

    r = evaluate(EvalConfig(duration_s=8.0, rate=10.0, outages=[(4.0, 2.0)]), say=lambda s: None)
    pol = r["policies"]
    assert set(pol) >= {"adaptive", "local", "offload", "best_static", "oracle"}
    assert pol["adaptive"]["mode"] == "live" and pol["oracle"]["mode"].startswith("replayed")
    tl = r["timeline"]
    assert len(tl) == 80 and all(x["outcome"] in ("local", "offload", "local_fallback") for x in tl)
    assert any(x["outcome"] == "offload" for x in tl[:40])  # a 13 Mbit/s LTE uplink: offload pays
    in_cut = [x for x in tl if 4.3 <= x["t_s"] < 6.0]
    assert in_cut and all(x["outcome"] != "offload" for x in in_cut)  # nothing crosses a cut link
    assert "EMULATED" in r["device"]
