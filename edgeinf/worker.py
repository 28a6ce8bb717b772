"""The cloud offload worker: one ROUTER socket in front of a pool of executor threads.

Lifecycle ``initialize`` (open packages, create every session once, bind, start auth) /
``serve`` (I/O loop until stopped and drained) / ``finalize`` (close everything). Only the
I/O thread touches sockets; executors take jobs from a bounded queue and hand replies back
through a Python queue plus a one-byte inproc wake-up. A failed request becomes that
request's ERROR, never the worker's death.

Admission (I/O thread, cheap): authenticated user still allowed, message well formed,
package/cut/tensors known, replay cache hit, then capacity (``workers + queue``): a full
worker answers BUSY at once. Executors drop jobs whose deadline passed (ERROR EXPIRED,
never executed). Replies are cached by (user, client id, request id) so retries run once.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import zmq

from .errors import BackendError, CodecError, ConfigError, InputError, ProtocolError
from .package import Package
from .transport import _util, protocol
from .transport.protocol import ErrorCode, Kind
from .transport.security import ServerSecurity, apply_client_curve, check_libzmq

log = logging.getLogger("edgeinf")


@dataclass
class WorkerConfig:
    bind: str = "tcp://127.0.0.1:5555"
    connect: Optional[str] = None        # broker backend endpoint: connect instead of bind
    workers: int = 2                     # executor threads
    queue: int = 8                       # admitted beyond the running ones; more get BUSY
    threads: Optional[int] = None        # intra-op threads per session
    cache_entries: int = 1024            # idempotency cache (recent replies)...
    cache_bytes: int = 64 * 2**20        # ...and the tensor bytes they may hold
    curve_secret: Optional[str] = None   # server .key_secret: enables CURVE
    allow_dir: Optional[str] = None      # client public keys allowed
    allow_plaintext: bool = False        # plaintext on a non-loopback bind
    drain_s: float = 30.0                # SIGTERM: time given to in-flight work
    heartbeat_s: float = 0.5             # broker mode: heartbeat period
    broker_key: Optional[str] = None     # broker mode: the broker's public .key (CURVE backend)...
    worker_key: Optional[str] = None     # ...and this worker's .key_secret, in the broker's --worker-allow
    limits: protocol.Limits = field(default_factory=protocol.Limits)


@dataclass
class _Graph:
    session: object
    inputs: Dict[str, object]  # name -> TensorSpec


@dataclass
class _Job:
    key: tuple
    msg: protocol.Message
    graph: _Graph
    deadline: float


class Worker:
    """Serve tails (and full models, for offload) of one or more packages."""

    def __init__(self, packages: Sequence[Package], config: WorkerConfig = WorkerConfig()):
        if not packages:
            raise ConfigError("a worker needs at least one --package")
        self.packages = {p.hash: p for p in packages}
        self.config = config
        self.stats = dict.fromkeys(("executed", "expired", "busy", "errors", "bad", "replayed", "auth_refused"), 0)
        self._graphs: Dict[tuple, _Graph] = {}
        self._jobs: "queue.Queue[Optional[_Job]]" = queue.Queue()
        self._done: "queue.SimpleQueue" = queue.SimpleQueue()
        self._pending: Dict[tuple, List[list]] = {}  # key -> envelopes waiting for it
        self._cache: "OrderedDict[tuple, tuple]" = OrderedDict()
        self._cache_nbytes = 0
        self._lock = threading.Lock()
        self._busy = 0
        self._service_ms = 0.0
        self._stopping = False
        self._threads: List[threading.Thread] = []
        self._security: Optional[ServerSecurity] = None
        self.ctx = self.front = self._wake = None
        self.endpoint = None

    # -- lifecycle ---------------------------------------------------------------------
    def initialize(self) -> "Worker":
        check_libzmq()
        cfg = self.config
        curve = bool(cfg.curve_secret or cfg.allow_dir)
        if curve and not (cfg.curve_secret and cfg.allow_dir):
            raise ConfigError("CURVE needs both --curve-secret (server key) and --allow (client keys dir)")
        if cfg.connect is None:
            _util.check_plaintext(cfg.bind, curve, cfg.allow_plaintext)
        elif curve:
            raise ConfigError("behind a broker, CURVE is configured on the broker's frontend, not on workers")
        else:
            _util.check_plaintext(cfg.connect, bool(cfg.broker_key), cfg.allow_plaintext)
        for pkg in self.packages.values():  # sessions are created once, here
            self._graphs[(pkg.hash, None)] = self._graph(pkg.session("full", threads=cfg.threads))
            for cut_id in pkg.cuts:
                self._graphs[(pkg.hash, cut_id)] = self._graph(pkg.session("tail", cut_id, threads=cfg.threads))
        self.ctx = zmq.Context()
        if curve:
            self._security = ServerSecurity(cfg.curve_secret, cfg.allow_dir)
            self._security.start(self.ctx)
        self.front = _util.socket(self.ctx, zmq.DEALER if cfg.connect else zmq.ROUTER, cfg.limits)
        if self._security:
            self._security.apply(self.front)
        if cfg.connect:
            if cfg.broker_key:  # a CURVE client of the broker's backend (set before connect)
                apply_client_curve(self.front, cfg.broker_key, cfg.worker_key)
            self.front.connect(cfg.connect)
            self.endpoint = cfg.connect
        else:
            self.front.setsockopt(zmq.ROUTER_MANDATORY, 1)  # else replies to vanished peers vanish
            self.front.bind(cfg.bind)
            self.endpoint = self.front.getsockopt_string(zmq.LAST_ENDPOINT)
        self._wake = _util.socket(self.ctx, zmq.PULL)
        self._wake.bind(f"inproc://edgeinf-worker-{id(self)}")
        for i in range(cfg.workers):
            t = threading.Thread(target=self._executor, name=f"edgeinf-exec-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("worker serving %d package(s) on %s with %d executor(s), queue %d%s",
                 len(self.packages), self.endpoint, cfg.workers, cfg.queue, ", CURVE" if curve else "")
        return self

    def stop(self) -> None:
        """Stop accepting (new requests get BUSY); serve() returns once in-flight work is done.

        Only sets a flag, so it is safe from a signal handler."""
        self._stopping = True

    def finalize(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=5)
        for s in (self.front, self._wake):
            if s is not None:
                s.close(linger=0)
        if self._security:
            self._security.stop()
        if self.ctx is not None:
            self.ctx.term()
        self.ctx = None

    def __enter__(self):
        return self.initialize()

    def __exit__(self, *exc):
        self.finalize()

    @staticmethod
    def _graph(session) -> _Graph:
        return _Graph(session, {s.name: s for s in session.inputs})

    # -- I/O loop ----------------------------------------------------------------------
    def serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        drain_until = None
        next_beat = 0.0
        while True:
            events = dict(poller.poll(100))
            if self._wake in events:
                self._flush_done()
            if self.front in events:
                for _ in range(64):  # bounded batch so replies are not starved
                    try:
                        frames = self.front.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._on_message(frames)
            if self.config.connect and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.config.heartbeat_s
                self._send([b""], Kind.HEARTBEAT, {"load": self.load()})
            if self._stopping:
                drain_until = drain_until or time.monotonic() + self.config.drain_s
                if not self._pending or time.monotonic() > drain_until:
                    break
        self._flush_done()
        if self._pending:
            log.warning("worker stopped with %d request(s) unfinished after %.0f s of draining",
                        len(self._pending), self.config.drain_s)
        if self.config.connect:
            self._send([b""], Kind.DISCONNECT, {})

    def _on_message(self, frames: List[zmq.Frame]) -> None:
        envelope, body = [bytes(frames[0].buffer)], frames[1:]
        if self.config.connect and envelope == [b""]:
            return  # broker heartbeat: nothing to answer
        user = ""
        if self._security is not None and body:
            if not self._security.user_allowed(body[0]):
                self.stats["auth_refused"] += 1
                return self._error(envelope, ErrorCode.AUTH, "client key not allowed")
            user = body[0].get("User-Id")
        try:
            msg = protocol.decode(body, self.config.limits)
        except ProtocolError as e:
            self.stats["bad"] += 1
            log.debug("malformed message from %r: %s", envelope[0], e)
            return self._error(envelope, getattr(e, "code", ErrorCode.PROTOCOL), str(e))
        if msg.kind == Kind.INFER:
            return self._admit(envelope, user, msg)
        if msg.kind == Kind.HEARTBEAT:
            return self._send(envelope, Kind.HEARTBEAT, {"load": self.load()})
        if msg.kind == Kind.HELLO:
            return self._send(envelope, Kind.HELLO, self.hello())
        self._error(envelope, ErrorCode.PROTOCOL, f"unexpected {msg.kind.name}", msg.id)

    def _admit(self, envelope: list, user: str, msg: protocol.Message) -> None:
        rid = msg.id
        key = (user, msg.meta.get("client") or envelope[0], rid)
        if key in self._cache:
            self.stats["replayed"] += 1
            kind, meta, frames, _ = self._cache[key]
            return self._send(envelope, kind, meta, frames, protocol.FLAG_CACHED)
        if key in self._pending:  # a retry while the first copy still runs: answer both once
            if envelope not in self._pending[key]:
                self._pending[key].append(envelope)
            return
        if self._stopping or len(self._pending) >= self.config.workers + self.config.queue:
            self.stats["busy"] += 1
            reason = "draining" if self._stopping else "queue full"
            return self._send(envelope, Kind.BUSY, {"id": rid, "reason": reason, "load": self.load()})
        try:
            graph = self._check(msg)
        except (ProtocolError, CodecError, InputError) as e:
            self.stats["errors"] += 1
            fallback = ErrorCode.CODEC if isinstance(e, CodecError) else ErrorCode.BAD_INPUT
            return self._error(envelope, getattr(e, "code", None) or fallback, str(e), rid)
        self._pending[key] = [envelope]
        self._jobs.put(_Job(key, msg, graph, time.monotonic() + msg.meta["budget_ms"] / 1e3))

    def _check(self, msg: protocol.Message) -> _Graph:
        pkg_hash, cut = msg.meta["pkg"], msg.meta.get("cut")
        if pkg_hash not in self.packages:
            raise _Refused(ErrorCode.UNKNOWN_PACKAGE, f"no package {pkg_hash[:16]}... here; "
                           f"serving {[h[:16] for h in self.packages]}")
        graph = self._graphs.get((pkg_hash, cut))
        if graph is None:
            cuts = sorted(self.packages[pkg_hash].cuts)
            raise _Refused(ErrorCode.UNKNOWN_CUT, f"package has no cut {cut!r}; cuts: {cuts}")
        _util.decoder(msg.codec)  # CodecError if unknown here
        given = {t.name: t for t in msg.tensors}
        if set(given) != set(graph.inputs):
            raise InputError(f"graph expects tensors {sorted(graph.inputs)}; got {sorted(given)}")
        for name, spec in graph.inputs.items():
            t = given[name]
            if t.dtype != spec.dtype.name or not spec.matches(t.shape):
                raise InputError(f"tensor {spec.describe()} was given {t.dtype}{list(t.shape)}")
        return graph

    def _send(self, envelope: list, kind: Kind, meta: dict, frames=(), flags: int = 0) -> None:
        try:
            frames = envelope + protocol.encode(kind, meta, frames, flags)
            self.front.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as e:  # EHOSTUNREACH (peer gone) or EAGAIN (peer not reading)
            log.debug("reply %s to %r dropped: %s", kind.name, envelope[0], e)

    def _error(self, envelope: list, code: ErrorCode, msg: str, rid=None) -> None:
        self._send(envelope, Kind.ERROR, protocol.error_meta(code, msg, rid))

    # -- executors -----------------------------------------------------------------------
    def _executor(self) -> None:
        wake = _util.socket(self.ctx, zmq.PUSH)
        wake.connect(f"inproc://edgeinf-worker-{id(self)}")
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                self._done.put((job.key, *self.execute(job)))
                wake.send(b"", zmq.NOBLOCK)
        finally:
            wake.close(linger=0)

    def execute(self, job: _Job) -> tuple:
        """Run one job; return (kind, meta, frames). Never raises."""
        rid = job.msg.id
        if time.monotonic() > job.deadline:
            self._count("expired")
            meta = protocol.error_meta(ErrorCode.EXPIRED, "deadline passed before it ran; not executed", rid)
            return Kind.ERROR, meta, ()
        t0 = time.perf_counter()
        with self._lock:
            self._busy += 1
        try:
            outputs = job.graph.session.run(_util.unpack(job.msg, self.config.limits))
            specs, frames = protocol.pack_raw(outputs)
            code = None
        except (ProtocolError, InputError) as e:
            code, err = ErrorCode.BAD_INPUT, e
        except CodecError as e:
            code, err = ErrorCode.CODEC, e
        except BackendError as e:
            code, err = ErrorCode.BACKEND, e
        except Exception as e:  # a bug must not kill the executor: report it on this request
            log.exception("request %s failed", rid)
            code, err = ErrorCode.INTERNAL, e
        ms = (time.perf_counter() - t0) * 1e3
        with self._lock:
            self._busy -= 1
            self._service_ms = ms if not self._service_ms else 0.8 * self._service_ms + 0.2 * ms
        if code is not None:
            self._count("errors")
            return Kind.ERROR, protocol.error_meta(code, f"{type(err).__name__}: {err}", rid), ()
        self._count("executed")
        return Kind.RESULT, {"id": rid, "tensors": specs, "service_ms": round(ms, 3)}, frames

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def _flush_done(self) -> None:
        while True:
            try:
                self._wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        while True:
            try:
                key, kind, meta, frames = self._done.get_nowait()
            except queue.Empty:
                return
            self._remember(key, kind, meta, frames)
            envelopes = self._pending.pop(key, ())
            meta["load"] = self.load()  # fresh at send time, this request no longer counted
            for envelope in envelopes:
                self._send(envelope, kind, meta, frames)

    def _remember(self, key: tuple, kind: Kind, meta: dict, frames) -> None:
        """Keep a reply for retries; oldest out first, bounded in entries and bytes."""
        nbytes = sum(memoryview(f).nbytes for f in frames)
        self._cache[key] = (kind, meta, frames, nbytes)
        self._cache_nbytes += nbytes
        cfg = self.config
        while self._cache and (len(self._cache) > cfg.cache_entries or self._cache_nbytes > cfg.cache_bytes):
            self._cache_nbytes -= self._cache.popitem(last=False)[1][3]

    # -- reports -------------------------------------------------------------------------
    def load(self) -> dict:
        with self._lock:
            busy, service = self._busy, self._service_ms
        return {"queue": max(len(self._pending) - busy, 0), "busy": busy, "workers": self.config.workers,
                "capacity": self.config.workers + self.config.queue, "service_ms": round(service, 3)}

    def hello(self) -> dict:
        cuts = {h[:16]: sorted(p.cuts) for h, p in self.packages.items()}
        return {"proto": protocol.PROTOCOL_VERSION, "pkgs": sorted(self.packages), "codecs": _util.codec_names(),
                "cuts": cuts, "load": self.load(), "stats": dict(self.stats)}


class _Refused(ProtocolError):
    def __init__(self, code: ErrorCode, msg: str):
        super().__init__(msg)
        self.code = code


