"""edgeinf daemon over KServe v2: a real daemon process, a real worker process, the real
``tritonclient.http`` client, real mediapipe models; /metrics parsed by prometheus-client."""
from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pytest
import tritonclient.http as tc
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

import edgeinf
from edgeinf import photos, zoo
from edgeinf.daemon.config import ModelSpec
from edgeinf.daemon.models import package_dir
from edgeinf.daemon.testing import DaemonProc, wait_for
from edgeinf.transport.testing import worker

# NOTE: a 1 s deadline: the runtime reserves 1.5 x its host-time estimate x the EMULATED pace
# for a local fallback, and one slow host run on a loaded 2-core machine (25 ms instead of 9)
# pushes that past the default 4 x 56 ms deadline: every remote attempt is then skipped
CONFIG = """
[models.hand]
source = "hand_landmark_full"
cuts = "none"
deadline_ms = 1000
[models.lite]
source = "hand_landmark_lite"
cuts = "none"
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A worker serving both packages, and a daemon on an EMULATED Pi 4 (so offload pays)."""
    cfg = tmp_path_factory.mktemp("daemon") / "daemon.toml"
    cfg.write_text(CONFIG)
    dirs = [package_dir(ModelSpec(n, s, cuts="none")) for n, s in (("hand", "hand_landmark_full"),
                                                                     ("lite", "hand_landmark_lite"))]
    with worker(dirs[0], "--package", str(dirs[1]), "--workers", "1", "--threads", "1") as w:
        with DaemonProc("--config", str(cfg), "--worker", w.endpoint, "--device", "raspberry-pi-4") as d:
            yield d, w


@pytest.fixture(scope="module")
def client(setup):
    return tc.InferenceServerClient(setup[0].host, network_timeout=30.0)


def _frame() -> np.ndarray:
    img = photos.image("astronaut")[:224, 100:324].astype(np.float32) / 255.0
    return np.ascontiguousarray(img[None])


def _input(x, binary=True):
    i = tc.InferInput("input_1", list(x.shape), "FP32")
    i.set_data_from_numpy(x, binary_data=binary)
    return i


