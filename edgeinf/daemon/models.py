"""The daemon's vision models: a source (package, model file, zoo name) to a profiled package,
and one :class:`VisionModel` per configured model owning its :class:`AdaptiveRuntime`.

A model file or zoo name becomes a package in ``$EDGEINF_CACHE/packages/daemon/``, keyed
by the file's SHA-256 and the cut choice, split (``cuts = "pareto"``) or not (``"none"``:
local and offload plans only) and profiled once; later starts reuse it. A package
directory is used as it is, profiled in place if it has no ``profile.json`` yet.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import math
import threading
import time
from pathlib import Path
from typing import Deque, Dict, Mapping, Optional, Sequence

import numpy as np

from .. import config as envconfig
from ..errors import ConfigError
from .config import DaemonConfig, ModelSpec

log = logging.getLogger("edgeinf.daemon")

HISTORY = 4000  # per model: ~6.5 min at 10 req/s, what the status page draws (bounded: weeks of uptime)
PROFILE_REPEAT = 5  # the daemon profiles at start; 5 runs keep a first start under a minute on a Pi


def package_dir(spec: ModelSpec) -> Path:
    """The profiled package for ``spec``, built and profiled on first use."""
    from .. import profiling, zoo
    from ..package import open_package, sha256_file

    src = Path(spec.source).expanduser()
    if src.is_dir():
        if not (src / "edgeinf.json").is_file():
            raise ConfigError(f"models.{spec.name}: {src} is a directory but not a model package (no edgeinf.json)")
        root = src
    else:
        if not src.exists() and spec.source not in zoo.names():
            raise ConfigError(f"models.{spec.name}: {spec.source!r} is neither a file, a package directory "
                              f"nor a zoo model (zoo: {', '.join(zoo.names())})")
        path = zoo.resolve(spec.source)
        key = hashlib.sha256(f"{sha256_file(path)}:{spec.cuts}".encode()).hexdigest()[:16]
        root = envconfig.cache_dir() / "packages" / "daemon" / f"{path.stem}-{spec.cuts}-{key}"
        if not (root / "edgeinf.json").is_file():
            log.info("building package %s (%s cuts) -> %s", path.name, spec.cuts, root)
            _build(path, root, spec.cuts)
    pkg = open_package(root)
    try:
        profiling.load_profile(pkg)
    except Exception as e:  # noqa: BLE001 - missing or stale: measured here, once, and said so
        log.warning("models.%s: %s; profiling %s now (once)", spec.name, e, root)
        profiling.profile_package(pkg, repeat=PROFILE_REPEAT, threads=1)
    return root


def _build(path: Path, root: Path, cuts: str) -> None:
    if cuts == "pareto":
        from ..split import build_package

        build_package(path, root, at=None)
        return
    from ..backends import load
    from ..package import PackageWriter

    model = load(path)
    w = PackageWriter(root, name=path.stem)
    w.set_model(f"model{path.suffix.lower()}", path.read_bytes(), model.inputs, model.outputs)
    w.save()


class VisionModel:
    """One served model: its runtime, its specs, and the last minutes of decisions.

    ``infer`` is called from one thread at a time (the app holds the model's lock): the
    controller's state is per runtime and a device runs one model request at a time.
    """

    def __init__(self, spec: ModelSpec, cfg: DaemonConfig, root: Optional[Path] = None):
        from ..adaptive import AdaptiveRuntime

        self.spec = spec
        self.root = root or package_dir(spec)
        opts = {}
        if cfg.server_key:
            opts.update(server_key=cfg.server_key, client_key=cfg.client_key)
        t0 = time.perf_counter()
        # NOTE: watch_system off: the daemon's DeviceLoad feeds the device estimator instead
        # (the runtime's own rule would hide the other models' work in this process)
        self.rt = AdaptiveRuntime(self.root, list(cfg.workers) or None, objective=spec.objective,
                                  deadline_ms=spec.deadline_ms, device=cfg.device, threads=cfg.threads,
                                  watch_system=False, **opts)
        self.threads = cfg.threads
        self.busy_s = 0.0  # wall time spent inferring, for DeviceLoad
        self.load_s = time.perf_counter() - t0
        self.inputs = self.rt.package.inputs
        self.outputs = self.rt.package.outputs
        self.deadline_ms = self.rt.objective.deadline_ms
        self.history: Deque[dict] = collections.deque(maxlen=HISTORY)
        self.last_estimates: dict = {}
        self.server_load: dict = {}
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    def metadata(self) -> dict:
        """KServe v2 model metadata."""
        from .kserve import datatype_of

        def specs(ss):
            return [{"name": s.name, "datatype": datatype_of(s.dtype),
                     "shape": [d if isinstance(d, int) and d >= 0 else -1 for d in s.shape]} for s in ss]

        return {"name": self.name, "versions": ["1"], "platform": f"edgeinf_{self.rt.package.model.file.rsplit('.', 1)[-1]}",
                "inputs": specs(self.inputs), "outputs": specs(self.outputs),
                "parameters": {"package_hash": self.rt.package.hash, "device": self.rt.device_label,
                               "deadline_ms": self.deadline_ms,
                               "plans": ",".join(sorted(str(c.plan) for c in self.rt.costs))}}

    def infer(self, feeds: Mapping[str, np.ndarray], deadline_ms: Optional[float] = None):
        """Run one request through the adaptive runtime; the result and its history row."""
        with self.lock:
            t0 = time.perf_counter()
            try:
                res = self.rt.run(feeds, deadline_ms=deadline_ms)
            finally:
                self.busy_s += time.perf_counter() - t0
        est = res.estimates
        self.last_estimates = est
        self.server_load = dict(res.run.load or {}) if res.run else {}
        row = {"t": time.time(), "ms": round(res.latency_ms, 3), "plan": str(res.plan), "outcome": res.outcome,
               "mbps": est.get("mbps"), "rtt_ms": est.get("rtt_ms"), "up": est.get("up")}
        self.history.append(row)
        return res

    def missed(self, res, deadline_ms: Optional[float], waited_ms: float = 0.0) -> bool:
        """Over the deadline counting the time queued in the daemon, as the app saw it."""
        limit = self.deadline_ms if deadline_ms is None else deadline_ms
        return math.isfinite(limit) and waited_ms + res.latency_ms > limit

    def recent(self, since_s: float) -> Sequence[dict]:
        cut = time.time() - since_s
        return [r for r in list(self.history) if r["t"] >= cut]

    def close(self) -> None:
        self.rt.close()


def other_load(total_percent: float, busy_s: float, window_s: float, threads: int, cores: int) -> float:
    """CPU percent (of the machine) used by everything except one model: the machine's total
    minus that model's own inference (``busy_s`` of wall time on ``threads`` threads in the window)."""
    own = 100.0 * min(busy_s * max(threads, 1) / max(window_s, 1e-6), cores) / max(cores, 1)
    return min(max(total_percent - own, 0.0), 100.0)


class DeviceLoad:
    """One load sampler for the whole daemon, feeding every model's device estimator.

    The runtime alone subtracts its whole process's CPU from the device load (its own
    inference is what it predicts). In the daemon that process also runs the other models,
    so each model is given the load of everything but itself: other processes and the other
    models' requests. A device busy with one app's model thus looks slower to the others,
    whose controllers then prefer offload.
    """

    def __init__(self, models: Mapping[str, VisionModel], every_s: float = 0.5):
        import psutil

        self.psutil, self.models, self.every_s = psutil, models, every_s
        self.cores = psutil.cpu_count(logical=True) or 1
        self._stop = threading.Event()
        self._seen = {n: m.busy_s for n, m in models.items()}
        psutil.cpu_percent(None)
        self._t = time.monotonic()
        self.last: Dict[str, float] = {}
        self.total: Optional[float] = None

    def sample(self) -> None:
        now = time.monotonic()
        window, self._t = now - self._t, now
        self.total = total = self.psutil.cpu_percent(None)
        try:
            freq = self.psutil.cpu_freq()
        except (OSError, NotImplementedError, AttributeError):  # not every board exposes it
            freq = None
        cur, top = (freq.current, freq.max) if freq is not None and freq.max else (None, None)
        for name, m in self.models.items():
            busy, self._seen[name] = m.busy_s - self._seen[name], m.busy_s
            self.last[name] = other_load(total, busy, window, m.threads, self.cores)
            m.rt.ctl.device.observe_system(self.last[name], cur, top, self.cores)

    def run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a failed reading must not end the sampler
                log.warning("device load sample failed", exc_info=True)

    def start(self) -> "DeviceLoad":
        if self.models:
            threading.Thread(target=self.run, name="edgeinf-device-load", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


def load_all(cfg: DaemonConfig) -> Dict[str, VisionModel]:
    """Every configured vision model, opened (a failure closes the ones already open)."""
    out: Dict[str, VisionModel] = {}
    try:
        for spec in cfg.models:
            out[spec.name] = VisionModel(spec, cfg)
            log.info("model %s ready in %.2f s (%s)", spec.name, out[spec.name].load_s, out[spec.name].root)
    except BaseException:
        for m in out.values():
            m.close()
        raise
    return out
