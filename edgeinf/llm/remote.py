"""The edge's side of a cloud language-model session (kind LLM over the edgeinf client).

A :class:`RemoteSession` is one answer's session on one worker. It sends only token ids
(4 bytes each): what the edge's history gained since the worker's ``n_past``. If the
worker lost the session (restart, eviction, expiry: ``SESSION``), it reopens it once with
the whole history, so the answer goes on. Anything else (down, timeout, busy, an engine
error) raises :class:`LinkDown`: the caller continues on the edge.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from ..errors import EdgeInfError
from ..transport.client import Client, Outcome, Reply
from ..transport import protocol
from ..transport.protocol import ErrorCode, Kind
from .sampling import Sampling


log = logging.getLogger("edgeinf.llm")
_CLIENT_FIELDS = 64  # ',"id":N,"client":"<16 hex>","budget_ms":N.NNN'


class LinkDown(EdgeInfError):
    """The cloud did not answer this step (the reason is the message)."""

    def __init__(self, msg: str, reply: Optional[Reply] = None):
        super().__init__(msg)
        self.reply = reply


@dataclass
class Step:
    tokens: List[int]
    logprobs: List[float]
    accepted: int
    service_ms: float
    wall_ms: float
    bytes_sent: int
    bytes_recv: int
    load: Optional[dict]

    @property
    def rtt_ms(self) -> float:
        return max(self.wall_ms - self.service_ms, 0.0)


class RemoteSession:
    def __init__(self, client: Client, model: str, sampling: Sampling = Sampling(), timeout_s: float = 2.0,
                 per_token_s: float = 0.05):
        self.client, self.model, self.sampling = client, model, sampling
        self.timeout_s, self.per_token_s = timeout_s, per_token_s
        self.id: Optional[str] = None
        self.endpoint: Optional[str] = None
        self.n_past = 0
        self.reopened = 0
        self.requests = 0
        self.bytes_sent = self.bytes_recv = 0
        self.service_ms = 0.0  # the worker's compute for this session, all replies

    # -- operations -------------------------------------------------------------------------
    def open(self, history: Sequence[int], n: int = 0, timeout_s: Optional[float] = None) -> Step:
        self.id, self.n_past, self.endpoint = None, 0, None
        return self._call("open", history, n, timeout_s=timeout_s)

    def resume_async(self, history: Sequence[int], timeout_s: float):
        """Start bringing the session up to ``history`` (the link may be back): the same
        session if the worker still has it (only the tokens it missed cross), else a new one
        with the whole history. :meth:`finish_resume` takes the Future."""
        if self.id is not None:
            meta = {"op": "step", "model": self.model, "n": 0, "session": self.id, "n_past": self.n_past,
                    "tensors": [], **self.sampling.to_meta()}
            send = list(history[self.n_past:])
        else:
            meta = {"op": "open", "model": self.model, "n": 0, "tensors": [], **self.sampling.to_meta()}
            send = list(history)
        wait = timeout_s + self.per_token_s * len(send) / 8  # the worker prefills what it missed
        return self._submit(meta, send, wait)

    def finish_resume(self, fut) -> bool:
        """True once the session holds the history again; on SESSION the next try reopens."""
        try:
            self._reply(fut.result(), "resume", time.perf_counter())
        except _Reopen:
            self.id, self.n_past, self.endpoint = None, 0, None
            self.reopened += 1
            return False
        except LinkDown as e:
            log.debug("cloud still unavailable: %s", e)
            return False
        return self.id is not None

    def forget(self) -> None:
        """Give up on the worker holding the session (dead for good): the next try opens anywhere."""
        self.id, self.n_past, self.endpoint = None, 0, None

    def step(self, history: Sequence[int], n: int) -> Step:
        return self._call("step", history, n)

    def verify(self, history: Sequence[int], drafts: Sequence[int]) -> Step:
        return self._call("verify", list(history) + list(drafts), len(drafts))

    def close(self) -> None:
        if self.id is not None:
            meta = {"op": "close", "model": self.model, "session": self.id, "n_past": self.n_past, "tensors": []}
            self._submit(meta, [], 0.5)  # fire and forget: an unclosed session expires on the worker
        self.id = None

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, op: str, history: Sequence[int], n: int, timeout_s: Optional[float] = None) -> Step:
        for attempt in range(2):
            try:
                if self.id is None and op == "step":  # (re)open and generate in one round trip
                    return self._once("open", history, n, timeout_s)
                if self.id is None and op == "verify":
                    self._once("open", history[: len(history) - n], 0, timeout_s)
                return self._once(op, history, n, timeout_s)
            except _Reopen:
                if attempt:
                    raise LinkDown("the worker lost the session twice in a row") from None
                self.id, self.n_past = None, 0
                self.reopened += 1
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, op: str, history: Sequence[int], n: int, timeout_s: Optional[float]) -> Step:
        meta = {"op": op, "model": self.model, "n": n, "tensors": [], **self.sampling.to_meta()}
        send = list(history)
        if op != "open":
            meta.update(session=self.id, n_past=self.n_past)
            send = send[self.n_past:]
        wait = (timeout_s or self.timeout_s) + self.per_token_s * (n + len(send) / 8)
        t0 = time.perf_counter()
        reply = self._submit(meta, send, wait).result(timeout=wait + 5.0)
        return self._reply(reply, op, t0)

    def _submit(self, meta: dict, tokens: List[int], timeout_s: float):
        frames = [np.asarray(tokens, np.int32)]
        meta["tensors"] = [{"name": "tokens", "dtype": "int32", "shape": [len(tokens)]}]
        self.requests += 1
        # the header frame too (the client counts tensor bytes only): 16 + metadata JSON, plus
        # the id, client and budget fields the client adds
        self.bytes_sent += protocol.HEADER.size + len(json.dumps(meta, separators=(",", ":"))) + _CLIENT_FIELDS
        return self.client.request(Kind.LLM, meta, frames, timeout=timeout_s, endpoint=self.endpoint)

    def _reply(self, reply: Reply, op: str, t0: float) -> Step:
        wall = (time.perf_counter() - t0) * 1e3
        self.bytes_sent += reply.bytes_sent
        self.bytes_recv += reply.bytes_recv
        if reply.outcome is Outcome.ERROR and reply.error_code == ErrorCode.SESSION:
            raise _Reopen()
        if reply.outcome is not Outcome.OK:
            code = reply.error_code.name if reply.error_code else ""
            raise LinkDown(f"cloud {op}: {reply.outcome.value} {code} {reply.error}".strip(), reply)
        msg = reply.message
        self.service_ms += float(msg.meta.get("service_ms", 0.0))
        arrays = msg.arrays()
        self.id = msg.meta.get("session", self.id)
        self.n_past = int(msg.meta.get("n_past", self.n_past))
        self.endpoint = reply.endpoint
        return Step(arrays["tokens"].tolist(), arrays["logprobs"].tolist(), int(msg.meta.get("accepted", 0)),
                    float(msg.meta.get("service_ms", 0.0)), wall, reply.bytes_sent, reply.bytes_recv, reply.load)


class _Reopen(Exception):
    pass
