"""EdgeRuntime: execute a Plan (local, split or offload) and always return the right answer.

Split: run the head here, encode the crossing tensors, send them to a worker, decode its
outputs. On any remote failure (BUSY, timeout, disconnect, refused key, error) the tail
runs here from a cached session instead, once, and the result says so. The remote part
gets only the time left after reserving what the local fallback needs, so a fallback
still finishes by the caller's deadline.

Every :class:`RunResult` carries per-stage timings (ms), bytes each way and the server's
load report, and is handed to ``observer`` (the controller) after each request.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Union

import numpy as np

from .backends import Model
from .errors import ConfigError, EdgeInfError
from .package import Package, open_package
from .plan import LOCAL, Plan, remote_budget_ms
from .transport import _util
from .transport.client import Client, Outcome, Reply

log = logging.getLogger("edgeinf")


@dataclass
class RunResult:
    """What one request produced and what it cost.

    outcome : 'offload' (remote answered), 'local_fallback' (remote failed, ran here) or 'local'.
    timings : ms per stage: head, encode, send_wait, decode, fallback (local tail/full after a
        failure), full (local plan), total; server (the worker's own service time).
    transport : the remote Outcome value ('ok', 'busy', 'timeout', 'down', ...) or None.
    pace : the emulated slowdown applied to local compute (1.0: none).
    """

    outputs: Dict[str, np.ndarray]
    outcome: str
    plan: Plan
    timings: Dict[str, float] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_recv: int = 0
    load: Optional[dict] = None
    transport: Optional[str] = None
    error: str = ""
    endpoint: Optional[str] = None
    pace: float = 1.0
    info: dict = field(default_factory=dict)  # local executors: exit taken, branch chosen...


class EdgeRuntime:
    """Run a model package's plans on this device, offloading through ``edgeinf.transport``.

    Parameters
    ----------
    package : a :class:`Package` or its directory.
    endpoints : worker/broker URLs (or pass a ready ``client``); None: local only.
    plan : the default plan; ``run(..., plan=)`` overrides it per request.
    observer : called with each :class:`RunResult` (exceptions are logged, not raised).
    compute_pace : >= 1; local compute (and encoding) is slowed to pace x the fastest time
        seen for that stage on this host, by sleeping the difference, to EMULATE a slower
        device (labelled in ``RunResult.pace``). Pacing to the fastest time rather than to
        each run's own time keeps host noise from being multiplied by ``pace``.
    deadline_s : default per-request deadline.
    variants : ``{name: Model}`` local alternatives (a smaller branch, a width) that
        ``Plan("local", variant=name)`` runs instead of the full model; loaded once by the caller.
        Variants, exits and branch pairs declared in the package itself are found without it
        (:mod:`edgeinf.local`).

    This is the only executor of a :class:`Plan`: local plans of every kind run through the
    package's local executors, split and offload through the client, with local fallback.
    """

    def __init__(self, package: Union[Package, str, Path], endpoints=None, *, client: Optional[Client] = None,
                 plan: Plan = LOCAL, observer: Optional[Callable[[RunResult], None]] = None,
                 compute_pace: float = 1.0, deadline_s: float = 1.0, threads: Optional[int] = None,
                 variants: Optional[Mapping[str, Model]] = None, **client_options):
        if compute_pace < 1.0:
            raise ConfigError(f"compute_pace must be >= 1 (1 = real speed); got {compute_pace}")
        self.package = package if isinstance(package, Package) else open_package(package)
        self.plan, self.observer, self.pace = plan, observer, float(compute_pace)
        self.deadline_s, self.threads = deadline_s, threads
        self.variants = dict(variants or {})
        self._own_client = client is None and endpoints is not None
        self.client = client or (Client(endpoints, **client_options) if endpoints is not None else None)
        self._est_ms: Dict[tuple, float] = {}  # (role, cut) -> EWMA of local compute ms
        self._best_ms: Dict[tuple, float] = {}  # (stage key) -> fastest ms seen: pacing reference
        self._fixed: set = set()  # stage keys whose reference was set from outside
        self._local: Optional[dict] = None  # Plan -> edgeinf.local executor, found on first use
        self._axes_of: Dict[str, dict] = {}  # cut -> pack() kwargs

    def close(self) -> None:
        if self._own_client and self.client is not None:
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- public ------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray], plan: Optional[Plan] = None,
            deadline: Optional[float] = None, notify: bool = True) -> RunResult:
        """Serve one request by ``deadline`` seconds from now (default ``deadline_s``)."""
        plan = plan or self.plan
        t0 = time.perf_counter()
        end = time.monotonic() + (self.deadline_s if deadline is None else deadline)
        if plan.kind == "local" and plan != LOCAL:
            res = RunResult({}, "local", plan, pace=self.pace)
            res.outputs = self._local_plan(plan, inputs, res)
        elif plan.kind == "local" or self.client is None:
            res = RunResult({}, "local", plan, pace=self.pace)
            res.outputs = self._compute("full", None, inputs, res, "full")
        elif plan.kind == "split":
            res = RunResult({}, "offload", plan, pace=self.pace)
            crossing = self._compute("head", plan.cut, inputs, res, "head")
            # a learned cut's tail is only an approximation of the model: fall back to the model
            local = ("full", None, inputs) if self.package.cut(plan.cut).learned else None
            res.outputs = self._remote_or_local("tail", plan.cut, crossing, plan.codec or "raw", end, res, local)
        else:
            res = RunResult({}, "offload", plan, pace=self.pace)
            res.outputs = self._remote_or_local("full", None, inputs, plan.codec or "raw", end, res)
        res.timings["total"] = _ms(time.perf_counter() - t0)
        if notify:
            self._notify(res)
        return res

    def set_pace_reference(self, stage: str, host_ms: float, cut: Optional[str] = None,
                           codec: Optional[str] = None, plan: Optional[Plan] = None) -> None:
        """Pace ``stage`` ('full', 'head', 'encode', 'variant' with its name as ``cut``, or
        'local' with a package's local ``plan``) from ``host_ms`` instead of its own best.

        A benchmark that predicted costs from its own measurements passes them here, so the
        EMULATED device runs exactly as predicted (pace x host_ms) and what differs between
        prediction and live run is the link and the server, not a second noisy measurement.
        """
        if host_ms <= 0:
            raise ConfigError(f"host_ms must be > 0; got {host_ms}")
        key = {"encode": ("encode", cut, codec), "variant": ("variant", cut),
               "local": ("local", plan)}.get(stage, (stage, cut))
        self._best_ms[key] = float(host_ms)
        self._fixed.add(key)

    def warmup(self, plan: Optional[Plan] = None, samples: Optional[Mapping[str, np.ndarray]] = None) -> None:
        """Create and time the sessions ``plan`` may need (and its fallback), so no request does.

        ``samples``: one real input dict; the tail is timed on what the head computes from it,
        so a crossing shape or index tensor holds real values (random int64 shape tensors
        make a tail fail). Without samples, inputs are drawn from the model's specs.
        """
        plan = plan or self.plan
        if samples is None:
            from .profiling import sample_inputs

            samples = sample_inputs(self.package)
        feeds = dict(samples)
        if plan.kind == "split":
            crossing = self._time_role("head", plan.cut, feeds)
            self._time_role("tail", plan.cut, crossing)
        elif plan.kind == "local" and plan != LOCAL:
            self._executor(plan).warmup(feeds)
        self._time_role("full", None, feeds)

    def _time_role(self, role: str, cut, feeds) -> Dict[str, np.ndarray]:
        key = (role, cut)
        sess = self.package.session(role, cut, threads=self.threads)
        out = sess.run(dict(feeds))  # first run pays one-off allocation
        if key not in self._est_ms:
            times = []
            for _ in range(5):  # best of 5: the pacing reference must not carry one slow run
                t = time.perf_counter()
                out = sess.run(dict(feeds))
                times.append((time.perf_counter() - t) * 1e3)
            self._est_ms[key] = float(np.median(times))
            if key not in self._fixed:
                self._best_ms[key] = min(self._best_ms.get(key, np.inf), min(times))
        return out

    # -- stages ------------------------------------------------------------------------
    def _remote_or_local(self, role, cut, tensors, codec, end, res: RunResult,
                         local: Optional[tuple] = None) -> Dict[str, np.ndarray]:
        """Run (role, cut) remotely on ``tensors``, else locally: the same stage, or ``local``
        = (role, cut, feeds) where that is what a fallback must run instead."""
        local = local or (role, cut, tensors)
        local_ms = self._local_ms(*local)
        left = (end - time.monotonic()) * 1e3
        budget = remote_budget_ms(left, local_ms)
        reply = None
        if budget > 1.0:
            try:
                reply = self._offload(cut, tensors, codec, budget / 1e3, res)
            except EdgeInfError as e:  # codec missing, bad reply...: fall back, say why
                res.transport, res.error = "error", str(e)
        else:
            res.transport = "skipped"
            res.error = f"{budget:.1f} ms left after reserving {left - budget:.1f} ms for local"
        if reply is not None:
            return reply
        res.outcome = "local_fallback"
        log.info("plan %s fell back to local (%s): %s", res.plan, res.transport, res.error)
        return self._compute(*local, res, "fallback")

    def _offload(self, cut, tensors, codec, timeout, res: RunResult) -> Optional[Dict[str, np.ndarray]]:
        t = time.perf_counter()
        specs, frames = _util.pack(tensors, codec, **self._axes(cut))
        self._pace(("encode", cut, codec), t)
        res.timings["encode"] = _ms(time.perf_counter() - t)
        t = time.perf_counter()
        reply: Reply = self.client.infer(self.package.hash, cut, specs, frames, codec=codec, timeout=timeout)
        res.timings["send_wait"] = _ms(time.perf_counter() - t)
        res.transport, res.endpoint, res.load = reply.outcome.value, reply.endpoint, reply.load
        res.bytes_sent, res.bytes_recv = reply.bytes_sent, reply.bytes_recv
        if reply.outcome is not Outcome.OK:
            res.error = f"{reply.error_code.name + ': ' if reply.error_code else ''}{reply.error}"
            return None
        t = time.perf_counter()
        outputs = _util.unpack(reply.message)
        res.timings["decode"] = _ms(time.perf_counter() - t)
        res.timings["server"] = float(reply.message.meta.get("service_ms", 0.0))
        return outputs

    def _compute(self, role, cut, feeds, res: RunResult, stage: str) -> Dict[str, np.ndarray]:
        sess = self.package.session(role, cut, threads=self.threads)
        t = time.perf_counter()
        out = sess.run(dict(feeds))
        self._learn(role, cut, (time.perf_counter() - t) * 1e3)
        self._pace((role, cut), t)
        res.timings[stage] = _ms(time.perf_counter() - t)
        return out

    def _executor(self, plan: Plan):
        if self._local is None:
            from . import local

            self._local = local.executors(self.package, threads=self.threads)
        ex = self._local.get(plan)
        if ex is None:
            what = f"variant {plan.variant!r}" if plan.variant else str(plan)
            raise ConfigError(f"plan asks for local {what}; this runtime has variants {sorted(self.variants)} "
                              f"and package {self.package.name!r} has plans {sorted(str(p) for p in self._local)}")
        return ex

    def _local_plan(self, plan: Plan, feeds, res: RunResult) -> Dict[str, np.ndarray]:
        if plan.variant and not plan.exit and plan.variant in self.variants:
            return self._variant(plan.variant, feeds, res)
        ex = self._executor(plan)
        t = time.perf_counter()
        out, info = ex.run(dict(feeds))
        self._pace(("local", plan), t)
        res.timings["full"] = _ms(time.perf_counter() - t)
        res.info = dict(info)
        return out

    def _variant(self, name: str, feeds, res: RunResult) -> Dict[str, np.ndarray]:
        model = self.variants.get(name)
        if set(feeds) != {s.name for s in model.inputs} and len(feeds) == len(model.inputs):
            # NOTE: a variant from another export may name its inputs differently; same order
            feeds = {s.name: a for s, a in zip(model.inputs, feeds.values())}
        t = time.perf_counter()
        out = model.run(dict(feeds))
        self._pace(("variant", name), t)
        res.timings["full"] = _ms(time.perf_counter() - t)
        return out

    def _axes(self, cut) -> dict:
        """Per-tensor channel axes the split engine recorded (NHWC: -1, NCHW: 1), for ``-pc`` codecs."""
        if cut is None:
            return {}
        if cut not in self._axes_of:  # NOTE: once per cut, not per request
            axes = self.package.cut(cut).channel_axes()
            self._axes_of[cut] = {"axes": axes} if axes else {}
        return self._axes_of[cut]

    def _pace(self, key, t0: float) -> None:
        """EMULATED slower device: stretch a stage begun at ``t0`` to pace x its best time."""
        ms = (time.perf_counter() - t0) * 1e3
        best = self._best_ms[key] if key in self._fixed else min(self._best_ms.get(key, ms), ms)
        self._best_ms[key] = best
        if self.pace > 1.0:
            left = best * self.pace - ms
            if left > 0:
                time.sleep(left / 1e3)

    def _estimate(self, role, cut, feeds) -> float:
        """Local compute ms for (role, cut); timed on this request's own tensors if unknown
        (a request pays this only when nobody called :meth:`warmup`)."""
        if (role, cut) not in self._est_ms:
            log.warning("EdgeRuntime: %s of cut %s was not warmed up; timing it on this request", role, cut)
            self._time_role(role, cut, feeds)
        return self._est_ms[(role, cut)]

    def _local_ms(self, role, cut, feeds) -> float:
        """What running (role, cut) here will take, as the device runs it. Paced (EMULATED),
        a stage takes max(pace x its best time, its host time) (:meth:`_pace`), so one slow
        host run on a busy machine must not be multiplied by the pace: it made the reserve
        outgrow the deadline and every remote attempt was skipped (seen in the daemon)."""
        est = self._estimate(role, cut, feeds)
        if self.pace <= 1.0:
            return est
        best = self._best_ms.get((role, cut), est)
        return max(best * self.pace, est)

    def _learn(self, role, cut, ms: float) -> None:
        old = self._est_ms.get((role, cut))
        # NOTE: track upward jumps fast (a slow run must not make fallbacks miss deadlines)
        self._est_ms[(role, cut)] = ms if old is None or ms > old else 0.9 * old + 0.1 * ms

    def _notify(self, res: RunResult) -> None:
        if self.observer is None:
            return
        try:
            self.observer(res)
        except Exception:  # an observer bug must not fail the request it observes
            log.exception("EdgeRuntime observer failed")


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, 3)
