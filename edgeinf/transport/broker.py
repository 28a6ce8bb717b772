"""A small Paranoid-Pirate / Majordomo-style broker between edge clients and workers.

Clients' DEALERs connect to the frontend ROUTER exactly as they would to a worker; workers
run ``edgeinf worker --connect BACKEND`` (a DEALER) and register by heartbeating. Frames:

    client -> broker   [client_id, header, tensors...]
    broker -> worker   [worker_id, client_id, header, tensors...]
    worker -> broker   [worker_id, client_id, header, ...]   (client_id b"": control)

Each INFER goes to the live worker with the lowest (in flight / capacity). A worker silent
for ``dead_after`` heartbeats is dropped and its outstanding requests are sent to another
worker while their deadline allows (work is idempotent), else answered ERROR NO_WORKER:
every request ends in RESULT, BUSY or ERROR, or the client's own deadline fallback.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import zmq

from ..errors import ProtocolError
from . import _util, protocol
from .protocol import ErrorCode, Kind
from .security import ServerSecurity, check_libzmq

log = logging.getLogger("edgeinf")


@dataclass
class _Worker:
    id: bytes
    last_seen: float
    load: dict = field(default_factory=dict)
    forwarded: int = 0
    outstanding: Dict[Tuple[bytes, int], Tuple[float, list]] = field(default_factory=dict)

    def score(self) -> float:
        cap = max(int(self.load.get("capacity", 1) or 1), 1)
        return len(self.outstanding) / cap


class Broker:
    def __init__(self, frontend: str = "tcp://127.0.0.1:5555", backend: str = "tcp://127.0.0.1:5556", *,
                 heartbeat_s: float = 0.5, dead_after: int = 3, security: Optional[ServerSecurity] = None,
                 allow_plaintext: bool = False, limits: protocol.Limits = protocol.DEFAULT_LIMITS):
        check_libzmq()
        _util.check_plaintext(frontend, security is not None, allow_plaintext)
        _util.check_plaintext(backend, False, allow_plaintext)
        self.heartbeat_s, self.dead_after, self.limits = heartbeat_s, dead_after, limits
        self.security = security
        self.workers: Dict[bytes, _Worker] = {}
        self.stats = dict.fromkeys(("forwarded", "redispatched", "no_worker", "dead_workers"), 0)
        self._stopping = False
        self.ctx = zmq.Context()
        if security:
            security.start(self.ctx)
        self.front = _util.socket(self.ctx, zmq.ROUTER, limits)
        self.back = _util.socket(self.ctx, zmq.ROUTER, limits)
        for s in (self.front, self.back):
            s.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if security:
            security.apply(self.front)
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
                self._reap(now)
                for w in list(self.workers.values()):
                    self._send(self.back, [w.id, b""], Kind.HEARTBEAT, {})

    def _drain(self, sock, handler) -> None:
        for _ in range(256):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            handler(frames)

    # -- clients -------------------------------------------------------------------------
    def _from_client(self, frames: List[zmq.Frame]) -> None:
        client, body = frames[0].bytes, frames[1:]
        if self.security and body and not self.security.user_allowed(body[0]):
            return self._error(client, ErrorCode.AUTH, "key not allowed")
        try:
            msg = protocol.decode(body, self.limits)
        except ProtocolError as e:
            return self._send(self.front, [client], Kind.ERROR, protocol.error_meta(ErrorCode.PROTOCOL, str(e)))
        if msg.kind == Kind.HEARTBEAT:
            return self._send(self.front, [client], Kind.HEARTBEAT, {"load": self.load()})
        if msg.kind == Kind.HELLO:
            spread = [w.forwarded for w in self.workers.values()]
            return self._send(self.front, [client], Kind.HELLO,
                              {"load": self.load(), "stats": dict(self.stats), "spread": spread})
        if msg.kind != Kind.INFER:
            return self._send(self.front, [client], Kind.ERROR,
                              protocol.error_meta(ErrorCode.PROTOCOL, f"unexpected {msg.kind.name}", msg.id))
        deadline = time.monotonic() + msg.meta["budget_ms"] / 1e3
        self._dispatch(client, msg.id, deadline, list(body))

    def _dispatch(self, client: bytes, rid: int, deadline: float, body: list, exclude: bytes = b"") -> None:
        live = sorted((w for w in self.workers.values() if w.id != exclude), key=_Worker.score)
        for w in live:
            try:
                self.back.send_multipart([w.id, client, *body], zmq.NOBLOCK, copy=False)
            except zmq.ZMQError:
                continue
            w.outstanding[(client, rid)] = (deadline, body)
            w.forwarded += 1
            self.stats["forwarded"] += 1
            return
        self.stats["no_worker"] += 1
        self._error(client, ErrorCode.NO_WORKER, "no live worker", rid)

    # -- workers -------------------------------------------------------------------------
    def _from_worker(self, frames: List[zmq.Frame]) -> None:
        wid, client, body = frames[0].bytes, frames[1].bytes, frames[2:]
        w = self.workers.get(wid)
        if w is None:
            log.info("broker: worker %s joined", wid.hex())
            w = self.workers[wid] = _Worker(wid, time.monotonic())
        w.last_seen = time.monotonic()
        try:
            msg = protocol.decode(body, self.limits)
        except ProtocolError as e:
            log.warning("broker: malformed message from worker %s dropped: %s", wid.hex(), e)
            return
        if isinstance(msg.meta.get("load"), dict):
            w.load = msg.meta["load"]
        if client == b"":
            if msg.kind == Kind.DISCONNECT:
                self._drop(w, "said goodbye")
            return
        w.outstanding.pop((client, msg.id), None)
        try:
            self.front.send_multipart([client, *body], zmq.NOBLOCK, copy=False)
        except zmq.ZMQError:
            pass  # the client left; it fell back on its own

    def _reap(self, now: float) -> None:
        for w in [w for w in self.workers.values() if now - w.last_seen > self.dead_after * self.heartbeat_s]:
            self.stats["dead_workers"] += 1
            self._drop(w, f"silent for {now - w.last_seen:.1f} s")

    def _drop(self, w: _Worker, why: str) -> None:
        log.warning("broker: worker %s dropped (%s); %d request(s) re-dispatched",
                    w.id.hex(), why, len(w.outstanding))
        self.workers.pop(w.id, None)
        now = time.monotonic()
        for (client, rid), (deadline, body) in w.outstanding.items():
            if deadline > now:
                self.stats["redispatched"] += 1
                self._dispatch(client, rid, deadline, body, exclude=w.id)
            else:
                self._send(self.front, [client], Kind.ERROR,
                           protocol.error_meta(ErrorCode.NO_WORKER, f"worker lost ({why})", rid))

    def load(self) -> dict:
        loads = [w.load for w in self.workers.values()]
        total = lambda k: sum(int(ld.get(k, 0) or 0) for ld in loads)  # noqa: E731
        return {"queue": total("queue"), "busy": total("busy"), "workers": total("workers"),
                "capacity": total("capacity"), "nodes": len(loads)}

    def _error(self, client: bytes, code: ErrorCode, msg: str, rid=None) -> None:
        self._send(self.front, [client], Kind.ERROR, protocol.error_meta(code, msg, rid))

    def _send(self, sock, envelope: list, kind: Kind, meta: dict) -> None:
        try:
            sock.send_multipart(envelope + protocol.encode(kind, meta), zmq.NOBLOCK)
        except zmq.ZMQError as e:
            log.debug("broker: %s to %r dropped: %s", kind.name, envelope[0], e)
