"""Edge and cloud language models over real ZeroMQ between real processes.

The worker is an ``edgeinf worker --llm`` process serving SmolLM2 Q4_1; the edge runs its
Q3_K_M requantization in this process. Failures are real: ``kill -9`` of the worker, and a
link cut by the netem proxy in the middle of an answer.
"""
import signal
import time

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgeinf
from edgeinf.llm import Generator, calibrate, models
from edgeinf.netem.proxy import LinkProxy
from edgeinf.transport import fuzz, protocol, testing
from edgeinf.transport.client import Client, Outcome
from edgeinf.transport.protocol import ErrorCode, Kind

ASK = [{"role": "user", "content": "Write one sentence about the sea."}]
LONG = [{"role": "user", "content": "Write a long story about a robot who learns to paint. Use many sentences."}]


@pytest.fixture(scope="module")
def worker():
    with testing.llm_worker() as w:
        assert w.endpoint, w.stderr()
        yield w


@pytest.fixture(scope="module")
def edge():
    lm = edgeinf.load(models.smollm2_edge(), threads=1)
    yield lm
    lm.close()


@pytest.fixture(scope="module")
def cloud_ref():
    lm = edgeinf.load(models.smollm2(), threads=1)
    yield lm
    lm.close()


def test_every_mode_answers_and_speculate_is_the_cloud_answer(worker, edge, cloud_ref):
    out = {}
    for mode in ("local", "cloud", "escalate", "speculate"):
        with Generator(edge, worker.endpoint, mode=mode, threshold=0.4) as g:
            c = g.chat(ASK, max_tokens=40)
        assert c.finish_reason in ("stop", "length") and c.text and not c.degraded, (mode, c)
        out[mode] = c
    assert out["local"].cloud_tokens == 0 and out["cloud"].edge_tokens == 0
    assert out["escalate"].edge_tokens > 0 and out["escalate"].cloud_tokens > 0
    spec = out["speculate"]
    assert spec.drafted > 0 and 0 < spec.accepted <= spec.drafted
    assert spec.accepted - 1 <= spec.edge_tokens <= spec.accepted  # an accepted end-of-generation is no token
    prompt = edge.tokenize(edge.chat_prompt(ASK))
    # greedy speculate = the cloud's greedy choice at every position, against a batched reference
    # (llama.cpp's batched logits drift from one-token logits: a mismatch may only be a near-tie)
    bad, ties = calibrate.reference_check(cloud_ref, prompt, spec.tokens)
    assert bad == ties, f"{bad} positions differ from the cloud's greedy choice, only {ties} near-ties"
    # only token ids cross: a few bytes per token each way, never KV (23 kB per token)
    assert spec.bytes_recv / len(spec.tokens) < 1000 and spec.bytes_sent / len(spec.tokens) < 400


def _llm(client, meta, tokens):
    """One kind-LLM request on ``client`` with ``tokens`` (model smollm2 unless ``meta`` names one)."""
    meta = {"model": "smollm2", **meta, "tensors": [{"name": "tokens", "dtype": "int32", "shape": [len(tokens)]}]}
    return client.request(Kind.LLM, meta, [np.asarray(tokens, np.int32)], timeout=10).result(15)


