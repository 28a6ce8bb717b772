"""Starting, joining and leaving Ray, and deploying edgeinf's replicas on Ray Serve.

A local instance is started loopback-only in spirit (``_node_ip_address=127.0.0.1``), with
``num_cpus`` = this machine's cores, no dashboard, no Serve HTTP proxy, and its temp/log
directory under a fresh temporary path that :func:`stop` removes. Ray still binds some
ports on all interfaces (docs/scale.md, Security); the ZeroMQ front is the only door
meant for devices.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from ..errors import ConfigError
from .policy import Scaling

log = logging.getLogger("edgeinf")

TAILS, LLMS = "edgeinf-tails", "edgeinf-llm"  # Serve application (and deployment) names


def ray_modules():
    """(ray, serve), or a clear error naming the extra."""
    try:
        import ray
        from ray import serve
    except ImportError as e:
        raise ConfigError(f"Ray Serve is not installed ({e}); pip install \"edgeinf[ray]\"") from e
    return ray, serve


@dataclass
class RayConfig:
    address: Optional[str] = None    # an existing cluster ("auto", "HOST:6379"); None: start a local one
    num_cpus: Optional[int] = None   # local instance: default os.cpu_count()
    temp_dir: Optional[str] = None   # local instance: default a fresh /tmp/eir-* (removed by stop())
    object_store_mb: int = 200
    namespace: str = "edgeinf"


class Cluster:
    """A Ray connection plus Serve, as a context manager; :meth:`stop` leaves no processes
    of a local instance behind."""

    def __init__(self, config: RayConfig = RayConfig()):
        self.config = config
        self.ray, self.serve = ray_modules()
        self._tmp = None
        self.local = config.address is None

    def start(self) -> "Cluster":
        cfg = self.config
        if self.local:
            # NOTE: Ray's socket paths live under the temp dir and must stay short (AF_UNIX, 107 bytes)
            self._tmp = cfg.temp_dir or tempfile.mkdtemp(prefix="eir-", dir="/tmp")
            self.ray.init(num_cpus=cfg.num_cpus or os.cpu_count(), include_dashboard=False,
                          _node_ip_address="127.0.0.1", object_store_memory=cfg.object_store_mb * 2**20,
                          _temp_dir=self._tmp, namespace=cfg.namespace, log_to_driver=False,
                          configure_logging=False)
        else:
            self.ray.init(address=cfg.address, namespace=cfg.namespace, log_to_driver=False,
                          configure_logging=False)
        self.serve.start(proxy_location="Disabled")  # no HTTP ingress: the ZeroMQ front is the door
        return self

    def stop(self) -> None:
        if self.ray.is_initialized():
            if self.local:
                try:
                    self.serve.shutdown()
                except Exception as e:  # noqa: BLE001 - shutting down regardless
                    log.warning("serve.shutdown failed: %s", e)
            self.ray.shutdown()
        if self._tmp and self.config.temp_dir is None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- deployments ---------------------------------------------------------------------
    def _options(self, scaling: Scaling, max_ongoing: int, replica_cpus: float) -> dict:
        if scaling.min_replicas == scaling.max_replicas:  # fixed: no autoscaler in the loop
            count = {"num_replicas": scaling.min_replicas}
        else:
            count = {"autoscaling_config": scaling.autoscaling_config()}
        return {**count, "max_ongoing_requests": max_ongoing, "ray_actor_options": {"num_cpus": replica_cpus},
                "health_check_period_s": 1.0, "health_check_timeout_s": 10.0, "graceful_shutdown_timeout_s": 2.0}

    def deploy_tails(self, package_dirs: Sequence[str], hashes: Sequence[str], scaling: Scaling,
                     max_ongoing: int = 2, replica_cpus: float = 1.0, threads: Optional[int] = 1, slots: int = 1):
        """Deploy (or update) the tails application; returns its handle once replicas run."""
        from .replicas import TailReplica

        dep = self.serve.deployment(TailReplica, name=TAILS).options(**self._options(scaling, max_ongoing, replica_cpus))
        return self.serve.run(dep.bind(list(map(str, package_dirs)), list(hashes), threads, slots), name=TAILS,
                              route_prefix=None)

    def deploy_llm(self, models: Dict[str, str], scaling: Scaling, max_ongoing: int = 4, replica_cpus: float = 1.0,
                   threads: Optional[int] = 1, **store):
        """Deploy the language-model sessions application, session-affine."""
        from .replicas import LLMReplica
        from .router import SessionRouter

        opts = self._options(scaling, max_ongoing, replica_cpus)
        opts["request_router_config"] = {"request_router_class": SessionRouter}
        dep = self.serve.deployment(LLMReplica, name=LLMS).options(**opts)
        return self.serve.run(dep.bind(dict(models), threads=threads, **store), name=LLMS, route_prefix=None)

    def delete(self, app: str) -> None:
        """Remove an application and its replicas (their CPUs go back to the cluster)."""
        if self.ray.is_initialized():
            self.serve.delete(app, _blocking=True)

    def replicas(self, app: str) -> int:
        """Replicas of ``app`` in state RUNNING (0 if the application is unknown)."""
        st = self.serve.status().applications.get(app)
        dep = st.deployments.get(app) if st else None
        return int(dep.replica_states.get("RUNNING", 0)) if dep else 0

    def wait_replicas(self, app: str, n: int, timeout: float = 60.0) -> float:
        """Seconds until ``app`` runs exactly ``n`` replicas; TimeoutError otherwise."""
        t0 = time.monotonic()
        while self.replicas(app) != n:
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{app}: {self.replicas(app)} replicas running after {timeout} s, wanted {n}")
            time.sleep(0.2)
        return time.monotonic() - t0


def replica_pids(app: str) -> list:
    """PIDs of this host's replica processes of ``app`` (Ray titles them ``ray::ServeReplica:APP:...``)."""
    import psutil

    tag = f"ServeReplica:{app}:"
    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or ())
        if tag in cmd:
            pids.append(p.pid)
    return sorted(pids)
