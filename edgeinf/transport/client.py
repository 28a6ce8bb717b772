"""The edge client: DEALER sockets to one or more servers, every request ending in an Outcome.

One background I/O thread owns every socket (zmq sockets are not thread-safe); callers
submit from any thread and wait on a Future. Each request has an id and a deadline and
ends exactly once: OK, BUSY, TIMEOUT, ERROR(code), AUTH_FAILED or DOWN. Anything but OK
means "run it locally" to the runtime. Late replies (for requests already finished) are
counted and discarded, never delivered twice.

Failure detection, fastest first: a send with no live connection (``IMMEDIATE``) fails at
once; the socket monitor reports a disconnect (``kill -9``: the kernel resets the TCP
connection) or a refused CURVE handshake; heartbeats unanswered for ``dead_after`` periods
(a hung or SIGSTOPped server). A failing endpoint is marked down for ``backoff_s``.
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import secrets
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, List, Optional, Sequence, Union

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..errors import ConfigError, ProtocolError
from . import _util, protocol
from .protocol import ErrorCode, Kind
from .security import apply_client_curve

log = logging.getLogger("edgeinf")

_AUTH_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
_EVENTS = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
for _e in _AUTH_EVENTS:
    _EVENTS |= _e


class Outcome(Enum):
    OK = "ok"
    BUSY = "busy"
    TIMEOUT = "timeout"
    ERROR = "error"
    AUTH_FAILED = "auth_failed"
    DOWN = "down"


@dataclass
class Reply:
    """How one request ended. ``message`` holds the RESULT (tensor frames are views)."""

    outcome: Outcome
    id: int
    endpoint: Optional[str] = None
    message: Optional[protocol.Message] = None
    error_code: Optional[ErrorCode] = None
    error: str = ""
    bytes_sent: int = 0
    bytes_recv: int = 0
    load: Optional[dict] = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@dataclass
class _Endpoint:
    url: str
    sock: zmq.Socket
    mon: zmq.Socket
    load: dict = field(default_factory=dict)
    down_until: float = 0.0
    auth_failed: bool = False
    connected: bool = True
    inflight: int = 0
    hb_since: Optional[float] = None  # first unanswered heartbeat
    last_recv: float = 0.0

    def usable(self, now: float) -> bool:
        return now >= self.down_until

    def score(self) -> tuple:
        ld = self.load
        workers = max(int(ld.get("workers", 1) or 1), 1)
        return ((ld.get("queue", 0) + ld.get("busy", 0) + self.inflight) / workers, ld.get("service_ms", 0.0))


@dataclass
class _Request:
    id: int
    frames: list
    meta: dict
    deadline: float
    future: Future
    nbytes: int
    tried: List[str] = field(default_factory=list)
    endpoint: Optional[_Endpoint] = None
    kind: Kind = Kind.INFER
    pin: Optional[str] = None  # only this endpoint (a session lives there); no retry elsewhere


class Client:
    """Send INFER requests to the least-loaded live endpoint; never raise for a peer failure.

    Parameters
    ----------
    endpoints : one URL or a list, e.g. ``"tcp://10.0.0.2:5555"``.
    server_key, client_key : CURVE: the server's public key file and this client's
        ``.key_secret`` file (both or neither).
    heartbeat_s, dead_after : heartbeat period; an endpoint silent for ``dead_after``
        periods while pinged is down. Keep ``heartbeat_s * dead_after`` above the time the
        largest tensor takes on the slowest link.
    backoff_s : how long a failed endpoint stays down; ``auth_backoff_s`` after a refused key.
    """

    def __init__(self, endpoints: Union[str, Sequence[str]], *, server_key=None, client_key=None,
                 heartbeat_s: float = 0.5, dead_after: int = 3, backoff_s: float = 2.0,
                 auth_backoff_s: float = 30.0, limits: protocol.Limits = protocol.DEFAULT_LIMITS):
        urls = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not urls:
            raise ConfigError("Client needs at least one endpoint")
        if bool(server_key) != bool(client_key):
            raise ConfigError("CURVE needs both server_key (server public key file) and client_key (.key_secret)")
        self.name = secrets.token_hex(8)  # idempotency scope for our request ids
        self.heartbeat_s, self.dead_after, self.backoff_s = heartbeat_s, dead_after, backoff_s
        self.auth_backoff_s, self.limits = auth_backoff_s, limits
        self.late = 0  # replies that arrived after their request had ended
        self._ids = itertools.count(1)
        self._cmds: "queue.SimpleQueue" = queue.SimpleQueue()
        self._pending: Dict[int, _Request] = {}
        self._closed = False
        self._ready = threading.Event()
        self.ctx = zmq.Context()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self.endpoints = [self._open(u, server_key, client_key) for u in urls]
        self._thread = threading.Thread(target=self._loop, name="edgeinf-client", daemon=True)
        self._thread.start()

    def _open(self, url: str, server_key, client_key) -> _Endpoint:
        s = _util.socket(self.ctx, zmq.DEALER, self.limits)
        s.setsockopt(zmq.IMMEDIATE, 1)  # no queueing towards a dead peer: sends fail fast
        s.setsockopt(zmq.RECONNECT_IVL, 100)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        if server_key:
            apply_client_curve(s, server_key, client_key)
        mon = s.get_monitor_socket(_EVENTS)
        s.connect(url)
        return _Endpoint(url, s, mon)

    # -- public API ----------------------------------------------------------------------
    def submit(self, pkg: str, cut: Optional[str], tensors: List[dict], frames: list, *,
               codec: str = "raw", timeout: float = 1.0, request_id: Optional[int] = None) -> Future:
        """Send one INFER; the Future resolves to a :class:`Reply` by ``timeout`` seconds."""
        rid = next(self._ids) if request_id is None else request_id
        meta = {"id": rid, "client": self.name, "pkg": pkg, "codec": codec, "tensors": tensors}
        if cut is not None:  # offload: no "cut" is the same as null (docs/protocol.md), and keeps the fast encoder
            meta["cut"] = cut
        return self._enqueue(_Request(rid, list(frames), meta, time.monotonic() + timeout, Future(),
                                      sum(memoryview(f).nbytes for f in frames)))

    def request(self, kind: Kind, meta: dict, frames: list = (), *, timeout: float = 1.0,
                endpoint: Optional[str] = None) -> Future:
        """Send one request of ``kind`` (INFER, LLM) with ``meta`` (``id``, ``client`` and
        ``budget_ms`` are filled in); ``endpoint`` pins it to one server (no retry elsewhere).
        The Future resolves to a :class:`Reply` by ``timeout`` seconds."""
        rid = next(self._ids)
        meta = {**meta, "id": rid, "client": self.name}
        return self._enqueue(_Request(rid, list(frames), meta, time.monotonic() + timeout, Future(),
                                      sum(memoryview(f).nbytes for f in frames), kind=kind, pin=endpoint))

    def _enqueue(self, req: _Request) -> Future:
        if self._closed:
            req.future.set_result(Reply(Outcome.DOWN, req.id, error="client closed"))
            return req.future
        self._cmds.put(req)
        os.write(self._wake_w, b"x")
        return req.future

    def infer(self, pkg: str, cut: Optional[str], tensors: List[dict], frames: list, **kw) -> Reply:
        fut = self.submit(pkg, cut, tensors, frames, **kw)
        return fut.result(timeout=kw.get("timeout", 1.0) + 5.0)  # the I/O thread ends it by its deadline

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Wait until some endpoint has answered a heartbeat."""
        return self._ready.wait(timeout)

    def status(self) -> List[dict]:
        now = time.monotonic()
        return [{"endpoint": e.url, "up": e.usable(now), "auth_failed": e.auth_failed, "load": dict(e.load),
                 "inflight": e.inflight} for e in self.endpoints]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cmds.put(None)
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- I/O thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        for e in self.endpoints:
            poller.register(e.sock, zmq.POLLIN)
            poller.register(e.mon, zmq.POLLIN)
        next_beat = 0.0
        try:
            while True:
                now = time.monotonic()
                wait = min([next_beat - now] + [r.deadline - now for r in self._pending.values()])
                events = dict(poller.poll(max(0, min(wait, self.heartbeat_s)) * 1000))
                if self._wake_r in events and not self._drain_commands():
                    break
                for e in self.endpoints:
                    if e.mon in events:
                        self._on_monitor(e)
                    if e.sock in events:
                        self._on_replies(e)
                now = time.monotonic()
                self._expire(now)
                if now >= next_beat:
                    next_beat = now + self.heartbeat_s
                    self._heartbeat(now)
        finally:
            for r in list(self._pending.values()):
                self._finish(r, Reply(Outcome.DOWN, r.id, error="client closed"))
            for e in self.endpoints:
                e.sock.disable_monitor()
                e.mon.close(linger=0)
                e.sock.close(linger=0)

    def _drain_commands(self) -> bool:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        while True:
            try:
                req = self._cmds.get_nowait()
            except queue.Empty:
                return True
            if req is None:
                return False
            self._dispatch(req)

    def _dispatch(self, req: _Request) -> None:
        now = time.monotonic()
        usable = (e for e in self.endpoints if e.usable(now) and e.url not in req.tried
                  and (req.pin is None or e.url == req.pin))
        cands = sorted(usable, key=_Endpoint.score)
        for e in cands:
            req.meta["budget_ms"] = round(max(req.deadline - now, 0.0) * 1e3, 3)
            try:
                _util.send_frames(e.sock, protocol.encode(req.kind, req.meta, req.frames), zmq.NOBLOCK)
            except zmq.Again:  # no completed connection (IMMEDIATE): try the next one
                req.tried.append(e.url)
                continue
            req.tried.append(e.url)
            req.endpoint, e.inflight = e, e.inflight + 1
            self._pending[req.id] = req
            e.hb_since = e.hb_since or now  # expect to hear from it
            return
        down = [e for e in self.endpoints if e.auth_failed]
        outcome = Outcome.AUTH_FAILED if down and len(down) == len(self.endpoints) else Outcome.DOWN
        self._finish(req, Reply(outcome, req.id, error=f"no live endpoint (tried {req.tried or 'none usable'})"))

    def _on_replies(self, e: _Endpoint) -> None:
        while True:
            try:
                frames = _util.recv_frames(e.sock, zmq.NOBLOCK)
            except zmq.Again:
                return
            self._on_reply(e, frames)
            # NOTE: asking EVENTS costs half of the zmq.Again that one more recv would raise
            if not e.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return

    def _on_reply(self, e: _Endpoint, frames: list) -> None:
        e.last_recv, e.hb_since = time.monotonic(), None
        try:
            msg = protocol.decode(frames, self.limits)
        except ProtocolError as err:
            log.warning("malformed reply from %s dropped: %s", e.url, err)
            return
        if isinstance(msg.meta.get("load"), dict):
            e.load = msg.meta["load"]
        if msg.kind in (Kind.HEARTBEAT, Kind.HELLO, Kind.LOAD):
            self._ready.set()
            if not (msg.kind == Kind.HELLO and msg.id in self._pending):
                return  # a HELLO with the id of a request() is that request's answer
        self._on_answer(e, msg, sum(len(f) for f in frames))

    def _on_answer(self, e: _Endpoint, msg: protocol.Message, nbytes: int) -> None:
        req = self._pending.get(msg.id) if msg.id is not None else None
        if req is None or req.endpoint is not e:
            if msg.kind == Kind.ERROR and msg.meta.get("code") == ErrorCode.AUTH:
                self._auth_failed(e, "server refused our key")
            elif msg.id is not None:
                self.late += 1  # finished already (timeout/fallback): never deliver twice
            return
        base = dict(id=req.id, endpoint=e.url, bytes_sent=req.nbytes, bytes_recv=nbytes, load=e.load or None)
        if msg.kind in (Kind.RESULT, Kind.HELLO):
            cached = bool(msg.flags & protocol.FLAG_CACHED)
            self._finish(req, Reply(Outcome.OK, message=msg, cached=cached, **base))
        elif msg.kind == Kind.BUSY:
            self._retry_or_finish(req, Reply(Outcome.BUSY, error=msg.meta.get("reason", "busy"), **base))
        elif msg.kind == Kind.ERROR:
            code = _code(msg.meta.get("code"))
            if code == ErrorCode.AUTH:
                self._auth_failed(e, msg.meta.get("msg", ""))
                outcome = Outcome.AUTH_FAILED
            else:
                outcome = Outcome.ERROR
            self._finish(req, Reply(outcome, error_code=code, error=msg.meta.get("msg", ""), **base))

    def _retry_or_finish(self, req: _Request, reply: Reply) -> None:
        """BUSY here: try a usable endpoint not tried yet, else report BUSY."""
        self._release(req)
        now = time.monotonic()
        if now < req.deadline and any(e.usable(now) and e.url not in req.tried for e in self.endpoints):
            return self._dispatch(req)
        self._finish(req, reply)

    def _finish(self, req: _Request, reply: Reply) -> None:
        self._release(req)
        if not req.future.done():
            req.future.set_result(reply)

    def _release(self, req: _Request) -> None:
        if self._pending.pop(req.id, None) is not None and req.endpoint is not None:
            req.endpoint.inflight -= 1

    def _on_monitor(self, e: _Endpoint) -> None:
        while True:
            try:
                ev = recv_monitor_message(e.mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            if ev["event"] in _AUTH_EVENTS:
                self._auth_failed(e, f"handshake refused (event {ev['event']})")
            elif ev["event"] == zmq.EVENT_DISCONNECTED:
                self._mark_down(e, "disconnected", self.backoff_s)
            elif ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                e.auth_failed = False

    def _auth_failed(self, e: _Endpoint, why: str) -> None:
        if not e.auth_failed:
            log.warning("edgeinf: %s refused authentication (%s); running locally for %.0f s",
                        e.url, why, self.auth_backoff_s)
        e.auth_failed = True
        if e.connected:  # stop the silent reconnect-and-fail loop until the back-off ends
            e.sock.disconnect(e.url)
            e.connected = False
        self._mark_down(e, "auth failed", self.auth_backoff_s, Outcome.AUTH_FAILED)

    def _mark_down(self, e: _Endpoint, why: str, backoff: float, outcome: Outcome = Outcome.DOWN) -> None:
        now = time.monotonic()
        if now >= e.down_until:
            log.info("endpoint %s down for %.1f s: %s", e.url, backoff, why)
        e.down_until = max(e.down_until, now + backoff)
        e.hb_since, e.load = None, {}
        for r in [r for r in self._pending.values() if r.endpoint is e]:
            self._finish(r, Reply(outcome, r.id, endpoint=e.url, error=why, bytes_sent=r.nbytes))

    def _expire(self, now: float) -> None:
        for r in [r for r in self._pending.values() if now >= r.deadline]:
            if r.endpoint is not None:  # tell the server: a queued copy is dropped, not run late
                try:
                    r.endpoint.sock.send_multipart(protocol.encode(Kind.CANCEL, {"id": r.id, "client": self.name}),
                                                   zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass  # not connected: nothing queued there to cancel
            self._finish(r, Reply(Outcome.TIMEOUT, r.id, endpoint=r.endpoint.url if r.endpoint else None,
                                  error="no answer by the deadline", bytes_sent=r.nbytes))

    def _heartbeat(self, now: float) -> None:
        for e in self.endpoints:
            if not e.connected and now >= e.down_until:  # back-off over: try the handshake again
                e.sock.connect(e.url)
                e.connected = True
            if e.hb_since is not None and now - e.hb_since > self.dead_after * self.heartbeat_s:
                self._mark_down(e, f"no answer for {now - e.hb_since:.1f} s", self.backoff_s)
                continue
            try:
                e.sock.send_multipart(protocol.encode(Kind.HEARTBEAT, {}), zmq.NOBLOCK)
            except zmq.Again:
                continue  # not connected: nothing to wait for
            e.hb_since = e.hb_since or now


def _code(v) -> Optional[ErrorCode]:
    try:
        return ErrorCode(v)
    except ValueError:
        return None
