"""Worker-side language-model sessions: the KV cache stays here; the edge sends token ids.

One :class:`SessionStore` serves the worker's GGUF models. A session belongs to the
identity that opened it (the CURVE key when CURVE is on, with the client's name) and to one
model; another identity naming its id gets ``SESSION`` refused, exactly like an unknown id,
so ids cannot be probed. Each model has one llama.cpp context: the session in use is
resident in it; the others are parked as ``llama_state_seq`` bytes (about 23 kB per token
for SmolLM2) and swapped in when used. Bounded by count and bytes (least recently used
dropped first) and by idle time; a dropped session's owner gets ``SESSION`` and reopens
with its token history (the edge always holds it), so nothing is lost but the prefill.

Operations (``docs/protocol.md``, kind LLM):
``open``  tokens = the whole history; starts a session (``n`` > 0: also generate n tokens).
``step``  tokens = what the edge emitted since ``n_past``; then generate up to ``n`` tokens.
``verify`` tokens = what the edge emitted since ``n_past`` followed by ``n`` draft tokens;
          returns how many drafts the cloud accepts plus the cloud's own next token.
``close`` drops the session.
Every reply carries ``n_past``: the tokens the session's KV now holds. A request's
``n_past`` may be lower than the session's (the edge lost a reply with the link): the
session is cut back to it, since the edge's history is the truth; never higher. The edge's history
is those plus the returned tokens not yet fed (the last generated one is never fed until
the next request, so the KV never holds a token the edge may not keep).
"""
from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from .sampling import Sampler, Sampling

OPS = ("open", "step", "verify", "close")
MAX_GENERATE = 256  # tokens one step may produce


class SessionError(InputError):
    """Unknown, expired or foreign session, or ``n_past`` not what the session holds."""


@dataclass
class _Session:
    id: str
    owner: tuple
    model: str
    tokens: List[int] = field(default_factory=list)
    state: Optional[bytes] = None     # parked KV (None while resident)
    sampler: Optional[Sampler] = None
    sampling: Optional[Sampling] = None
    used: float = 0.0

    @property
    def nbytes(self) -> int:
        return len(self.state or b"") + 4 * len(self.tokens)


@dataclass
class _Served:
    model: object                  # LlamaCppModel
    lock: threading.Lock = field(default_factory=threading.Lock)
    resident: Optional[str] = None  # session id whose KV is in the context


