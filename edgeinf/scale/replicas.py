"""The Ray Serve deployments: package graphs and language-model sessions as replicas.

A replica is reached only through the ZeroMQ front (:mod:`edgeinf.scale.front`), which has
already authenticated, parsed, bounded and decoded the request: replicas take numpy arrays
and plain values over Ray's own channel (pickled by Ray, inside the cluster's trust
boundary; see ``docs/scale.md``, Security). Each replica opens its packages itself (the
package directory must exist at the same path on every node) and checks the hash, so a
node with a different copy refuses to start instead of serving other weights.

Lifecycle as Ray Serve's: ``__init__`` loads (Triton's ``initialize``), the methods execute,
Ray's health checks and restarts do the rest.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Dict, List, Optional, Sequence

from ..errors import PackageError


class TailReplica:
    """Every graph (full model for offload, each cut's tail) of the given packages.

    ``slots`` requests run at once (default 1: a replica is one core's worth with one
    intra-op thread). Ray Serve runs sync methods in a thread pool, so without this bound a
    replica taking ``max_ongoing`` requests would run them all at once and one replica could
    take every core; with it, the extra requests Ray hands over wait here with their
    arguments already transferred, which overlaps the transfer with the compute."""

    def __init__(self, package_dirs: Sequence[str], hashes: Sequence[str], threads: Optional[int] = 1,
                 slots: int = 1):
        from ..package import open_package

        self.graphs = {}
        self._slots = threading.BoundedSemaphore(max(1, slots))
        for d, want in zip(package_dirs, hashes):
            pkg = open_package(d, verify=False)  # the front verified the files; the hash pins the manifest
            if pkg.hash != want:
                raise PackageError(f"package at {d} on this node has hash {pkg.hash[:16]}..., the front "
                                   f"serves {want[:16]}...: deploy the same package to every node")
            self.graphs[(pkg.hash, None)] = pkg.session("full", threads=threads)
            for cut_id in pkg.cuts:
                self.graphs[(pkg.hash, cut_id)] = pkg.session("tail", cut_id, threads=threads)

    def run(self, pkg: str, cut: Optional[str], inputs: Dict[str, object]):
        """(outputs, service_ms, pid). Engine errors propagate as they are; the front maps them."""
        graph = self.graphs[(pkg, cut)]
        with self._slots:
            t0 = time.perf_counter()
            out = graph.run(inputs)
            return out, (time.perf_counter() - t0) * 1e3, os.getpid()

    def pid(self) -> int:
        return os.getpid()


class LLMReplica:
    """Language-model sessions (:class:`edgeinf.llm.sessions.SessionStore`) on this replica.

    Sessions live in this process: the front routes a session's requests here by the replica
    id returned at ``open`` (:mod:`edgeinf.scale.router`). When this replica dies its sessions
    die with it; the front answers SESSION and the edge reopens on another replica from its
    token history."""

    def __init__(self, models: Dict[str, str], ctx: int = 2048, sessions: int = 64,
                 session_bytes: int = 512 * 2**20, idle_s: float = 600.0, threads: Optional[int] = 1):
        from ..backends import load
        from ..llm.sessions import SessionStore

        loaded = {name: load(path, threads=threads, n_ctx=ctx) for name, path in models.items()}
        self.store = SessionStore(loaded, sessions, session_bytes, idle_s)
        self.replica = _replica_id()

    def handle(self, owner: tuple, meta: dict, tokens: List[int], affinity: Optional[str] = None):
        """One session operation: (reply meta, tokens, logprobs, replica id, service_ms).
        ``affinity`` is read by the router only."""
        t0 = time.perf_counter()
        out_meta, out, lps = self.store.handle(owner, meta, tokens)
        return out_meta, out, lps, self.replica, (time.perf_counter() - t0) * 1e3

    def pid(self, affinity: Optional[str] = None) -> int:
        """This process's PID (``affinity`` picks the replica, for tests and benchmarks)."""
        return os.getpid()


def _replica_id() -> str:
    from ray import serve

    return serve.get_replica_context().replica_id.unique_id
