"""The ZeroMQ front of a Ray Serve deployment: devices see an ordinary edgeinf worker.

:class:`RayFront` *is* a :class:`edgeinf.worker.Worker` (same ROUTER socket, parsing and
bounds, CURVE with revocation, replay window, per-client limits, fair queue, BUSY,
deadlines, CANCEL, HELLO) whose graphs and language-model sessions execute on Ray Serve
replicas instead of in-process: only the last step of a request changes. Its executor
threads wait on deployment handles (cheap), so their number is the concurrency the front
puts on Ray: ``max_replicas x max_ongoing``.

Failures. A replica that dies (kill -9, a lost node) fails its requests with Ray's
``ActorDiedError``; the front sends a graph request again (Ray has already dropped the dead
replica from routing) while its deadline lasts, at most :data:`RETRIES` times. A tail is a
pure function and its first run's answer never left the dead process, so the device still
gets exactly one answer (the worker's pending table answers each request once). A
language-model step is not retried: the session died with its replica, the front answers
SESSION and the edge reopens on another replica from its token history. Ray restarts the
replica (its deployment keeps its replica count).

LOAD reports aggregate the replicas: ``workers`` = requests the running replicas execute at
once (``replicas`` x ``slots``), ``capacity`` = what they take (``replicas`` x
``max_ongoing``) plus the front's queue, ``service_ms`` = the replicas' own execution time
(a moving mean), ``replicas`` = their count.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Dict, Optional, Sequence

from ..errors import BackendError, ConfigError, EdgeInfError
from ..llm.sessions import SessionError
from ..worker import Worker, WorkerConfig
from .cluster import LLMS, TAILS, Cluster
from .policy import Scaling

log = logging.getLogger("edgeinf")

RETRIES = 3  # sends of one graph request after replica deaths


@dataclass(frozen=True)
class ScaleConfig:
    tails: Scaling = Scaling()
    llm: Scaling = Scaling(1, 1)
    # requests Ray hands one tail replica at once (max_ongoing_requests), of which ``slots`` run
    # and the rest wait there with their arguments transferred. NOTE: deep on purpose: a replica
    # at its limit makes Ray's router bounce requests (extra RPCs); measured on 2 cores, 8 instead
    # of 2 cut the front's CPU per request from 7.4 to 5.0 ms with 2 replicas (docs/scale.md)
    max_ongoing: int = 8
    slots: int = 1
    llm_max_ongoing: int = 4
    replica_cpus: float = 1.0     # Ray CPUs per replica: with num_cpus = cores, at most cores replicas
    threads: Optional[int] = 1    # intra-op threads per replica session


class _RemotePackage:
    """What the worker needs of a package (hash, cuts, input specs), with sessions that run on Ray."""

    def __init__(self, pkg, front: "RayFront"):
        self.pkg, self.front = pkg, front
        self.hash, self.name, self.cuts, self.root = pkg.hash, pkg.name, pkg.cuts, pkg.root

    def session(self, role: str = "full", cut_id: Optional[str] = None, **_):
        inputs = self.pkg.inputs if role == "full" else self.pkg.cut(cut_id).tensors
        return _RemoteGraph(self.front, self.hash, None if role == "full" else cut_id, inputs)


@dataclass
class _RemoteGraph:
    front: "RayFront"
    pkg: str
    cut: Optional[str]
    inputs: list

    def run(self, inputs):
        return self.front._run_graph(self.pkg, self.cut, inputs)


class _RemoteSessions:
    """The worker's SessionStore seam (``models``, ``names``, ``handle``), on LLM replicas."""

    def __init__(self, front: "RayFront", names: Sequence[str], ctx: int, keep: int):
        self.front = front
        self.models = {n: SimpleNamespace(model=SimpleNamespace(n_ctx=ctx)) for n in names}
        self._where: "OrderedDict[str, str]" = OrderedDict()  # session id -> replica id (bounded LRU)
        self._keep = keep
        self._lock = threading.Lock()

    def names(self):
        return sorted(self.models)

    def handle(self, owner: tuple, meta: dict, tokens):
        sid = meta.get("session")
        with self._lock:
            affinity = self._where.get(sid) if sid else None
        try:
            out_meta, out, lps, replica, ms = self.front._call(self.front.llm_handle.handle, owner, dict(meta),
                                                                list(tokens), affinity=affinity)
        except _ReplicaDied:
            self._forget(sid)
            raise SessionError("the replica holding this session stopped; open a new one with your history") from None
        self.front._observe(ms)
        new = out_meta.get("session", sid)
        with self._lock:
            if meta.get("op") == "close":
                self._where.pop(sid, None)
            elif new:
                self._where[new] = replica
                self._where.move_to_end(new)
                while len(self._where) > self._keep:
                    self._where.popitem(last=False)
        return out_meta, out, lps

    def _forget(self, sid):
        with self._lock:
            self._where.pop(sid, None)


class _ReplicaDied(Exception):
    pass


