"""OpenAI-compatible routes on the language-model collaboration (:mod:`edgeinf.llm`).

``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``; ``stream``
(server-sent events ending in ``data: [DONE]``), ``max_tokens`` (or
``max_completion_tokens``), ``temperature``, ``top_p``, ``seed``, ``stop``, ``logprobs``.
Every response and every stream chunk carries the extension field ``edgeinf``::

    "edgeinf": {"mode": "speculate", "degraded": false, "edge_tokens": 31, "cloud_tokens": 9,
                "ttft_ms": 41.2, "elapsed_ms": 390.5}          # a chunk: {"mode", "source", "degraded"}

``mode`` is the collaboration that ran (``local``, ``cloud``, ``escalate``, ``speculate``;
chosen by the controller in ``auto``), ``degraded`` says the link failed and the edge
finished alone. The ``openai`` client keeps it: ``resp.model_extra["edgeinf"]``.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
import time
import uuid
from typing import Deque, Iterator, List

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from ..errors import InputError
from .config import DaemonConfig, LLMSpec
from .http import HTTPError, client_id, log_request, read_body

log = logging.getLogger("edgeinf.daemon")

MAX_BODY = 4 * 2**20  # a chat request is text: 4 MiB is far past any context on a device
ROLES = ("system", "user", "assistant", "tool")


class LLMModel:
    """One served language model: the :class:`edgeinf.llm.Generator` and recent answers."""

    def __init__(self, spec: LLMSpec, cfg: DaemonConfig):
        from ..llm import Generator

        opts = {"server_key": cfg.server_key, "client_key": cfg.client_key} if cfg.server_key else {}
        self.spec = spec
        self.gen = Generator(spec.gguf, list(cfg.workers) or None, mode=spec.mode, threads=spec.threads,
                             n_ctx=spec.n_ctx, **opts)
        self.history: Deque[dict] = collections.deque(maxlen=500)
        self.lock = threading.Lock()

    def status_dict(self) -> dict:
        st = self.gen.status()
        cut = time.time() - 300
        return {"mode": st.get("mode"), "link": st.get("link"), "history": [
            [round(r["t"], 3), r["ms"], r["mode"], r["tokens"]] for r in list(self.history) if r["t"] >= cut]}

    def close(self) -> None:
        self.gen.close()


def routes(route) -> List[Route]:
    return [Route("/v1/models", route(openai=True)(list_models)),
            Route("/v1/chat/completions", route(openai=True)(chat), methods=["POST"]),
            Route("/v1/completions", route(openai=True)(completions), methods=["POST"])]


async def list_models(d, request: Request):
    now = int(d.started)
    return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": now, "owned_by": "edgeinf"}
                                                    for n in d.llms]})


async def chat(d, request: Request):
    return await _serve(d, request, chat=True)


async def completions(d, request: Request):
    return await _serve(d, request, chat=False)


def _body(raw: bytes) -> dict:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HTTPError(400, f"the request is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise HTTPError(400, "the request must be a JSON object")
    return doc


def _options(doc: dict, chat: bool) -> dict:
    """Sampling options, checked here so a bad one is a 400 before any token."""
    mt = doc.get("max_completion_tokens", doc.get("max_tokens", 128))
    if not isinstance(mt, int) or isinstance(mt, bool) or not 1 <= mt <= 1 << 16:
        raise HTTPError(400, f"max_tokens must be an integer in [1, 65536]; got {mt!r}")
    t = doc.get("temperature")
    t = 1.0 if t is None else t  # the OpenAI default
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= 2:
        raise HTTPError(400, f"temperature must be a number in [0, 2]; got {t!r}")
    top_p = doc.get("top_p", 1.0) if doc.get("top_p") is not None else 1.0
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise HTTPError(400, f"top_p must be in (0, 1]; got {top_p!r}")
    stop = doc.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise HTTPError(400, "stop must be a string or a list of up to 4 non-empty strings")
    seed = doc.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise HTTPError(400, f"seed must be an integer; got {seed!r}")
    if doc.get("n", 1) != 1:
        raise HTTPError(400, "only n = 1 is supported")
    lp = doc.get("logprobs")
    if chat and doc.get("top_logprobs"):
        raise HTTPError(400, "top_logprobs is not supported (logprobs of the chosen tokens are)")
    if not chat and isinstance(lp, int) and not isinstance(lp, bool) and lp > 1:
        raise HTTPError(400, "logprobs > 1 (alternatives) is not supported; use 0 or 1")
    return {"max_tokens": mt, "temperature": float(t), "top_p": float(top_p), "stop": tuple(stop), "seed": seed,
            "logprobs": bool(lp) if chat else (lp is not None and lp is not False)}


def _prompt(doc: dict, chat: bool):
    if chat:
        msgs = doc.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise HTTPError(400, "messages must be a non-empty list")
        out = []
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise HTTPError(400, f"messages[{i}].role must be one of {ROLES}")
            c = m.get("content")
            if isinstance(c, list):  # content parts: text only on this device
                if not all(isinstance(p, dict) and p.get("type") == "text" for p in c):
                    raise HTTPError(400, f"messages[{i}].content: only text parts are supported")
                c = "".join(str(p.get("text", "")) for p in c)
            if not isinstance(c, str):
                raise HTTPError(400, f"messages[{i}].content must be a string")
            out.append({"role": m["role"], "content": c})
        return out
    p = doc.get("prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], str):
        p = p[0]
    if not isinstance(p, str) or not p:
        raise HTTPError(400, "prompt must be a non-empty string")
    return p


async def _serve(d, request: Request, chat: bool):
    t0 = time.perf_counter()
    doc = _body(await read_body(request, min(d.limit, MAX_BODY)))
    name = doc.get("model")
    m = d.llms.get(name) if isinstance(name, str) else None
    if m is None:
        raise HTTPError(404, f"unknown model {name!r}; served: {sorted(d.llms)}", kind="model_not_found")
    prompt, opts = _prompt(doc, chat), _options(doc, chat)
    who = client_id(request)
    try:
        d.admission.enter(name, who, 2000.0)
    except HTTPError:
        d.metrics.llm_requests.labels(name, "none", "rejected").inc()
        raise
    # NOTE: one answer at a time per model, held until the answer ends (streamed or not), so
    # the Completion read from gen.last afterwards is this request's and no one else's
    lock = d.locks.setdefault(name, asyncio.Lock())
    await lock.acquire()
    it = (m.gen.chat_stream if chat else m.gen.stream)(prompt, **opts)
    try:
        first = await run_in_threadpool(_first, it)  # validation (prompt over the context) happens here
    except BaseException:
        lock.release()
        d.admission.leave(name, who)
        d.metrics.llm_requests.labels(name, "none", "error").inc()
        raise
    ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
    if doc.get("stream"):
        include_usage = bool((doc.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_sse(d, m, it, first, ident, chat, include_usage, (lock, who), request, t0),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-store"})
    try:
        events = [first] + await run_in_threadpool(list, it)
        c = m.gen.last
    finally:
        lock.release()
        d.admission.leave(name, who)
    _account(d, m, c, t0)
    log_request("completion", request, 200, t0, model=name, mode=c.mode, tokens=len(c.tokens), degraded=c.degraded)
    return JSONResponse(_full(ident, name, chat, events, c, opts["logprobs"]))


def _first(it: Iterator):
    try:
        return next(it)
    except StopIteration:
        return None


def _ext(c) -> dict:
    return {"mode": c.mode, "degraded": c.degraded, "edge_tokens": c.edge_tokens, "cloud_tokens": c.cloud_tokens,
            "ttft_ms": round(c.ttft_ms, 3), "elapsed_ms": round(c.elapsed_ms, 3)}


def _usage(c) -> dict:
    return {"prompt_tokens": c.prompt_tokens, "completion_tokens": len(c.tokens),
            "total_tokens": c.prompt_tokens + len(c.tokens)}


def _full(ident: str, name: str, chat: bool, events, c, logprobs: bool) -> dict:
    events = [e for e in events if e is not None]
    text = "".join(e.text for e in events)
    choice = {"index": 0, "finish_reason": c.finish_reason, "logprobs": _logprobs(events, chat) if logprobs else None}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {"id": ident, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": name, "choices": [choice], "usage": _usage(c), "edgeinf": _ext(c)}


def _logprobs(events, chat: bool):
    if chat:
        return {"content": [{"token": e.text, "logprob": e.logprob if e.logprob is not None else 0.0,
                             "bytes": list(e.text.encode()), "top_logprobs": []} for e in events]}
    offsets, pos = [], 0
    for e in events:
        offsets.append(pos)
        pos += len(e.text)
    return {"tokens": [e.text for e in events], "token_logprobs": [e.logprob for e in events],
            "top_logprobs": None, "text_offset": offsets}


async def _sse(d, m, it, first, ident, chat, include_usage, held, request, t0):
    name, created = m.spec.name, int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"
    try:
        if chat:
            yield _event({"id": ident, "object": obj, "created": created, "model": name,
                          "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        ev = first
        while ev is not None:
            lp = None
            if ev.logprob is not None:
                lp = _logprobs([ev], chat)
            choice = {"index": 0, "finish_reason": ev.finish, "logprobs": lp}
            if chat:
                choice["delta"] = {"content": ev.text}
            else:
                choice["text"] = ev.text
            yield _event({"id": ident, "object": obj, "created": created, "model": name, "choices": [choice],
                          "edgeinf": {"mode": ev.mode, "source": ev.source, "degraded": ev.degraded}})
            ev = await run_in_threadpool(_first, it)
        c = m.gen.last
        if include_usage and c is not None:
            yield _event({"id": ident, "object": obj, "created": created, "model": name, "choices": [],
                          "usage": _usage(c), "edgeinf": _ext(c)})
        yield b"data: [DONE]\n\n"
        if c is not None:
            _account(d, m, c, t0)
            log_request("completion", request, 200, t0, model=name, mode=c.mode, tokens=len(c.tokens),
                        degraded=c.degraded, stream=True)
    except InputError as e:  # the status line is gone: the error is the last event
        yield _event({"error": {"message": str(e), "type": "invalid_request_error", "code": 400}})
    except Exception as e:  # noqa: BLE001 - an engine failure mid-answer ends this stream, not the daemon
        log.exception("stream of %s failed", name)
        yield _event({"error": {"message": f"{type(e).__name__}: {e}", "type": "server_error", "code": 500}})
    finally:
        # NOTE: a client that hangs up mid-answer cancels this task; the cleanup is shielded
        # (anyio re-raises the cancellation at every await otherwise) so the generator is
        # closed, stops decoding and frees the model for the next client
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(it.close)
            held[0].release()
            d.admission.leave(name, held[1])


def _event(doc: dict) -> bytes:
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def _account(d, m, c, t0: float) -> None:
    d.metrics.llm_requests.labels(m.spec.name, c.mode, "degraded" if c.degraded else "ok").inc()
    d.metrics.llm_tokens.labels(m.spec.name, "edge").inc(c.edge_tokens)
    d.metrics.llm_tokens.labels(m.spec.name, "cloud").inc(c.cloud_tokens)
    m.history.append({"t": time.time(), "ms": round((time.perf_counter() - t0) * 1e3, 3), "mode": c.mode,
                      "tokens": len(c.tokens)})
