"""A small Paranoid-Pirate / Majordomo-style broker between edge clients and workers.

Clients' DEALERs connect to the frontend ROUTER exactly as they would to a worker; workers
run ``edgeinf worker --connect BACKEND`` (a DEALER) and register by heartbeating. Frames:

    client -> broker   [client_id, header, tensors...]
    broker -> worker   [worker_id, client_id, header, tensors...]
    worker -> broker   [worker_id, client_id, header, ...]   (client_id b"": control)

Each INFER goes to the live worker with the lowest (in flight / capacity) that has room;
none with room, or the client over its own in-flight limit: BUSY from the broker at once.
A worker silent for ``dead_after`` heartbeats is dropped and its requests are sent to
another worker while their deadline allows (it is told to CANCEL them), else answered
ERROR NO_WORKER. **At most one answer per request**: the ledger remembers which workers
hold each request; the first RESULT from any of them (or the current one's ERROR/BUSY) is
delivered and the request forgotten, so a stalled worker's late copy is suppressed, as is
any reply nobody asked that worker for. No message on either side can end the broker: each
is handled under a guard and every metadata field it reads is type-checked first.
"""
from __future__ import annotations

import logging
import time
from typing import Dict, List, Optional, Tuple

import zmq

from ..errors import AuthError, ConfigError, ProtocolError
from . import _util, protocol
from ._ledger import Ledger, Request, Worker, clean_load
from .protocol import ErrorCode, Kind
from .security import ServerSecurity, check_libzmq

log = logging.getLogger("edgeinf")
WORKERS_DOMAIN = "workers"  # ZAP domain of the backend's allowlist
_ANSWERS = (Kind.RESULT, Kind.ERROR, Kind.BUSY)
_CANCEL = getattr(Kind, "CANCEL", None)