def test_sessions_are_isolated_between_clients(worker, edge):
    a, b = Client(worker.endpoint), Client(worker.endpoint)
    try:
        assert a.wait_ready(5) and b.wait_ready(5)
        ids = edge.tokenize(edge.chat_prompt(ASK))
        r = _llm(a, {"op": "open", "n": 2}, ids)
        assert r.ok, r
        sid, n_past = r.message.meta["session"], r.message.meta["n_past"]
        steal = {"op": "step", "n": 1, "session": sid, "n_past": n_past}
        r = _llm(b, steal, [])
        assert r.outcome is Outcome.ERROR and r.error_code == ErrorCode.SESSION, r
        r = _llm(a, steal, [])
        assert r.ok and len(r.message.arrays()["tokens"]) == 1, r  # the owner goes on
        r = _llm(a, {**steal, "model": "gpt-9"}, [])
        assert r.error_code == ErrorCode.UNKNOWN_MODEL and "smollm2" in r.error
        r = _llm(a, {"op": "open", "n": 2}, [10**8])
        assert r.error_code == ErrorCode.BAD_INPUT and "vocabulary" in r.error
        r = _llm(a, {"op": "open", "n": 2}, [1] * 3000)
        assert r.outcome is Outcome.ERROR and r.error_code in (ErrorCode.BAD_INPUT, ErrorCode.PROTOCOL), r
    finally:
        a.close()
        b.close()
    assert worker.proc.poll() is None


