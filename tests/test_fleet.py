"""The fleet simulation: N devices replaying a trace with the real controller, the cloud
stream they make, and what a capacity limit does to it."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeinf.bench import fleet
from edgeinf.controller.costmodel import PlanCost
from edgeinf.controller.policy import Objective
from edgeinf.netem import Trace
from edgeinf.plan import LOCAL, Plan
from edgeinf.scale import policy

OFFLOAD = Plan("offload", codec="raw")
# a device whose own model takes 80 ms next to a server taking 5 ms for 20 kB: offloading pays
COSTS = [PlanCost(LOCAL, 80.0), PlanCost(OFFLOAD, 0.0, 0.0, 20_000, 5.0)]


def _stream(devices, trace=None, seed=0, rate=10.0, duration=5.0):
    trace = trace or Trace.constant(50.0, 1000)
    return fleet.simulate(COSTS, trace, devices, rate, duration, 5.0, Objective("latency", 200.0), 1000.0, seed)


def test_devices_offload_when_it_pays_and_the_stream_adds_up():
    s = _stream(20)
    assert s["requests"] == 20 * 50
    assert s["plans"].get("offload", 0) > 0.9 * s["requests"]       # the controller chose offload
    res = fleet.analyse(s, 5.0, None, 200.0, None, 0.7, 10.0, 20)
    assert res["service_ms"] == pytest.approx(5.0)
    assert 180 <= res["cloud_rps_mean"] <= 200                        # 20 devices x 10/s, nearly all cloud
    assert res["replicas_needed"]["mean"] == policy.replicas_needed(res["cloud_rps_mean"], 5.0, 0.7)
    assert res["capacity"][str(res["replicas_needed"]["peak"])]["misses"] == 0


def test_a_capacity_limit_causes_misses_the_uncapped_cloud_does_not():
    s = _stream(200)  # ~2000 cloud req/s at 5 ms: 10 busy replicas
    res = fleet.analyse(s, 5.0, None, 200.0, [2, 20], 0.7, 10.0, 200)
    assert res["device_misses_uncapped"] == 0
    assert res["capacity"]["2"]["miss_rate"] > 0.5
    assert res["capacity"]["20"]["misses"] == 0
    auto = res["autoscaler"]["replicas"]
    assert auto[0] == 1 and max(auto) > 10                           # the replayed autoscaler scales up
    assert res["devices_per_replica"] == pytest.approx(0.7 / (10 * res["cloud_share"] * 0.005), abs=0.06)


def test_offsets_give_devices_their_own_link_history():
    from edgeinf.evaluation.setup import DEFAULT_TRACE

    trace = Trace.load(DEFAULT_TRACE)
    a = _stream(30, trace, seed=1, duration=4.0)
    b = _stream(30, trace, seed=1, duration=4.0)
    c = _stream(30, trace, seed=2, duration=4.0)
    assert a["distinct_offsets"] > 15
    assert (a["t"] == b["t"]).all()                                  # deterministic per seed
    assert len(a["t"]) != len(c["t"]) or (a["t"] != c["t"]).any()
    with pytest.raises(Exception, match="devices"):
        _stream(0)


def test_autoscale_replay_follows_the_queue_within_bounds_without_flapping():
    sc = policy.Scaling(1, 4, 2.0, downscale_delay_s=3.0)
    steps = policy.autoscale_replay([0] + [1000] * 8 + [0] * 20, 5.0, sc)
    reps = [s["replicas"] for s in steps]
    assert reps[0] == 1 and max(reps) == 4 and reps[-1] == 1         # up under load, down after (damped), bounded
    assert steps[2]["wait_ms"] > 0
    up = reps.index(4)
    assert set(reps[up:9]) == {4}                                    # steady load: no flapping
    assert reps[9:12] == [4, 4, 4]                                   # down only after the delay


@pytest.mark.slow
def test_bench_fleet_cli_on_the_real_model_and_trace():
    out = subprocess.run([sys.executable, "-m", "edgeinf", "bench", "fleet", "--devices", "40", "--duration", "4",
                          "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["devices"] == 40 and res["requests"] == 40 * 40
    assert len(res["cloud_rps"]) == 4 and res["conditions"]["trace"] == "TMobile-LTE-short.up"
    assert res["capacity"] and all(v["misses"] >= 0 for v in res["capacity"].values())


def test_autoscale_replay_settles_where_the_capacity_model_does():
    """Scaling at u/(1-u) ongoing per replica settles near utilisation u: the replicas the
    capacity model asks for (1000 req/s x 5 ms / 0.7 = 7.1 -> 8), not a saturated few."""
    sc = policy.scaling_for(5.0, 200.0, 1, 50, utilisation=0.7, downscale_delay_s=3.0)
    reps = [s["replicas"] for s in policy.autoscale_replay([1000] * 60, 5.0, sc)]
    assert set(reps[-20:]) <= {7, 8, 9}, reps
    assert policy.replicas_needed(1000, 5.0, 0.7) == 8
