"""Generation with an edge model and (optionally) a cloud worker, mode chosen per answer.

Modes (``docs/llm.md``): ``local`` (the edge model alone), ``cloud`` (the worker's model
streams tokens, ``tokens_per_step`` per round trip), ``escalate`` (CE-CoLLM: the edge emits
a token when its top probability passes a calibrated threshold, else the cloud produces
it from its cached session), ``speculate`` (the edge drafts ``gamma`` tokens, the cloud
verifies them in one batch and returns the accepted prefix plus its own next token;
``gamma`` follows the measured acceptance and round trip). ``auto`` asks
:func:`edgeinf.controller.llm.choose` at the start of every answer.

The edge holds the answer's token history at all times and the cloud only ever receives
token ids. When the cloud fails mid-answer (a dead worker, a cut link, a timeout), the edge
continues from the tokens emitted so far with its own model, marks the answer degraded,
and every ``retry_s`` tries to reopen the session with that history in the background: once
it answers, the answer goes back to its mode without restarting.
"""
from __future__ import annotations

import codecs
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

from ..controller.llm import MODES, LLMEstimates, ModeChoice, choose
from ..errors import ConfigError, InputError
from .remote import LinkDown, RemoteSession
from .sampling import Sampler, Sampling, top_confidence

log = logging.getLogger("edgeinf.llm")

Prompt = Union[str, Sequence[int]]


@dataclass
class TokenEvent:
    token: int
    text: str
    logprob: Optional[float]
    source: str            # "edge" | "cloud"
    mode: str
    index: int
    finish: Optional[str] = None   # "stop" | "length" on the last event
    degraded: bool = False


@dataclass
class Completion:
    text: str
    tokens: List[int]
    finish_reason: str
    mode: str
    degraded: bool
    edge_tokens: int
    cloud_tokens: int
    prompt_tokens: int
    ttft_ms: float
    elapsed_ms: float
    logprobs: Optional[List[float]]
    sources: List[str] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_recv: int = 0
    requests: int = 0
    cloud_service_ms: float = 0.0   # the worker's compute for this answer (capacity)
    edge_compute_ms: float = 0.0    # the edge's decoding (paced), prefill excluded
    verifies: int = 0               # speculate: verification round trips
    drafted: int = 0
    accepted: int = 0
    choice: Optional[ModeChoice] = None

    @property
    def acceptance(self) -> Optional[float]:
        return self.accepted / self.drafted if self.drafted else None


class _Ema:
    def __init__(self, value: Optional[float] = None, alpha: float = 0.3):
        self.value, self.alpha = value, alpha

    def add(self, x: float) -> None:
        self.value = x if self.value is None else (1 - self.alpha) * self.value + self.alpha * x