class SessionStore:
    def __init__(self, models: Dict[str, object], max_sessions: int = 64, max_bytes: int = 512 * 2**20,
                 idle_s: float = 600.0, clock=time.monotonic):
        self.models = {name: _Served(m) for name, m in models.items()}
        self.max_sessions, self.max_bytes, self.idle_s = max_sessions, max_bytes, idle_s
        self.clock = clock
        self._sessions: "OrderedDict[str, _Session]" = OrderedDict()
        self._lock = threading.Lock()  # the table; each model's context has its own lock
        self.stats = {"opened": 0, "evicted": 0, "expired": 0, "refused": 0, "swaps": 0}

    def names(self) -> List[str]:
        return sorted(self.models)

    def describe(self) -> dict:
        with self._lock:
            return {"models": self.names(), "sessions": len(self._sessions),
                    "bytes": sum(s.nbytes for s in self._sessions.values()), **self.stats}

    # -- one request ---------------------------------------------------------------------
    def handle(self, owner: tuple, meta: dict, tokens: Sequence[int]) -> Tuple[dict, List[int], List[float]]:
        """Run one LLM operation; (reply metadata, tokens out, their logprobs). Raises
        :class:`SessionError` / ``InputError`` for the caller's mistakes."""
        op, name = meta.get("op"), meta.get("model")
        if op not in OPS:
            raise InputError(f"LLM op must be one of {OPS}; got {op!r}")
        served = self.models.get(name)
        if served is None:
            raise UnknownModel(f"no language model {name!r} here; serving {self.names()}")
        served.model.check_ids(tokens)
        n = int(meta.get("n", 0))
        if n > MAX_GENERATE:
            raise InputError(f"n is {n}; at most {MAX_GENERATE} tokens per request")
        if op == "open":
            if not tokens:
                raise InputError("open needs the history (at least one token)")
            s = self._open(owner, name, Sampling.from_meta(meta))
        else:
            s = self._get(owner, meta.get("session"), name)
            if op == "close":
                self._drop(s.id)
                return {"session": s.id, "n_past": 0}, [], []
            n_past = meta.get("n_past")
            # NOTE: the edge's history is the truth. It may know less than the session holds
            # (a reply lost with the link: the worker ran it, the edge never saw it); then the
            # session is cut back to what the edge knows. It may never know more.
            if not isinstance(n_past, int) or n_past > len(s.tokens):
                raise SessionError(f"session holds {len(s.tokens)} tokens; request assumed {n_past}")
        with served.lock:
            self._activate(served, s)
            lm = served.model
            kept = s.tokens if op == "open" else s.tokens[:n_past]
            history = kept + [int(t) for t in tokens]
            if len(history) + max(n, 1) > lm.n_ctx:
                raise InputError(f"{len(history)} tokens + {max(n, 1)} to generate exceed the worker's context "
                                 f"of {lm.n_ctx}")
            if op == "verify":
                out, lps, accepted = self._verify(lm, s, history, n)
                extra = {"accepted": accepted}
            else:
                out, lps = self._generate(lm, s, history, n)
                extra = {}
            s.tokens = list(lm.tokens)
        self._touch(s)
        return {"session": s.id, "n_past": len(s.tokens), **extra}, out, lps

    # -- generation on a resident session -------------------------------------------------
    @staticmethod
    def _generate(lm, s: _Session, history: List[int], n: int):
        if n == 0:
            lm.sync(history)
            return [], []
        logits = lm.sync(history)
        out, lps = [], []
        for i in range(n):
            t, lp = s.sampler.pick(logits)
            out.append(t)
            lps.append(lp)
            if t in lm.eog or i == n - 1:
                break
            logits = lm.feed([t])
        return out, lps

    @staticmethod
    def _verify(lm, s: _Session, history: List[int], n: int):
        """Accept the longest draft prefix the cloud would have produced itself, plus the
        cloud's next token: one batched pass over [last kept token] + pending + drafts."""
        if n < 1 or n >= len(history):
            raise InputError(f"verify needs 1..{len(history) - 1} draft tokens at the end; n={n}")
        base = len(history) - n  # tokens before the drafts
        # keep what the KV shares with the history, but re-feed at least the last token before
        # the drafts: its row predicts the first draft
        keep = min(lm.common_prefix(history), base - 1)
        lm.truncate(keep)
        rows = lm.feed(history[keep:], all_logits=True)[base - 1 - keep:]
        drafts = history[base:]
        out, lps, accepted = [], [], 0
        for j, d in enumerate(drafts):
            t, lp = s.sampler.pick(rows[j])
            if t != d:
                out.append(t)
                lps.append(lp)
                break
            out.append(t)
            lps.append(lp)
            accepted += 1
        else:
            t, lp = s.sampler.pick(rows[n])
            out.append(t)
            lps.append(lp)
        lm.truncate(base + accepted)  # rejected drafts leave the KV (exact rollback)
        return out, lps, accepted

    # -- the table -----------------------------------------------------------------------
    def _open(self, owner: tuple, name: str, sampling: Sampling) -> _Session:
        with self._lock:
            self._expire()
            s = _Session(secrets.token_hex(16), owner, name, sampler=Sampler(sampling), sampling=sampling,
                         used=self.clock())
            self._sessions[s.id] = s
            self.stats["opened"] += 1
            self._bound()
            return s

    def _get(self, owner: tuple, sid, name: str) -> _Session:
        with self._lock:
            self._expire()
            s = self._sessions.get(sid) if isinstance(sid, str) else None
            if s is None or s.owner != owner or s.model != name:
                # NOTE: a foreign id reads exactly like an unknown one: ids cannot be probed
                self.stats["refused"] += 1
                raise SessionError(f"no session {str(sid)[:40]!r} of yours for model {name!r} here "
                                   "(expired, evicted or never opened): open a new one with your history")
            return s

    def _activate(self, served: _Served, s: _Session) -> None:
        if served.resident == s.id:
            return
        lm = served.model
        with self._lock:
            old = self._sessions.get(served.resident) if served.resident else None
        if old is not None:
            old.state = lm.save()
            old.tokens = list(lm.tokens)
            self.stats["swaps"] += 1
        if s.state is not None:
            lm.restore(s.state, s.tokens, None)
            s.state = None
        else:
            lm.reset()
            s.tokens = []
        served.resident = s.id
        with self._lock:
            self._bound()

    def _touch(self, s: _Session) -> None:
        with self._lock:
            s.used = self.clock()
            if s.id in self._sessions:
                self._sessions.move_to_end(s.id)

    def _drop(self, sid: str) -> None:
        with self._lock:
            s = self._sessions.pop(sid, None)
        if s is not None:
            served = self.models[s.model]
            if served.resident == sid:
                served.resident = None  # its KV is simply overwritten by the next session

    def _expire(self) -> None:
        now = self.clock()
        for sid in [k for k, s in self._sessions.items() if now - s.used > self.idle_s]:
            self._evict(sid, "expired")

    def _bound(self) -> None:
        """Least recently used first, never the session being served right now."""
        def over():
            total = sum(s.nbytes for s in self._sessions.values())
            return len(self._sessions) > self.max_sessions or total > self.max_bytes
        for sid in list(self._sessions):
            if not over():
                break
            if any(m.resident == sid for m in self.models.values()) and len(self._sessions) > 1:
                continue
            self._evict(sid, "evicted")

    def _evict(self, sid: str, why: str) -> None:
        s = self._sessions.pop(sid, None)
        if s is None:
            return
        self.stats[why] += 1
        served = self.models.get(s.model)
        if served is not None and served.resident == sid:
            served.resident = None


class UnknownModel(InputError):
    pass


def as_tokens(arr: np.ndarray) -> List[int]:
    a = np.asarray(arr)
    if a.ndim != 1 or a.dtype not in (np.int32, np.int64):
        raise InputError(f"tokens must be a 1-D int32 tensor; got {a.dtype}{list(a.shape)}")
    return a.tolist()
