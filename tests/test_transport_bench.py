"""``edgeinf bench transport`` runs its three modes end to end (real sockets, real threads)."""
import math

from edgeinf.bench import transport as bench


def test_bench_transport_reports_format_and_framing_apart():
    r = bench.measure(seconds=0.05)
    s = r["rtt_small"]
    for key in ("bare_us", "ours_us", "client_us", "cpu_bare_us", "cpu_ours_us"):
        assert s[key] > 0, key
    # the two parts of the added time add up to it (each rounded to 0.1 us)
    assert math.isclose(s["format_added_us"] + s["framing_added_us"], s["added_us"], abs_tol=0.25)
    for k, n in bench.SIZES.items():
        v = r[k]
        assert v["bytes"] == n and v["ratio"] > 0 and v["frames_ratio"] > 0 and v["cpu_ratio"] > 0
        assert math.isclose(v["gbps"], n * 8 / (v["ours_ms"] / 1e3) / 1e9, rel_tol=0.02)
    assert r["host"]["logical_cores"] >= 1 and r["host"]["pyzmq"] and r["host"]["framing"] == "native"