class Generator:
    """An edge language model, optionally collaborating with cloud workers.

    Parameters
    ----------
    edge : path or a model from ``edgeinf.load(path.gguf)``
    endpoints : worker endpoint(s), or None for the edge alone
    cloud_model : the worker's model name (default: the first the worker serves)
    mode : "auto" | "local" | "cloud" | "escalate" | "speculate"
    objective : "latency" or "cloud_cost" (auto mode)
    agreement_floor : auto mode: only modes expected to agree with the cloud this often
    threshold : escalate: emit the edge's token when its top probability is >= this
        (from :func:`edgeinf.llm.calibrate.calibrate`; default 0.5)
    gamma : speculate: the first draft length (then adapted); ``adapt_gamma=False`` fixes it
    timeout_s : one cloud step's allowance (plus a per-token share)
    retry_s : after a failure, how often to try the cloud again
    calibration : an :class:`edgeinf.llm.calibrate.Calibration` of this edge/cloud pair:
        its threshold, escalation fraction and agreements replace the defaults
    pace : emulate an edge device this many times slower than this host (each edge decode
        is followed by a sleep of ``(pace - 1)`` times its duration); 1: this host as it is
    """

    def __init__(self, edge, endpoints: Union[None, str, Sequence[str]] = None, *, cloud_model: Optional[str] = None,
                 mode: str = "auto", objective: str = "latency", agreement_floor: float = 0.0,
                 threshold: float = 0.5, gamma: int = 4, adapt_gamma: bool = True, tokens_per_step: int = 8,
                 threads: Optional[int] = None, n_ctx: int = 2048, timeout_s: float = 2.0, retry_s: float = 1.0,
                 calibration=None, pace: float = 1.0, **client_options):
        if mode not in ("auto",) + MODES:
            raise ConfigError(f"mode must be one of {('auto',) + MODES}; got {mode!r}")
        if mode != "local" and mode != "auto" and not endpoints:
            raise ConfigError(f"mode {mode!r} needs a cloud worker: pass endpoints=")
        if isinstance(edge, (str, Path)):
            from ..backends import load

            edge = load(edge, threads=threads, n_ctx=n_ctx)
        if getattr(edge, "backend", None) != "llamacpp":
            raise ConfigError("edge must be a GGUF path or a model from edgeinf.load('model.gguf')")
        self.lm = edge
        self.mode, self.objective, self.floor = mode, objective, agreement_floor
        self.threshold, self.gamma, self.adapt_gamma = threshold, gamma, adapt_gamma
        self.tokens_per_step, self.timeout_s, self.retry_s = tokens_per_step, timeout_s, retry_s
        self.client = None
        self.cloud_model = cloud_model
        if endpoints:
            from ..transport.client import Client

            self.client = Client(endpoints, **client_options)
            # NOTE: sends fail at once until a connection completes (IMMEDIATE): wait for it
            # briefly, so the first answer does not start degraded on a healthy link
            self.client.wait_ready(min(timeout_s, 2.0))
        self._lock = threading.Lock()
        self.edge_ms = _Ema()
        self.cloud_ms, self.verify_ms, self.rtt_ms = _Ema(), _Ema(), _Ema()
        self.acceptance = _Ema(0.7, 0.2)
        if pace < 1.0:
            raise ConfigError(f"pace must be >= 1 (an emulated device slower than this host); got {pace}")
        self.pace = pace
        fraction, self.edge_agreement, self.escalate_agreement = 0.3, 0.8, 0.95
        if calibration is not None:
            self.threshold = calibration.threshold
            fraction, self.edge_agreement = calibration.escalate_fraction, calibration.edge_agreement
            self.escalate_agreement = calibration.agreement
        self.escalated = _Ema(fraction, 0.1)
        self.server_queue = 0.0
        self._down_until = 0.0
        self.last: Optional[Completion] = None

    @property
    def models(self) -> List[str]:
        return [self.lm.name]

    # -- public API ---------------------------------------------------------------------------
    def stream(self, prompt: Prompt, max_tokens: int = 128, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 1.0, seed: Optional[int] = None, stop: Sequence[str] = (),
               logprobs: bool = False, mode: Optional[str] = None) -> Iterator[TokenEvent]:
        """Tokens of the answer as they are produced; the last event has ``finish`` set."""
        sampling = Sampling(temperature, top_k, top_p, seed)  # validates
        ids = self._prompt_ids(prompt)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise InputError(f"max_tokens must be an int >= 1; got {max_tokens!r}")
        stops = [stop] if isinstance(stop, str) else list(stop or ())
        if not all(isinstance(s, str) and s for s in stops) or len(stops) > 16:
            raise InputError("stop must be up to 16 non-empty strings")
        with self._lock:
            yield from self._answer(ids, max_tokens, sampling, stops, logprobs, mode or self.mode)

    def complete(self, prompt: Prompt, **kw) -> Completion:
        for _ in self.stream(prompt, **kw):
            pass
        return self.last

    def chat_stream(self, messages, **kw) -> Iterator[TokenEvent]:
        return self.stream(self.lm.chat_prompt(messages), **kw)

    def chat(self, messages, **kw) -> Completion:
        return self.complete(self.lm.chat_prompt(messages), **kw)

    def estimates(self) -> LLMEstimates:
        return LLMEstimates(
            edge_ms=self.edge_ms.value or 15.0, cloud_ms=self.cloud_ms.value, verify_ms=self.verify_ms.value,
            rtt_ms=self.rtt_ms.value, acceptance=self.acceptance.value, escalate_fraction=self.escalated.value,
            edge_agreement=self.edge_agreement, escalate_agreement=self.escalate_agreement,
            server_queue=self.server_queue, link_up=self.client is not None and time.monotonic() >= self._down_until,
            tokens_per_step=self.tokens_per_step)

    def choose(self) -> ModeChoice:
        if self.client is None:
            return ModeChoice("local", 0, "no cloud worker configured", {"local": self.edge_ms.value or 0.0})
        return choose(self.estimates(), self.objective, self.floor)

    def status(self) -> dict:
        est = self.estimates()
        return {"mode": self.mode, "edge": self.lm.name, "cloud": self.cloud_model,
                "link": {"up": est.link_up, "rtt_ms": est.rtt_ms,
                         "endpoints": self.client.status() if self.client else []},
                "estimates": {k: getattr(est, k) for k in ("edge_ms", "cloud_ms", "verify_ms", "acceptance",
                                                           "escalate_fraction", "server_queue")},
                "last": None if self.last is None else {"mode": self.last.mode, "degraded": self.last.degraded,
                                                        "tokens": len(self.last.tokens)}}

    def probe(self, n: int = 4) -> bool:
        """Measure the cloud (decode and verify speed, round trip) with a tiny session; True if it answered."""
        if self.client is None:
            return False
        try:
            self._resolve_cloud_model()
        except LinkDown as e:
            log.info("cloud probe failed: %s", e)
            self._down_until = time.monotonic() + self.retry_s
            return False
        remote = RemoteSession(self.client, self.cloud_model, Sampling(), self.timeout_s)
        ids = self.lm.tokenize("Hello", add_bos=None) or [0]
        try:
            remote.open(ids, 0)
            step = remote.step(ids, n)
            self._account(step, len(step.tokens), "step")
            hist = ids + step.tokens
            self._account(remote.verify(hist, [hist[-1]] * 3), 4, "verify")
        except LinkDown as e:
            log.info("cloud probe failed: %s", e)
            self._down_until = time.monotonic() + self.retry_s
            return False
        finally:
            remote.close()
        return True

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- one answer ---------------------------------------------------------------------------
    def _prompt_ids(self, prompt: Prompt) -> List[int]:
        if isinstance(prompt, str):
            ids = self.lm.tokenize(prompt)
        elif isinstance(prompt, (list, tuple)) and all(isinstance(t, int) for t in prompt):
            ids = list(prompt)
            self.lm.check_ids(ids)
        else:
            raise InputError("prompt must be a str or a list of token ids")
        if not ids:
            raise InputError("the prompt is empty")
        if len(ids) >= self.lm.n_ctx:
            raise InputError(f"the prompt is {len(ids)} tokens; the context holds {self.lm.n_ctx} "
                             f"(prompt + answer): shorten it or load with a larger n_ctx")
        return ids

    def _resolve_cloud_model(self) -> None:
        if self.cloud_model is not None or self.client is None:
            return
        from ..transport.protocol import Kind

        reply = self.client.request(Kind.HELLO, {}, timeout=self.timeout_s).result(timeout=self.timeout_s + 5)
        models = reply.message.meta.get("models") if reply.ok else None
        if not models:
            raise LinkDown(f"the worker serves no language model ({reply.outcome.value} {reply.error})".strip())
        self.cloud_model = models[0]

    def _answer(self, prompt: List[int], max_tokens: int, sampling: Sampling, stops: List[str],
                want_logprobs: bool, mode: str) -> Iterator[TokenEvent]:
        t0 = time.perf_counter()
        max_tokens = min(max_tokens, self.lm.n_ctx - len(prompt))
        choice = None
        if mode == "auto":
            if self.client is not None and self.cloud_ms.value is None and time.monotonic() >= self._down_until:
                self.probe()
            choice = self.choose()
            mode = choice.mode
            if mode == "speculate":
                self.gamma = choice.gamma
        state = _Answer(self, prompt, sampling, stops, want_logprobs, mode, max_tokens)
        state.choice = choice
        if mode != "local":
            try:
                self._resolve_cloud_model()
                state.remote = RemoteSession(self.client, self.cloud_model, sampling, self.timeout_s)
                if mode in ("escalate", "speculate"):
                    # the cloud's prefill of the prompt overlaps the edge's: both are needed first
                    fut = state.remote.resume_async(prompt, timeout_s=self.timeout_s)
                    t_edge = time.perf_counter()
                    self.lm.sync(prompt)
                    state._paced(t_edge, 1)
                    state.edge_compute_ms = 0.0  # prefill: not per-token decoding
                    if not state.remote.finish_resume(fut):
                        raise LinkDown("the cloud did not open the session")
            except LinkDown as e:
                state.fail(e)
        try:
            while not state.finish:
                for ev in state.next_tokens():
                    if state.first_ms is None:
                        state.first_ms = (time.perf_counter() - t0) * 1e3
                    yield ev
        finally:
            if state.remote is not None:
                state.remote.close()
            self.last = state.completion((time.perf_counter() - t0) * 1e3)

    def _account(self, step, n_new: int, kind: str) -> None:
        self.rtt_ms.add(step.rtt_ms)
        if step.load:
            workers = max(float(step.load.get("workers", 1) or 1), 1.0)
            self.server_queue = float(step.load.get("queue", 0)) / workers
        if kind == "verify" and n_new:
            self.verify_ms.add(step.service_ms / n_new)
        elif kind == "step" and step.tokens:
            self.cloud_ms.add(step.service_ms / len(step.tokens))