def test_structured_fuzz_of_llm_messages_worker_survives(worker, edge):
    ids = edge.tokenize("Hello there")
    base = fuzz.llm_base("smollm2", ids)
    sentinel = fuzz.unknown_package_sentinel(fuzz.infer_base("0" * 64, {"x": np.zeros((1, 4), np.float32)}))
    fz = fuzz.Fuzzer(worker.endpoint, sentinel)
    try:
        @settings(max_examples=300, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(fuzz.mutations(base))
        def one(muts):
            assert fz.send(fuzz.apply(base, muts)) is not None, f"no answer after {muts!r}"
            assert worker.proc.poll() is None
            assert fz.report.bad_replies == 0 and "INTERNAL" not in fz.report.codes, (muts, fz.report)

        one()
    finally:
        fz.close()


def test_kill_9_mid_answer_the_edge_finishes_it(edge):
    w = testing.llm_worker()
    try:
        with Generator(edge, w.endpoint, mode="cloud", tokens_per_step=2, retry_s=0.2, pace=2.0) as g:
            events, killed = [], False
            for ev in g.chat_stream(LONG, max_tokens=80):
                events.append(ev)
                if len(events) == 10 and not killed:
                    w.proc.send_signal(signal.SIGKILL)
                    killed = True
            c = g.last
        assert killed and c.finish_reason in ("stop", "length") and c.degraded
        assert c.cloud_tokens >= 9 and c.edge_tokens > 0 and c.sources[:9] == ["cloud"] * 9
        assert c.sources[-1] == "edge" and events[-1].degraded
        assert "".join(e.text for e in events) == c.text
    finally:
        w.kill()


def test_link_cut_mid_answer_then_back_to_collaboration(worker, edge):
    host, port = worker.endpoint.rsplit("//", 1)[1].rsplit(":", 1)
    with LinkProxy((host, int(port)), delay_ms=2.0) as proxy:
        with Generator(edge, f"tcp://127.0.0.1:{proxy.port}", mode="speculate", retry_s=0.2, timeout_s=0.5,
                       pace=3.0, heartbeat_s=0.2, dead_after=2, backoff_s=0.3) as g:
            cut_at = None
            for ev in g.chat_stream(LONG, max_tokens=150):
                if ev.index >= 12 and cut_at is None:
                    proxy.cut(1.0)
                    cut_at = ev.index
            c = g.last
    assert c.finish_reason in ("stop", "length") and c.degraded, c
    src = c.sources
    assert "edge" in src[:cut_at] and "cloud" in src[:cut_at]  # collaborating before the cut
    # after the cut: a run of edge-only tokens (no verification), then cloud tokens again
    assert "cloud" in src[cut_at + 5:], f"never returned to the cloud: {src}"
    assert len(c.tokens) > cut_at + 5


def test_worker_cli_refuses_bad_llm_arguments(tmp_path):
    for args, text in ((["--llm", "nosep"], "NAME=GGUF"), (["--llm", f"x={tmp_path}/none.gguf"], "no file"),
                       ([], "at least one")):
        p = testing.Proc(["worker", "--bind", "tcp://127.0.0.1:*", *args])
        assert p.endpoint is None and p.wait() != 0 and text in p.stderr(), p.stderr()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\1" * 100)
    p = testing.Proc(["worker", "--bind", "tcp://127.0.0.1:*", "--llm", f"x={bad}"])
    assert p.endpoint is None and p.wait() != 0 and "could not load" in p.stderr()


def test_generate_cli_streams_and_reports(worker):
    import json
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "edgeinf", "generate", *a], capture_output=True,
                                    text=True, timeout=120)
    r = run("smollm2", "What is the capital of France?", "--worker", worker.endpoint, "--mode", "speculate",
            "--max-tokens", "16", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["mode"] == "speculate" and "Paris" in out["text"] and out["tokens"] <= 16
    r = run("smollm2", "Name three colours.", "--max-tokens", "12")
    assert r.returncode == 0 and r.stdout.strip() and "[local" in r.stderr, r.stderr
    r = run("smollm2", "hi", "--mode", "cloud")
    assert r.returncode != 0 and "needs a cloud worker" in r.stderr


@pytest.mark.slow
def test_bench_llm_json_has_the_documented_keys():
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "edgeinf", "bench", "llm", "--rtt-ms", "5", "--prompts", "1",
                        "--max-tokens", "12", "--failover", "1", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert {"pair", "modes", "speculate_exact", "failover", "capacity"} <= out.keys()
    assert set(out["modes"]) == {"local", "cloud", "escalate", "speculate"}
    for mode, rows in out["modes"].items():
        row = rows["5.0"]
        assert {"tok_s", "ttft_ms", "cloud_token_fraction", "agreement", "bytes_per_token", "acceptance"} <= row.keys()
        assert row["tok_s"] > 0 and 0 <= row["cloud_token_fraction"] <= 1 and 0 <= row["agreement"] <= 1
    assert out["modes"]["local"]["5.0"]["bytes_per_token"] == 0 and out["modes"]["cloud"]["5.0"]["agreement"] == 1
    assert out["failover"]["answers"] == 2 and out["failover"]["completed"] == 2
    assert isinstance(out["speculate_exact"], bool) and out["capacity"]["5.0"]["bound"] > 1


def test_curve_identity_owns_the_session_even_with_a_spoofed_client_name(tmp_path, edge):
    import shutil
    import subprocess
    import sys

    def gen(name):
        subprocess.run([sys.executable, "-m", "edgeinf", "keys", "generate", str(tmp_path / "keys"), "--name", name],
                       check=True, capture_output=True)
        return tmp_path / "keys" / f"{name}.key", tmp_path / "keys" / f"{name}.key_secret"

    keys = {n: gen(n) for n in ("server", "alice", "mallory")}
    allow = tmp_path / "allow"
    allow.mkdir()
    for n in ("alice", "mallory"):  # both may use the worker; neither may use the other's session
        shutil.copy(keys[n][0], allow / f"{n}.key")
    with testing.llm_worker("--curve-secret", str(keys["server"][1]), "--allow", str(allow)) as w:
        alice = Client(w.endpoint, server_key=keys["server"][0], client_key=keys["alice"][1])
        mallory = Client(w.endpoint, server_key=keys["server"][0], client_key=keys["mallory"][1])
        mallory.name = alice.name  # spoof the client name: the CURVE key still tells them apart
        try:
            assert alice.wait_ready(5) and mallory.wait_ready(5)
            ids = edge.tokenize(edge.chat_prompt(ASK))
            r = _llm(alice, {"op": "open", "n": 1}, ids)
            assert r.ok, r
            steal = {"op": "step", "n": 1, "session": r.message.meta["session"], "n_past": r.message.meta["n_past"]}
            r = _llm(mallory, steal, [])
            assert r.error_code == ErrorCode.SESSION, r
            r = _llm(alice, steal, [])
            assert r.ok, r
        finally:
            alice.close()
            mallory.close()