class Broker:
    """Route INFER from clients (frontend) to workers (backend); see the module docstring.

    Parameters
    ----------
    security
        CURVE for the frontend (its default allowlist: clients) and, with a ``"workers"``
        domain, the backend (workers authenticate to the broker). CURVE on the frontend
        requires it on the backend, so broker->worker traffic is never plaintext then.
    per_client
        In-flight requests one client may hold (the CURVE key, else the connection).
    max_clients
        Distinct clients with requests in flight; more get BUSY (bounds throw-away identities).
    """

    def __init__(self, frontend: str = "tcp://127.0.0.1:5555", backend: str = "tcp://127.0.0.1:5556", *,
                 heartbeat_s: float = 0.5, dead_after: int = 3, security: Optional[ServerSecurity] = None,
                 allow_plaintext: bool = False, limits: protocol.Limits = protocol.DEFAULT_LIMITS,
                 per_client: int = 8, max_clients: int = 1024, grace_s: float = 1.0):
        check_libzmq()
        domains = security.allowlists if security else {}
        self.front_curve, self.back_curve = "*" in domains, WORKERS_DOMAIN in domains
        if self.front_curve and not self.back_curve:
            raise ConfigError("CURVE on the frontend needs CURVE on the backend too (--worker-allow DIR), "
                              "else broker->worker traffic is plaintext and anyone can register as a worker")
        _util.check_plaintext(frontend, self.front_curve, allow_plaintext)
        _util.check_plaintext(backend, self.back_curve, allow_plaintext)
        self.heartbeat_s, self.dead_after, self.limits, self.grace_s = heartbeat_s, dead_after, limits, grace_s
        self.security = security
        self.workers: Dict[bytes, Worker] = {}
        self.ledger = Ledger(per_client, max_clients)
        self.stats = dict.fromkeys(("forwarded", "redispatched", "no_worker", "dead_workers", "busy", "joined",
                                    "late_dropped", "expired", "cancelled", "bad_client", "bad_worker",
                                    "auth_refused", "worker_refused", "internal_errors"), 0)
        self._stopping = False
        self.ctx = zmq.Context()
        if security:
            security.start(self.ctx)
        self.front = _util.socket(self.ctx, zmq.ROUTER, limits)
        self.back = _util.socket(self.ctx, zmq.ROUTER, limits)
        # NOTE: replies a client does not read are dropped once its pipe holds this many,
        # instead of piling up in broker memory (HWMs are soft bounds, the ledger is not)
        self.front.sndhwm = max(4 * per_client, 16)
        for s in (self.front, self.back):
            s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if self.front_curve:
            security.apply(self.front)
        if self.back_curve:
            security.apply(self.back, WORKERS_DOMAIN)
        self.front.bind(frontend)
        self.back.bind(backend)
        self.frontend = self.front.getsockopt_string(zmq.LAST_ENDPOINT)
        self.backend = self.back.getsockopt_string(zmq.LAST_ENDPOINT)

    def stop(self) -> None:
        self._stopping = True  # a flag only: safe from a signal handler

    def close(self) -> None:
        for s in (self.front, self.back):
            s.close(linger=0)
        if self.security:
            self.security.stop()
        self.ctx.term()

    def serve(self) -> None:
        """Run until :meth:`stop`; AuthError if the CURVE authenticator dies (exit, restart)."""
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.back, zmq.POLLIN)
        next_beat = 0.0
        while not self._stopping:
            events = dict(poller.poll(int(self.heartbeat_s * 1000 / 2)))
            if self.back in events:
                self._drain(self.back, self._from_worker)
            if self.front in events:
                self._drain(self.front, self._from_client)
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.heartbeat_s
                self._tick(now)

    def _tick(self, now: float) -> None:
        if self.security and not self.security.alive():
            log.error("broker: the ZAP authenticator thread died; exiting so the supervisor restarts us")
            self.security.check_alive()
        self._reap(now)
        for key in self.ledger.expired(now - self.grace_s):
            self.stats["expired"] += 1
            self._finish(key)
        for w in list(self.workers.values()):
            self._send(self.back, [w.id, b""], Kind.HEARTBEAT, {})

    def _drain(self, sock, handler) -> None:
        for _ in range(256):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                handler(frames)
            except AuthError:
                raise
            except Exception:  # noqa: BLE001 - one message must never end the broker
                self.stats["internal_errors"] += 1
                log.exception("broker: message dropped after an unexpected error")

    def _decode(self, body: list) -> protocol.Message:
        """Decode, turning any failure into ProtocolError: the input is untrusted."""
        try:
            return protocol.decode(body, self.limits)
        except ProtocolError:
            raise
        except Exception as e:  # noqa: BLE001 - a decoder bug is still this message's error
            raise protocol.BadMetadata(f"malformed message ({type(e).__name__})") from None

    # -- clients -------------------------------------------------------------------------
    def _from_client(self, frames: List[zmq.Frame]) -> None:
        client, body = frames[0].bytes, frames[1:]
        owner = client
        if self.front_curve and body:
            if not self.security.user_allowed(body[0]):
                self.stats["auth_refused"] += 1
                return self._error(client, ErrorCode.AUTH, "key not allowed")
            owner = body[0].get("User-Id").encode()  # a key's throw-away identities share its limit
        try:
            msg = self._decode(body)
            rid, budget = _request_fields(msg)
        except ProtocolError as e:
            self.stats["bad_client"] += 1
            return self._error(client, getattr(e, "code", ErrorCode.PROTOCOL), str(e))
        if msg.kind == Kind.HEARTBEAT:
            return self._send(self.front, [client], Kind.HEARTBEAT, {"load": self.load()})
        if msg.kind == Kind.HELLO:
            spread = [w.forwarded for w in self.workers.values()]
            return self._send(self.front, [client], Kind.HELLO,
                              {"load": self.load(), "stats": dict(self.stats), "spread": spread})
        if _CANCEL is not None and msg.kind == _CANCEL and rid is not None:
            return self._cancel(client, rid, body)
        if msg.kind == Kind.LLM:  # a session lives on one worker: spreading its steps would lose it
            return self._error(client, ErrorCode.PROTOCOL, "the broker does not route language-model sessions "
                               "(kind LLM): connect the generator to a worker directly (docs/llm.md)", rid)
        if msg.kind != Kind.INFER:
            return self._error(client, ErrorCode.PROTOCOL, f"unexpected {msg.kind.name}", rid)
        self._admit(client, owner, rid, budget, msg.meta.get("client"), list(body))

    def _admit(self, client: bytes, owner: bytes, rid: int, budget_ms: float, name, body: list) -> None:
        key = (client, rid)
        if key in self.ledger:
            self.stats["joined"] += 1  # a retry while the first copy runs: it gets that one answer
            return
        full = self.ledger.refuse(owner)
        if full is None and not self.workers:
            self.stats["no_worker"] += 1
            return self._error(client, ErrorCode.NO_WORKER, "no live worker", rid)
        req = Request(client, rid, owner, time.monotonic() + budget_ms / 1e3, body,
                      name if isinstance(name, str) else None)
        if full is None and not self._dispatch(key, req, need_room=True):
            full = "queue full"
        if full is not None:
            self.stats["busy"] += 1
            return self._send(self.front, [client], Kind.BUSY, {"id": rid, "reason": full, "load": self.load()})
        self.ledger.add(key, req)

    def _dispatch(self, key: Tuple[bytes, int], req: Request, need_room: bool, exclude: bytes = b"") -> bool:
        for w in sorted(self.workers.values(), key=Worker.score):
            if w.id == exclude or (need_room and w.room() <= 0):
                continue
            try:
                self.back.send_multipart([w.id, req.client, *req.body], zmq.NOBLOCK, copy=False)
            except zmq.ZMQError:
                continue  # gone or not reading: try the next one
            req.sent_to.add(w.id)
            req.current = w.id
            w.outstanding.add(key)
            w.forwarded += 1
            self.stats["forwarded"] += 1
            return True
        return False

    def _cancel(self, client: bytes, rid: int, body: list) -> None:
        req = self.ledger.get((client, rid))
        if req is None:
            return
        self.stats["cancelled"] += 1
        for wid in req.sent_to:
            self._raw(self.back, [wid, client, *body])
        self._finish((client, rid))

    # -- workers -------------------------------------------------------------------------
    def _from_worker(self, frames: List[zmq.Frame]) -> None:
        if len(frames) < 3:
            self.stats["bad_worker"] += 1
            return
        wid, client, body = frames[0].bytes, frames[1].bytes, frames[2:]
        if self.back_curve and not self.security.user_allowed(body[0], WORKERS_DOMAIN):
            self.stats["worker_refused"] += 1
            if wid in self.workers:
                self._drop(self.workers[wid], "key no longer allowed")
            return
        try:
            msg = self._decode(body)
        except ProtocolError as e:
            self.stats["bad_worker"] += 1
            log.warning("broker: malformed message from worker %s dropped: %s", wid.hex(), e)
            return
        w = self.workers.get(wid)
        if w is None and client == b"" and msg.kind in (Kind.HEARTBEAT, Kind.READY):
            log.info("broker: worker %s joined", wid.hex())
            w = self.workers[wid] = Worker(wid, time.monotonic())
        if w is not None:
            w.last_seen = time.monotonic()
            w.set_load(clean_load(msg.meta.get("load")))
        if client == b"":
            if w is not None and msg.kind == Kind.DISCONNECT:
                self._drop(w, "said goodbye")
            return
        self._answer(wid, client, msg, body)

    def _answer(self, wid: bytes, client: bytes, msg: protocol.Message, body: list) -> None:
        key = (client, msg.id)
        req = self.ledger.get(key) if type(msg.id) is int and msg.kind in _ANSWERS else None
        # a stalled worker's copy may still answer first, but only with a RESULT: its
        # ERROR (EXPIRED, say) must not pre-empt the worker now running it
        if req is None or wid not in req.sent_to or (wid != req.current and msg.kind != Kind.RESULT):
            self.stats["late_dropped"] += 1
            return
        self._finish(key)
        self._raw(self.front, [client, *body])

    def _finish(self, key) -> None:
        req = self.ledger.pop(key)
        for wid in req.sent_to if req else ():
            if wid in self.workers:
                self.workers[wid].outstanding.discard(key)

    def _reap(self, now: float) -> None:
        for w in [w for w in self.workers.values() if now - w.last_seen > self.dead_after * self.heartbeat_s]:
            self.stats["dead_workers"] += 1
            self._drop(w, f"silent for {now - w.last_seen:.1f} s")

    def _drop(self, w: Worker, why: str) -> None:
        log.warning("broker: worker %s dropped (%s); %d request(s) to re-dispatch",
                    w.id.hex(), why, len(w.outstanding))
        self.workers.pop(w.id, None)
        now = time.monotonic()
        for key in list(w.outstanding):
            req = self.ledger.get(key)
            if req is None:
                continue
            if _CANCEL is not None:  # if it ever resumes it should not run this copy
                meta = {"id": req.rid, **({"client": req.name} if req.name else {})}
                self._send(self.back, [w.id, req.client], _CANCEL, meta)
            if req.deadline > now and self._dispatch(key, req, need_room=False, exclude=w.id):
                self.stats["redispatched"] += 1
                continue
            self.stats["no_worker"] += 1
            self._finish(key)
            self._error(req.client, ErrorCode.NO_WORKER, f"worker lost ({why})", req.rid)

    def load(self) -> dict:
        loads = [w.load for w in self.workers.values()]
        total = lambda k: sum(ld.get(k, 0) for ld in loads)  # noqa: E731 (clean_load: ints only)
        return {"queue": total("queue"), "busy": total("busy"), "workers": total("workers"),
                "capacity": total("capacity"), "nodes": len(loads), "in_flight": len(self.ledger)}

    # -- sending -------------------------------------------------------------------------
    def _error(self, client: bytes, code: ErrorCode, msg: str, rid=None) -> None:
        self._send(self.front, [client], Kind.ERROR, protocol.error_meta(code, msg, rid))

    def _send(self, sock, envelope: list, kind: Kind, meta: dict) -> None:
        try:
            frames = protocol.encode(kind, meta)
        except ProtocolError:  # quoted text made it too large: say less rather than nothing
            frames = protocol.encode(Kind.ERROR, protocol.error_meta(ErrorCode.INTERNAL, "reply too large"))
        self._raw(sock, envelope + frames)

    @staticmethod
    def _raw(sock, frames: list) -> None:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as e:  # EHOSTUNREACH (gone) or EAGAIN (not reading): it falls back
            log.debug("broker: message to %r dropped: %s", frames[0], e)


def _request_fields(msg: protocol.Message) -> Tuple[Optional[int], float]:
    """(id, budget_ms), type-checked here whatever the shared schema let through."""
    rid, budget = msg.meta.get("id"), msg.meta.get("budget_ms", 0.0)
    if rid is not None and not (type(rid) is int and 0 <= rid < 2**63):
        raise protocol.BadMetadata(f"id must be a non-negative integer; got {str(rid)[:40]!r}")
    if not (type(budget) in (int, float) and 0 <= budget <= 3.6e6):
        raise protocol.BadMetadata(f"budget_ms must be a number of milliseconds; got {str(budget)[:40]!r}")
    if msg.kind == Kind.INFER and rid is None:
        raise protocol.BadMetadata("INFER needs an integer id")
    deadline = msg.meta.get("deadline")  # absolute (Unix s): time spent queued before us counts
    if type(deadline) in (int, float):
        budget = min(budget, max((deadline - time.time()) * 1e3, 0.0))
    return rid, float(budget)