class _Answer:
    """The state of one answer: its history, the edge KV, the cloud session, the text."""

    def __init__(self, gen: Generator, prompt, sampling, stops, want_logprobs, mode, max_tokens):
        self.g, self.lm = gen, gen.lm
        self.prompt, self.history = list(prompt), list(prompt)
        self.sampler = Sampler(sampling)
        self.stops, self.want_lp, self.mode, self.max_tokens = stops, want_logprobs, mode, max_tokens
        self.remote: Optional[RemoteSession] = None
        self.degraded = False
        self.reopen = None          # "wait", or the Future of a resume, while the cloud is retried
        self.next_retry = 0.0
        self.failed_tries = 0
        self.tokens: List[int] = []
        self.sources: List[str] = []
        self.logprobs: List[float] = []
        self.finish: Optional[str] = None
        self.first_ms: Optional[float] = None
        self.drafted = self.accepted_n = self.verifies = 0
        self.edge_compute_ms = 0.0
        self.choice = None
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""          # emitted text
        self._held = ""         # text held back: it may be the start of a stop string

    # -- producing tokens -----------------------------------------------------------------------
    def next_tokens(self) -> List[TokenEvent]:
        self._maybe_back()
        mode = "local" if self.remote is None or self.reopen is not None else self.mode
        try:
            if mode == "local":
                (tok, lp), _ = self._edge_token()
                return self._push([tok], [lp], "edge")
            if mode == "cloud":
                return self._cloud_step()
            if mode == "escalate":
                return self._escalate()
            return self._speculate()
        except LinkDown as e:
            self.fail(e)
            return []

    def _edge_token(self):
        t0 = time.perf_counter()
        logits = self.lm.sync(self.history)
        self.g.edge_ms.add(self._paced(t0))
        return self.sampler.pick(logits), logits

    def _paced(self, t0: float, n: int = 1) -> float:
        """ms per token of the edge work since ``t0``, slowed to the emulated device first."""
        took = time.perf_counter() - t0
        if self.g.pace > 1.0:
            time.sleep(took * (self.g.pace - 1.0))
        self.edge_compute_ms += took * self.g.pace * 1e3
        return took * self.g.pace * 1e3 / n

    def _cloud_step(self):
        left = self.max_tokens - len(self.tokens)
        n = 1 if not self.tokens else min(self.g.tokens_per_step, left)
        step = self.remote.step(self.history, n)
        self.g._account(step, len(step.tokens), "step")
        return self._push(step.tokens, step.logprobs, "cloud")

    def _escalate(self):
        (tok, lp), logits = self._edge_token()
        if top_confidence(logits) >= self.g.threshold:
            self.g.escalated.add(0.0)
            return self._push([tok], [lp], "edge")
        self.g.escalated.add(1.0)
        step = self.remote.step(self.history, 1)
        self.g._account(step, 1, "step")
        return self._push(step.tokens, step.logprobs, "cloud")

    def _speculate(self):
        left = self.max_tokens - len(self.tokens)
        gamma = max(1, min(self.g.gamma, left - 1)) if left > 1 else 0
        if gamma == 0:  # one token left: the cloud's own next token, no drafts to verify
            step = self.remote.step(self.history, 1)
            self.g._account(step, 1, "step")
            return self._push(step.tokens, step.logprobs, "cloud")
        drafts, t0 = [], time.perf_counter()
        logits = self.lm.sync(self.history)
        for i in range(gamma):
            t = int(logits.argmax())  # greedy drafts: the cloud accepts what it would pick itself
            drafts.append(t)
            if t in self.lm.eog or i == gamma - 1:
                break
            logits = self.lm.feed([t])
        self.g.edge_ms.add(self._paced(t0, len(drafts)))
        step = self.remote.verify(self.history, drafts)
        self.g._account(step, len(drafts) + 1, "verify")
        self.drafted += len(drafts)
        self.verifies += 1
        self.accepted_n += step.accepted
        self.g.acceptance.add(step.accepted / len(drafts))
        if self.g.adapt_gamma:
            from ..controller.llm import best_gamma

            est = self.g.estimates()
            if est.remote_known:
                self.g.gamma = best_gamma(est)[0]
        sources = ["edge"] * step.accepted + ["cloud"] * (len(step.tokens) - step.accepted)
        return self._push(step.tokens, step.logprobs, sources)

    # -- failure and recovery -------------------------------------------------------------------
    def fail(self, err: Exception) -> None:
        if not self.degraded:
            log.warning("cloud failed mid-answer after %d tokens (%s); continuing on the edge", len(self.tokens), err)
        self.degraded = True
        self.g._down_until = time.monotonic() + self.g.retry_s
        self.next_retry = time.monotonic() + self.g.retry_s
        if self.remote is not None:
            self.reopen = "wait"  # the session stays known: the worker may still hold it

    def _maybe_back(self) -> None:
        """While degraded: every retry_s, in the background, bring the cloud session up to the
        history (the same session when the worker still has it); use it once it answers."""
        if self.reopen is None or self.remote is None:
            return
        now = time.monotonic()
        if self.reopen == "wait":
            if now >= self.next_retry and self.mode != "local":
                self.reopen = self.remote.resume_async(self.history, timeout_s=min(self.g.timeout_s, 1.0))
            return
        if not self.reopen.done():
            return
        if self.remote.finish_resume(self.reopen):
            log.info("cloud back after %d tokens; resuming %s", len(self.tokens), self.mode)
            self.reopen = None
            self.g._down_until = 0.0
            return
        self.failed_tries += 1
        if self.failed_tries % 3 == 0:
            self.remote.forget()  # its worker may be gone for good: open anywhere next time
        self.reopen = "wait"
        self.next_retry = now + self.g.retry_s

    # -- text, stops, events ----------------------------------------------------------------------
    def _push(self, toks: List[int], lps: List[float], source) -> List[TokenEvent]:
        events = []
        for i, (t, lp) in enumerate(zip(toks, lps)):
            if self.finish:
                break
            src = source[i] if isinstance(source, list) else source
            if t in self.lm.eog:
                self.finish = "stop"
                events.append(self._event(t, "", lp, src, final=True))
                break
            self.history.append(t)
            self.tokens.append(t)
            self.sources.append(src)
            self.logprobs.append(lp)
            piece = self._utf8.decode(self.lm.piece(t))
            text, stopped = self._stop_check(piece)
            if stopped:
                self.finish = "stop"
            elif len(self.tokens) >= self.max_tokens:
                self.finish = "length"
                text += self._held + self._utf8.decode(b"", final=True)
                self._held = ""
            self.text += text
            events.append(self._event(t, text, lp, src, final=bool(self.finish)))
        return events

    def _stop_check(self, piece: str):
        """(text safe to emit now, stopped?): text that may begin a stop string is held back."""
        if not self.stops:
            return piece, False
        buf = self._held + piece
        for s in self.stops:
            k = buf.find(s)
            if k >= 0:
                self._held = ""
                return buf[:k], True
        hold = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        self._held = buf[len(buf) - hold:] if hold else ""
        return buf[:len(buf) - hold], False

    def _event(self, t, text, lp, src, final=False) -> TokenEvent:
        return TokenEvent(t, text, lp if self.want_lp else None, src, self.mode, len(self.tokens) - 1,
                          self.finish if final else None, self.degraded)

    def completion(self, elapsed_ms: float) -> Completion:
        r = self.remote
        return Completion(
            text=self.text, tokens=list(self.tokens), finish_reason=self.finish or "error", mode=self.mode,
            degraded=self.degraded, edge_tokens=self.sources.count("edge"), cloud_tokens=self.sources.count("cloud"),
            prompt_tokens=len(self.prompt), ttft_ms=self.first_ms or elapsed_ms, elapsed_ms=elapsed_ms,
            logprobs=list(self.logprobs) if self.want_lp else None, sources=list(self.sources),
            bytes_sent=r.bytes_sent if r else 0, bytes_recv=r.bytes_recv if r else 0,
            requests=r.requests if r else 0, cloud_service_ms=r.service_ms if r else 0.0,
            edge_compute_ms=self.edge_compute_ms, verifies=self.verifies, drafted=self.drafted, accepted=self.accepted_n, choice=self.choice)