class RayFront(Worker):
    """An edgeinf worker whose graphs and sessions run on Ray Serve replicas."""

    def __init__(self, packages, config: WorkerConfig = WorkerConfig(), scale: ScaleConfig = ScaleConfig(),
                 llms: Optional[Dict[str, str]] = None, cluster: Optional[Cluster] = None):
        if config.connect:
            raise ConfigError("the Ray front binds; it does not connect to a broker (Ray is its backend)")
        self.scale = scale
        concurrency = scale.tails.max_replicas * scale.max_ongoing if packages else 0
        concurrency += scale.llm.max_replicas * scale.llm_max_ongoing if llms else 0
        super().__init__(packages, replace(config, workers=max(concurrency, 1)), llms=llms)
        self._real = list(packages)
        self.packages = {p.hash: _RemotePackage(p, self) for p in packages}
        self._llm_models = dict(llms or {})
        self.llm_paths = {}  # the models load on replicas, not here
        self.cluster = cluster
        self._own_cluster = cluster is None
        self.tails = self.llm_handle = None
        self._tls = threading.local()
        self._replicas = {TAILS: 0, LLMS: 0}
        self._replica_ms = 0.0
        self.scale_stats = {"retried": 0, "replica_died": 0}
        self._watch_stop = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------
    def initialize(self) -> "RayFront":
        if self.cluster is None:
            self.cluster = Cluster().start()
        s = self.scale
        if self._real:
            self.tails = self.cluster.deploy_tails([str(p.root) for p in self._real], [p.hash for p in self._real],
                                                   s.tails, s.max_ongoing, s.replica_cpus, s.threads, s.slots)
        if self._llm_models:
            cfg = self.config
            self.llm_handle = self.cluster.deploy_llm(self._llm_models, s.llm, s.llm_max_ongoing, s.replica_cpus,
                                                      s.threads, ctx=cfg.llm_ctx, sessions=cfg.llm_sessions,
                                                      session_bytes=cfg.llm_session_bytes, idle_s=cfg.llm_idle_s)
            keep = 4 * cfg.llm_sessions * s.llm.max_replicas
            self._llm = _RemoteSessions(self, list(self._llm_models), cfg.llm_ctx, keep)
        self._watch_replicas()
        threading.Thread(target=self._watch, name="edgeinf-ray-watch", daemon=True).start()
        return super().initialize()

    def finalize(self) -> None:
        self._watch_stop.set()
        super().finalize()
        if self.cluster is not None:
            for app, used in ((TAILS, self.tails), (LLMS, self.llm_handle)):
                if used is not None:  # what this front deployed goes with it
                    self.cluster.delete(app)
            if self._own_cluster:
                self.cluster.stop()

    def _watch(self) -> None:
        while not self._watch_stop.wait(1.0):
            try:
                self._watch_replicas()
            except Exception as e:  # noqa: BLE001 - a status hiccup must not end the front
                log.debug("replica count unavailable: %s", e)

    def _watch_replicas(self) -> None:
        for app, used in ((TAILS, self.tails), (LLMS, self.llm_handle)):
            if used is not None:
                self._replicas[app] = self.cluster.replicas(app)

    # -- the Ray path ----------------------------------------------------------------------
    def execute(self, job):
        self._tls.deadline = job.deadline  # for the handle call this job makes
        return super().execute(job)

    def _call(self, method, *args, **kwargs):
        """One call on a deployment handle, bounded by the job's deadline. Replica death is
        :class:`_ReplicaDied`; an error raised inside the replica is re-raised as itself."""
        from ray.exceptions import RayActorError, RayTaskError

        left = self._tls.deadline - time.monotonic()
        if left <= 0:
            raise BackendError("deadline passed while waiting for a Ray replica; not run")
        resp = method.remote(*args, **kwargs)
        try:
            return resp.result(timeout_s=left)
        except TimeoutError:
            resp.cancel()
            raise BackendError(f"no Ray replica answered within the deadline ({left * 1e3:.0f} ms)") from None
        except RayActorError as e:
            with self._lock:
                self.scale_stats["replica_died"] += 1
            raise _ReplicaDied(str(e)[:200]) from None
        except RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, EdgeInfError):
                raise cause from None
            raise BackendError(f"replica failed: {type(cause).__name__ if cause else 'RayTaskError'}: {cause}") from None

    def _run_graph(self, pkg: str, cut: Optional[str], inputs):
        for attempt in range(RETRIES + 1):
            try:
                out, ms, _pid = self._call(self.tails.run, pkg, cut, dict(inputs))
            except _ReplicaDied:
                if attempt == RETRIES:
                    raise BackendError(f"{RETRIES + 1} Ray replicas died under this request") from None
                with self._lock:
                    self.scale_stats["retried"] += 1
                continue
            self._observe(ms)
            return out

    def _observe(self, ms: float) -> None:
        with self._lock:
            self._replica_ms = ms if not self._replica_ms else 0.8 * self._replica_ms + 0.2 * ms

    # -- reports -------------------------------------------------------------------------
    def load(self) -> dict:
        out = super().load()
        s, tails, llms = self.scale, self._replicas[TAILS], self._replicas[LLMS]
        n = tails * s.slots + llms  # requests running at once (an LLM replica runs one per model context)
        taken = tails * s.max_ongoing + llms * s.llm_max_ongoing
        with self._lock:
            ms = self._replica_ms
        out.update(workers=n, capacity=taken + self.config.queue, service_ms=round(ms, 3),
                   replicas=self._replicas[TAILS] + self._replicas[LLMS])
        return out

    def hello(self, user: str = "") -> dict:
        out = super().hello(user)
        if "stats" in out:
            out["stats"] = {**out["stats"], **self.scale_stats}
        return out