def test_health_metadata_and_readiness(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("hand") and client.is_model_ready("lite")
    md = client.get_model_metadata("hand")
    assert md["inputs"] == [{"name": "input_1", "datatype": "FP32", "shape": [1, 224, 224, 3]}]
    assert [o["name"] for o in md["outputs"]][:2] == ["Identity", "Identity_1"]
    assert "offload" in md["parameters"]["plans"] and "raspberry" in md["parameters"]["device"].lower()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_the_model_run_in_process(client, binary):
    x = _frame()
    want = edgeinf.load(zoo.path("hand_landmark_full"), threads=1).run({"input_1": x})
    outs = [tc.InferRequestedOutput(n, binary_data=binary) for n in ("Identity", "Identity_1")]
    r = client.infer("hand", [_input(x, binary)], outputs=outs, request_id="r1")
    resp = r.get_response()
    assert resp["id"] == "r1" and resp["model_name"] == "hand"
    lm = r.as_numpy("Identity")
    assert lm.shape == (1, 63) and lm.dtype == np.float32
    # offload codecs (fp16, jpeg) may serve it: landmarks within 3 px of the local model
    assert np.abs(lm - want["Identity"]).max() < 3.0
    p = resp["parameters"]
    assert p["edgeinf_plan"] and p["edgeinf_outcome"] in ("local", "offload", "local_fallback")
    assert p["edgeinf_latency_ms"] > 0 and p["edgeinf_total_ms"] > 0 and "edgeinf_reason" in p
    assert 0 < p["edgeinf_decide_ms"] < p["edgeinf_latency_ms"]


def test_the_controller_offloads_from_an_emulated_pi_and_says_so(client):
    x = _frame()
    kinds = [client.infer("hand", [_input(x)]).get_response()["parameters"] for _ in range(40)]
    offloaded = [p for p in kinds if p["edgeinf_outcome"] == "offload"]
    # EMULATED Pi 4: local full model ~56 ms, offload over loopback ~20 ms: offload wins.
    # NOTE: not "nearly always": on the shared 2-core host a few slow worker replies can make
    # the controller measure the loopback link at a few Mbit/s and stay local for seconds
    assert len(offloaded) >= 5, [(p["edgeinf_plan"], p["edgeinf_reason"]) for p in kinds]
    assert all(p["edgeinf_plan_kind"] == "offload" and p["edgeinf_send_wait_ms"] > 0 for p in offloaded)


def test_json_request_without_content_type_and_nested_data(setup):
    d, _ = setup
    x = _frame()
    body = {"inputs": [{"name": "input_1", "shape": [1, 224, 224, 3], "datatype": "FP32", "data": x.tolist()}],
            "outputs": [{"name": "Identity_1"}]}
    r = httpx.post(f"{d.url}/v2/models/lite/infer", content=json.dumps(body).encode(), timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"]
    assert [o["name"] for o in out] == ["Identity_1"] and out[0]["shape"] == [1, 1] and len(out[0]["data"]) == 1


@pytest.mark.parametrize("case,status,match", [
    ("shape", 400, r"shape \[1, 224, 224\], the model takes \[1, 224, 224, 3\]"),
    ("dtype", 400, "datatype 'FP16', the model takes FP32"),
    ("name", 400, "unknown input 'image'"),
    ("json", 400, "not valid JSON"),
    ("count", 400, "data values for shape"),
    ("header", 400, "Inference-Header-Content-Length"),
    ("trailing", 400, "claimed by no input"),
    ("output", 400, "unknown output 'nope'"),
    ("deadline", 400, "deadline_ms"),
    ("model", 404, "unknown model 'ghost'"),
    ("huge", 413, "over the limit"),
])
def test_bad_requests_get_a_status_and_a_json_error(setup, case, status, match):
    d, _ = setup
    x = np.zeros((1, 224, 224, 3), np.float32)
    inp = {"name": "input_1", "shape": [1, 224, 224, 3], "datatype": "FP32",
           "parameters": {"binary_data_size": x.nbytes}}
    doc, blob, model, headers = {"inputs": [inp]}, x.tobytes(), "hand", {}
    if case == "shape":
        inp["shape"] = [1, 224, 224]
    elif case == "dtype":
        inp["datatype"] = "FP16"
    elif case == "name":
        inp["name"] = "image"
    elif case == "count":
        doc["inputs"] = [{"name": "input_1", "shape": [1, 224, 224, 3], "datatype": "FP32", "data": [1.0, 2.0]}]
        blob = b""
    elif case == "trailing":
        blob += b"extra"
    elif case == "output":
        doc["outputs"] = [{"name": "nope"}]
    elif case == "deadline":
        doc["parameters"] = {"deadline_ms": "soon"}
    elif case == "model":
        model = "ghost"
    head = json.dumps(doc).encode()
    body = head + blob
    headers["Inference-Header-Content-Length"] = str(len(head))
    if case == "json":
        body, headers = b'{"inputs": [', {}
    elif case == "header":
        headers["Inference-Header-Content-Length"] = str(len(body) + 10)
    elif case == "huge":
        body = b"0" * (33 * 2**20)  # over the default 32 MiB limit
    r = httpx.post(f"{d.url}/v2/models/{model}/infer", content=body, headers=headers, timeout=30)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert re.search(match, r.json()["error"]), r.json()
    assert httpx.get(f"{d.url}/v2/health/live", timeout=5).status_code == 200  # still serving


def test_metrics_parse_and_count_requests_plans_and_estimates(setup, client):
    d, _ = setup
    client.infer("lite", [_input(_frame())])
    text = httpx.get(f"{d.url}/metrics", timeout=10).text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    req = [s for s in fams["edgeinf_requests"].samples if s.name == "edgeinf_requests_total"]
    assert any(s.labels["model"] == "lite" and s.value >= 1 for s in req)
    assert any(s.labels["model"] == "hand" and s.labels["plan"].startswith("offload") and s.labels["outcome"] == "offload"
               for s in req), req
    assert any(s.labels["outcome"] == "error" for s in req)  # the bad requests above, counted
    hist = [s for s in fams["edgeinf_request_latency_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in hist) >= 10
    for name in ("edgeinf_link_bandwidth_bits_per_second", "edgeinf_link_rtt_seconds", "edgeinf_link_up",
                 "edgeinf_device_cpu_load_ratio", "edgeinf_device_cpu_percent", "edgeinf_fallbacks",
                 "edgeinf_deadline_misses", "edgeinf_inflight_requests", "edgeinf_worker_queue"):
        assert name in fams, sorted(fams)
    bw = {s.labels["model"]: s.value for s in fams["edgeinf_link_bandwidth_bits_per_second"].samples}
    assert bw["hand"] > 1e6  # loopback measured by the probes: well over a megabit
    assert all(k.startswith("edgeinf_") for k in fams if not k.startswith(("python_", "process_")))


def test_structured_logs_one_json_line_per_request(setup):
    d, _ = setup
    assert wait_for(lambda: any(r.get("event") == "infer" for r in d.logs()))
    rec = next(r for r in d.logs() if r.get("event") == "infer")
    assert {"ts", "level", "model", "plan", "outcome", "latency_ms", "status", "client"} <= set(rec)


def test_worker_loss_falls_back_locally_and_is_counted(setup, client):
    d, w = setup  # NOTE: last test of the module: it stops the worker
    x = _frame()
    # on offload when the worker dies (a loaded host can make local win for a while)
    assert any(client.infer("hand", [_input(x)]).get_response()["parameters"]["edgeinf_outcome"] == "offload"
               for _ in range(150))
    w.kill()
    outcomes = [client.infer("hand", [_input(x)]).get_response()["parameters"]["edgeinf_outcome"] for _ in range(6)]
    assert "local_fallback" in outcomes and "offload" not in outcomes, outcomes
    fams = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{d.url}/metrics", timeout=10).text)}
    fb = {s.labels["model"]: s.value for s in fams["edgeinf_fallbacks"].samples if s.name.endswith("_total")}
    assert fb.get("hand", 0) >= 1, fb


def test_gzip_requests_from_tritonclient_and_a_bounded_decompression(setup, client):
    x = _frame()
    r = client.infer("lite", [_input(x)], request_compression_algorithm="gzip")
    assert r.as_numpy("Identity").shape == (1, 63)
    import gzip

    bomb = gzip.compress(b"\0" * (40 * 2**20))  # 40 MiB of zeros in ~40 kB: over the 32 MiB limit
    resp = httpx.post(f"{setup[0].url}/v2/models/lite/infer", content=bomb, headers={"Content-Encoding": "gzip"},
                      timeout=30)
    assert resp.status_code == 413 and "decompressed" in resp.json()["error"]


def test_unknown_routes_and_methods_answer_json(setup):
    d, _ = setup
    r = httpx.get(f"{d.url}/v3/nothing", timeout=5)
    assert r.status_code == 404 and "/v3/nothing" in r.json()["error"]
    r = httpx.get(f"{d.url}/v2/models/lite/infer", timeout=5)
    assert r.status_code == 405 and "error" in r.json()
