"""The cloud offload worker: one ROUTER socket in front of a pool of executor threads.

Lifecycle ``initialize`` (open packages, create every session once, bind, start auth) /
``serve`` (I/O loop until stopped and drained) / ``finalize`` (close everything). Only the
I/O thread touches sockets; executors take jobs from a bounded queue and hand replies back
through a Python queue plus a one-byte inproc wake-up.

Isolation: whatever one message holds, handling it ends in that message's ERROR (or
silence when it cannot be routed), never in the worker's death: the schema check
(``protocol.validate``) runs before any field is used, every reply is built to fit the
metadata limit, and a bug while handling one message is that message's ERROR INTERNAL.

Admission (I/O thread, cheap): authenticated user still allowed, total size, message well
formed, replay window (:mod:`edgeinf.transport.replay`), the client's own in-flight limit,
then capacity (``workers + queue``): a full worker answers BUSY at once. A request is never
started after its deadline (ERROR EXPIRED) nor after its client's CANCEL (ERROR CANCELLED).
Deadlines count from receipt minus any stall the I/O loop saw before reading it (a
SIGSTOPped worker does not run what waited in its socket buffers), or from the absolute
``deadline`` the client sent, whichever is sooner.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np
import zmq

from .errors import BackendError, CodecError, ConfigError, InputError, ProtocolError
from .llm.sessions import SessionError, UnknownModel
from .package import Package
from .transport import _util, protocol
from .transport.protocol import ErrorCode, Kind
from .transport.admission import FairQueue
from .transport.replay import ReplayWindow
from .transport.security import ServerSecurity, apply_client_curve, check_libzmq

log = logging.getLogger("edgeinf")

STATS = ("executed", "expired", "busy", "errors", "bad", "replayed", "auth_refused", "cancelled",
         "retry_refused", "client_limit", "too_large", "internal", "stalls")
CODEC_SLACK = 1 / 8       # a codec buffer may exceed its raw tensor (incompressible data, headers)...
CODEC_HEAD = 64 * 2**10   # ...by this fraction plus this many bytes


@dataclass
class WorkerConfig:
    bind: str = "tcp://127.0.0.1:5555"
    connect: Optional[str] = None        # broker backend endpoint: connect instead of bind
    workers: int = 2                     # executor threads
    queue: int = 8                       # admitted beyond the running ones; more get BUSY
    threads: Optional[int] = None        # intra-op threads per session
    cache_entries: int = 1024            # idempotency cache (recent replies)...
    cache_bytes: int = 64 * 2**20        # ...and the tensor bytes they may hold
    retry_window_s: float = 60.0         # answered ids stay known this long (retries refused, never rerun)
    per_client: Optional[int] = None     # in flight per client (CURVE key, else connection); None: = queue
    stall_s: float = 0.5                 # an I/O-loop gap longer than this counts against waiting budgets
    curve_secret: Optional[str] = None   # server .key_secret: enables CURVE
    allow_dir: Optional[str] = None      # client public keys allowed
    allow_plaintext: bool = False        # plaintext on a non-loopback bind
    drain_s: float = 30.0                # SIGTERM: time given to in-flight work
    heartbeat_s: float = 0.5             # broker mode: heartbeat period
    broker_key: Optional[str] = None     # broker mode: the broker's public .key (CURVE backend)...
    worker_key: Optional[str] = None     # ...and this worker's .key_secret, in the broker's --worker-allow
    rcvhwm: int = 4                      # messages libzmq buffers per peer before it stops reading
    llm_ctx: int = 2048                  # language models: context tokens per model
    llm_sessions: int = 64               # ...sessions kept (LRU beyond)...
    llm_session_bytes: int = 512 * 2**20  # ...their parked KV bytes in all...
    llm_idle_s: float = 600.0            # ...and how long an unused one is kept
    limits: protocol.Limits = field(default_factory=protocol.Limits)


@dataclass
class _Graph:
    session: object
    inputs: Dict[str, object]  # name -> TensorSpec


@dataclass
class _Job:
    key: tuple
    msg: protocol.Message
    graph: Optional[_Graph]     # None: an LLM operation
    deadline: float             # time.monotonic()
    owner: object               # whose in-flight budget it uses
    envelopes: List[list] = field(default_factory=list)
    cancelled: bool = False     # set by the I/O thread; checked before the job starts


class Worker:
    """Serve tails (and full models, for offload) of one or more packages."""

    def __init__(self, packages: Sequence[Package], config: WorkerConfig = WorkerConfig(),
                 llms: Optional[Dict[str, object]] = None):
        if not packages and not llms:
            raise ConfigError("a worker needs at least one --package or --llm")
        self.packages = {p.hash: p for p in packages}
        self.llm_paths = dict(llms or {})  # name -> GGUF path
        self._llm = None                   # SessionStore (initialize)
        self.config = config
        self.limits = config.limits          # narrowed to the served graphs by initialize()
        self.max_message = None              # total bytes of one message (initialize)
        self.stats = dict.fromkeys(STATS, 0)
        self._graphs: Dict[tuple, _Graph] = {}
        self._jobs = FairQueue()  # round-robin by owner: one client's backlog cannot delay the rest
        self._done: "queue.SimpleQueue" = queue.SimpleQueue()
        self._pending: Dict[tuple, _Job] = {}
        self._inflight: Dict[object, int] = {}  # owner -> admitted, not yet answered
        self._replay = ReplayWindow(config.retry_window_s, config.cache_entries, config.cache_bytes)
        self._per_client = config.per_client or max(config.queue, 1)
        self._cancels: set = set()  # keys cancelled in the batch being handled
        self._lag = 0.0  # seconds the messages now being read may have waited unseen (a stall)
        self._lock = threading.Lock()
        self._busy = 0
        self._service_ms = 0.0
        self._stopping = False
        self._threads: List[threading.Thread] = []
        self._security: Optional[ServerSecurity] = None
        self._details = True  # HELLO shows packages, cuts and counters (not on open plaintext)
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
            self._details = curve or _util.is_loopback(cfg.bind)
        elif curve:
            raise ConfigError("behind a broker, CURVE is configured on the broker's frontend, not on workers")
        else:
            _util.check_plaintext(cfg.connect, bool(cfg.broker_key), cfg.allow_plaintext)
        for pkg in self.packages.values():  # sessions are created once, here
            self._graphs[(pkg.hash, None)] = self._graph(pkg.session("full", threads=cfg.threads))
            for cut_id in pkg.cuts:
                self._graphs[(pkg.hash, cut_id)] = self._graph(pkg.session("tail", cut_id, threads=cfg.threads))
        if self.llm_paths:
            from .backends import load
            from .llm.sessions import SessionStore

            models = {name: load(path, threads=cfg.threads, n_ctx=cfg.llm_ctx) for name, path in self.llm_paths.items()}
            self._llm = SessionStore(models, cfg.llm_sessions, cfg.llm_session_bytes, cfg.llm_idle_s)
        self.limits, self.max_message = self._served_limits()
        self.ctx = zmq.Context()
        if curve:
            self._security = ServerSecurity(cfg.curve_secret, cfg.allow_dir)
            self._security.start(self.ctx)
        self.front = _util.socket(self.ctx, zmq.DEALER if cfg.connect else zmq.ROUTER, self.limits)
        # NOTE: libzmq hands over a multipart message only once all of it arrived; MAXMSGSIZE
        # bounds each frame, RCVHWM the messages buffered per peer (approximately)
        self.front.rcvhwm = cfg.rcvhwm
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
        log.info("worker serving %d package(s), %d language model(s) on %s with %d executor(s), queue %d, frames <= %d bytes%s",
                 len(self.packages), len(self.llm_paths), self.endpoint, cfg.workers, cfg.queue, self.limits.max_frame,
                 ", CURVE" if curve else "")
        return self

    def _served_limits(self):
        """Limits narrowed to what the served graphs accept: the largest input tensor (with
        codec slack) per frame and the largest input set per message, so an attacker's
        frames are refused by libzmq before they are buffered whole."""
        cap = self.config.limits
        largest, total, count = 0, 0, 0
        for g in self._graphs.values():
            specs = list(g.inputs.values())
            if not all(s.is_static for s in specs):
                return cap, None  # a dynamic dim: only the configured cap bounds a tensor
            sizes = [s.nbytes() for s in specs]
            largest, total = max(largest, max(sizes, default=0)), max(total, sum(sizes))
            count = max(count, len(specs))
        if self._llm is not None:  # a token history of the longest context, int32
            ctx = max(m.model.n_ctx for m in self._llm.models.values()) * 4
            largest, total, count = max(largest, ctx), max(total, ctx), max(count, 1)
        tensor = min(cap.max_tensor_bytes, int(largest * (1 + CODEC_SLACK)) + CODEC_HEAD)
        limits = replace(cap, max_tensor_bytes=tensor)
        return limits, int(total * (1 + CODEC_SLACK)) + CODEC_HEAD * (1 + count) + limits.max_meta

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
        last = time.monotonic()
        while True:
            events = dict(poller.poll(100))
            now = time.monotonic()
            self._stalled(now - last - 0.1)  # stopped (SIGSTOP) or starved while polling
            if self._security is not None and not self._security.alive():
                # NOTE: without its authenticator no CURVE handshake completes; exit non-zero
                # (AuthError -> exit 1) so the supervisor restarts us with a fresh one
                log.error("worker: the ZAP authenticator died; exiting so a supervisor restarts the worker")
                self._security.check_alive()
            if self._wake in events:
                self._flush_done()
            if self.front in events:
                self._read_batch()
            if self.config.connect and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.config.heartbeat_s
                self._send([b""], Kind.HEARTBEAT, {"load": self.load()})
            if self._stopping:
                drain_until = drain_until or time.monotonic() + self.config.drain_s
                if not self._pending or time.monotonic() > drain_until:
                    break
            last = time.monotonic()
            self._stalled(last - now)  # ...or while handling the last batch
        self._flush_done()
        if self._pending:
            log.warning("worker stopped with %d request(s) unfinished after %.0f s of draining",
                        len(self._pending), self.config.drain_s)
        if self.config.connect:
            self._send([b""], Kind.DISCONNECT, {})

    def _stalled(self, gap: float) -> None:
        """A gap in the I/O loop: whatever was read next may have waited that long unseen."""
        if gap > self.config.stall_s:
            self._lag = max(self._lag, gap)
            self.stats["stalls"] += 1
            log.warning("worker I/O loop stalled %.2f s; waiting requests are charged for it", gap)

    def _read_batch(self) -> None:
        """Up to 64 messages (so replies are not starved). The batch's CANCELs are known
        before any of its INFERs is admitted: a request and its cancellation that waited in
        the socket together never start."""
        batch = []
        for _ in range(64):
            try:
                batch.append(_util.recv_frames(self.front, zmq.NOBLOCK))  # recv_multipart at a third of the Python
            except zmq.Again:
                break
        late, self._lag = self._lag, (self._lag if len(batch) == 64 else 0.0)  # backlog read: lag over
        parsed = [self._isolated([[bytes(f[0].buffer)]], self._parse, f) for f in batch]
        self._cancels = {self._key(*p) for p in parsed if p is not None and p[2].kind == Kind.CANCEL}
        for p in parsed:
            if p is not None:
                self._isolated([p[0]], self._cancel if p[2].kind == Kind.CANCEL else self._dispatch, *p, late)
        self._cancels = set()

    def _isolated(self, envelopes: List[list], fn, *args):
        """Run one message's handler; a bug becomes ERROR INTERNAL to ``envelopes``, nothing more."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - no message may end the worker
            self.stats["internal"] += 1
            log.exception("internal error handling a message")
            for envelope in envelopes:
                self._error(envelope, ErrorCode.INTERNAL, f"{type(e).__name__} while handling the message")
            return None

    def _parse(self, frames: List[zmq.Frame]):
        """(envelope, user, message), or None once an ERROR was sent (or nothing can be)."""
        envelope, body = [bytes(frames[0].buffer)], frames[1:]
        if self.config.connect and envelope == [b""]:
            return None  # broker heartbeat: nothing to answer
        user = ""
        if self._security is not None and body:
            if not self._security.user_allowed(body[0]):
                self.stats["auth_refused"] += 1
                return self._error(envelope, ErrorCode.AUTH, "client key not allowed")
            user = body[0].get("User-Id")
        if self.max_message is not None:
            total = sum(len(f) for f in body)
            if total > self.max_message:
                self.stats["too_large"] += 1
                return self._error(envelope, ErrorCode.PROTOCOL,
                                   f"message is {total} bytes; this worker accepts at most {self.max_message}")
        try:
            msg = protocol.decode(body, self.limits)
        except ProtocolError as e:
            self.stats["bad"] += 1
            log.debug("malformed message from %r: %s", envelope[0], e)
            return self._error(envelope, getattr(e, "code", ErrorCode.PROTOCOL), str(e))
        return envelope, user, msg

    def _dispatch(self, envelope: list, user: str, msg: protocol.Message, late: float) -> None:
        if msg.kind in (Kind.INFER, Kind.LLM):
            return self._admit(envelope, user, msg, late)
        if msg.kind == Kind.HEARTBEAT:
            return self._send(envelope, Kind.HEARTBEAT, {"load": self.load()})
        if msg.kind == Kind.HELLO:
            rid = {"id": msg.id} if msg.id is not None else {}  # a request()'s HELLO: answer by id
            return self._send(envelope, Kind.HELLO, {**self.hello(user), **rid})
        self._error(envelope, ErrorCode.PROTOCOL, f"unexpected {msg.kind.name}", msg.id)

    def _key(self, envelope: list, user: str, msg: protocol.Message) -> tuple:
        return user, msg.meta.get("client") or envelope[0], msg.id

    def _cancel(self, envelope: list, user: str, msg: protocol.Message, _late: float = 0.0) -> None:
        """CANCEL: the client ran it elsewhere. Not answered; the INFER gets ERROR CANCELLED
        if it had not started (only the same client, the same key, can cancel). One read in
        the same batch as its INFER (both waited in the socket) stops it at admission."""
        job = self._pending.get(self._key(envelope, user, msg))
        if job is not None:
            job.cancelled = True

    def _admit(self, envelope: list, user: str, msg: protocol.Message, late: float) -> None:
        rid, key = msg.id, self._key(envelope, user, msg)
        state, reply = self._replay.lookup(key)
        if state == "cached":
            self.stats["replayed"] += 1
            kind, meta, frames = reply
            return self._send(envelope, kind, meta, frames, protocol.FLAG_CACHED)
        if state == "refused":
            self.stats["retry_refused"] += 1
            return self._error(envelope, ErrorCode.RETRY_WINDOW, "this request id was answered before and its "
                               "answer is no longer kept; not run twice", rid)
        if key in self._cancels:
            self.stats["cancelled"] += 1
            return self._error(envelope, ErrorCode.CANCELLED, "cancelled by the client; not executed", rid)
        job = self._pending.get(key)
        if job is not None:  # a retry while the first copy waits or runs: answer both once
            if envelope not in job.envelopes:
                job.envelopes.append(envelope)
            return
        owner = user or envelope[0]  # CURVE: every connection of one key shares its budget
        if self._stopping or len(self._pending) >= self.config.workers + self.config.queue:
            return self._busy_reply(envelope, rid, "draining" if self._stopping else "queue full")
        if self._inflight.get(owner, 0) >= self._per_client:
            self.stats["client_limit"] += 1
            return self._busy_reply(envelope, rid, "client limit")
        deadline = self._deadline(msg, late)
        if time.monotonic() > deadline:
            self.stats["expired"] += 1
            return self._error(envelope, ErrorCode.EXPIRED, "deadline passed before it could start; not executed", rid)
        try:
            graph = self._check(msg) if msg.kind == Kind.INFER else self._check_llm(msg)
        except (ProtocolError, CodecError, InputError) as e:
            self.stats["errors"] += 1
            fallback = ErrorCode.CODEC if isinstance(e, CodecError) else ErrorCode.BAD_INPUT
            return self._error(envelope, getattr(e, "code", None) or fallback, str(e), rid)
        job = self._pending[key] = _Job(key, msg, graph, deadline, owner, [envelope])
        self._inflight[owner] = self._inflight.get(owner, 0) + 1
        self._jobs.put(job, owner)

    def _busy_reply(self, envelope: list, rid: int, reason: str) -> None:
        self.stats["busy"] += 1
        self._send(envelope, Kind.BUSY, {"id": rid, "reason": reason, "load": self.load()})

    @staticmethod
    def _deadline(msg: protocol.Message, late: float) -> float:
        """The sooner of receipt + budget (minus a stall seen before reading it) and the
        absolute ``deadline`` the client sent (Unix time; meaningful with synchronised clocks)."""
        now = time.monotonic()
        deadline = now + msg.meta["budget_ms"] / 1e3 - late
        if "deadline" in msg.meta:
            deadline = min(deadline, now + msg.meta["deadline"] - time.time())
        return deadline

    def _check(self, msg: protocol.Message) -> _Graph:
        pkg_hash, cut = msg.meta["pkg"], msg.meta.get("cut")
        if pkg_hash not in self.packages:
            raise _Refused(ErrorCode.UNKNOWN_PACKAGE, f"no package {pkg_hash[:16]!r}... here; "
                           f"serving {[h[:16] for h in self.packages]}")
        graph = self._graphs.get((pkg_hash, cut))
        if graph is None:
            cuts = sorted(self.packages[pkg_hash].cuts)
            raise _Refused(ErrorCode.UNKNOWN_CUT, f"package has no cut {protocol._quote(cut)}; cuts: {cuts}")
        _util.decoder(msg.codec)  # CodecError if unknown here
        given = {t.name: t for t in msg.tensors}
        if set(given) != set(graph.inputs):
            raise InputError(f"graph expects tensors {sorted(graph.inputs)}; got {protocol._quote(sorted(given), 200)}")
        for name, spec in graph.inputs.items():
            t = given[name]
            if t.dtype != spec.dtype.name or not spec.matches(t.shape):
                raise InputError(f"tensor {spec.describe()} was given {t.dtype}{list(t.shape)}")
        return graph

    def _check_llm(self, msg: protocol.Message) -> None:
        if self._llm is None or msg.meta["model"] not in self._llm.models:
            served = self._llm.names() if self._llm else []
            raise _Refused(ErrorCode.UNKNOWN_MODEL, f"no language model {protocol._quote(msg.meta['model'])} here; "
                           f"serving {served}")
        if len(msg.tensors) != 1 or msg.tensors[0].name != "tokens" or msg.tensors[0].dtype != "int32" \
                or len(msg.tensors[0].shape) != 1 or msg.codecs and msg.codecs[0] != "raw":
            raise InputError("an LLM request carries one raw int32 1-D tensor named 'tokens'; got "
                             + protocol._quote([t.to_dict() for t in msg.tensors], 200))
        return None

    def _send(self, envelope: list, kind: Kind, meta: dict, frames=(), flags: int = 0) -> None:
        try:
            body = protocol.encode(kind, meta, frames, flags)
        except (ProtocolError, ValueError, TypeError) as e:  # a reply we built does not fit: a bug
            self.stats["internal"] += 1
            log.error("%s reply could not be encoded (%s); sending ERROR INTERNAL", kind.name, e)
            rid = meta.get("id") if isinstance(meta, dict) else None
            body = protocol.encode(Kind.ERROR, protocol.error_meta(ErrorCode.INTERNAL, "reply too large", rid))
        try:
            _util.send_frames(self.front, envelope + body, zmq.NOBLOCK)
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
                self._done.put((job, *self.execute(job)))
                wake.send(b"", zmq.NOBLOCK)
        finally:
            wake.close(linger=0)

    def execute(self, job: _Job) -> tuple:
        """Run one job; return (kind, meta, frames). Never raises."""
        rid = job.msg.id
        if job.cancelled:
            self._count("cancelled")
            return Kind.ERROR, protocol.error_meta(ErrorCode.CANCELLED, "cancelled by the client; not executed", rid), ()
        if time.monotonic() > job.deadline:
            self._count("expired")
            meta = protocol.error_meta(ErrorCode.EXPIRED, "deadline passed before it ran; not executed", rid)
            return Kind.ERROR, meta, ()
        t0 = time.perf_counter()
        with self._lock:
            self._busy += 1
        extra = {}
        try:
            if job.graph is None:
                extra, outputs = self._run_llm(job)
            else:
                outputs = job.graph.session.run(_util.unpack(job.msg, self.limits))
            specs, frames = protocol.pack_raw(outputs)
            code = None
        except SessionError as e:
            code, err = ErrorCode.SESSION, e
        except UnknownModel as e:
            code, err = ErrorCode.UNKNOWN_MODEL, e
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
        return Kind.RESULT, {"id": rid, "tensors": specs, "service_ms": round(ms, 3), **extra}, frames

    def _run_llm(self, job: _Job):
        """One session operation; the session belongs to (CURVE user, client name)."""
        tokens = _util.unpack(job.msg, self.limits)["tokens"].tolist()
        owner = (job.key[0], job.key[1])
        meta, out, lps = self._llm.handle(owner, job.msg.meta, tokens)
        return meta, {"tokens": np.asarray(out, np.int32), "logprobs": np.asarray(lps, np.float32)}

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
                job, kind, meta, frames = self._done.get_nowait()
            except queue.Empty:
                return
            self._isolated(job.envelopes, self._answer, job, kind, meta, frames)

    def _answer(self, job: _Job, kind: Kind, meta: dict, frames) -> None:
        self._pending.pop(job.key, None)
        left = self._inflight.pop(job.owner, 1) - 1
        if left > 0:
            self._inflight[job.owner] = left
        self._replay.remember(job.key, (kind, meta, frames), sum(memoryview(f).nbytes for f in frames))
        meta["load"] = self.load()  # fresh at send time, this request no longer counted
        for envelope in job.envelopes:
            self._send(envelope, kind, meta, frames)

    # -- reports -------------------------------------------------------------------------
    def load(self) -> dict:
        with self._lock:
            busy, service = self._busy, self._service_ms
        return {"queue": max(len(self._pending) - busy, 0), "busy": busy, "workers": self.config.workers,
                "capacity": self.config.workers + self.config.queue, "service_ms": round(service, 3)}

    def hello(self, user: str = "") -> dict:
        """HELLO reply. Package hashes, cuts and counters go only to peers that are
        authenticated (CURVE on) or trusted by the bind (loopback, broker backend); an open
        plaintext bind (``--allow-plaintext``) shows protocol, codecs and load only."""
        out = {"proto": protocol.PROTOCOL_VERSION, "codecs": _util.codec_names(), "load": self.load()}
        if self._llm is not None:
            out["models"] = self._llm.names()
        if (self._security is not None and user) or (self._security is None and self._details):
            out.update(pkgs=sorted(self.packages), cuts={h[:16]: sorted(p.cuts) for h, p in self.packages.items()},
                       stats=dict(self.stats))
        return out


class _Refused(ProtocolError):
    def __init__(self, code: ErrorCode, msg: str):
        super().__init__(msg)
        self.code = code
