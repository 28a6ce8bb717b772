"""AdaptiveRuntime: a model package in, adaptive local/split/offload execution out.

One object joins the pieces a user would otherwise wire by hand: the package's measured
profile (``profile.json``, written by ``edgeinf profile``) gives the candidate plans and
their costs; :class:`edgeinf.controller.Controller` picks a plan per request from live
estimates (bandwidth, RTT, device and server load); :class:`edgeinf.runtime.EdgeRuntime`
executes it with local fallback; what it measured flows back into the estimators. Probing
the link and warming up every plan's sessions are done here, never by the caller::

    with edgeinf.AdaptiveRuntime("pkg/", "tcp://server:5555", objective="latency") as rt:
        res = rt.run({"input": x})
        res.outputs, res.plan, res.reason, res.predicted_ms, res.latency_ms

A probe is the offload request itself (the full model's inputs under the offload
codec), sent in the background while the link is unmeasured, stale or down; every fifth is
the same request with all-zero inputs, which compresses to a few hundred bytes and so
measures the RTT. :meth:`AdaptiveRuntime.probe_sizes` tells the replay the same sizes.
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .controller import Controller, Measured, Objective, PlanCost, Tuning
from .controller.costmodel import Power
from .errors import ConfigError
from .package import Package, open_package
from .plan import LOCAL, Plan
from .runtime import EdgeRuntime, RunResult

log = logging.getLogger("edgeinf")

SYSTEM_SAMPLE_S = 0.5  # psutil is read at most this often (it costs ~50 us)
PROBE_BYTES = 24 * 1024  # probes: enough packets that serialisation, not RTT, dominates on LTE
WARM_REMOTE_BYTES = 256 * 1024  # remote plans warmed up at open; bigger ones would take seconds on a slow link


@dataclass
class AdaptiveResult:
    """One request: its outputs and the decision record.

    plan, reason : what the controller chose and why; predicted_ms : its prediction;
    latency_ms : measured, decide to outputs; outcome : 'local' | 'offload' | 'local_fallback';
    run : the executor's :class:`RunResult` (per-stage timings, bytes, load report);
    decide_ms : of latency_ms, the controller's own time choosing the plan.
    """

    outputs: Dict[str, np.ndarray]
    plan: Plan
    reason: str
    predicted_ms: float
    latency_ms: float
    outcome: str
    probe: bool = False
    run: Optional[RunResult] = None
    estimates: dict = field(default_factory=dict)  # what the controller believed when it decided
    decide_ms: float = 0.0

    def to_dict(self) -> dict:
        return {"plan": self.plan.label(), "reason": self.reason, "predicted_ms": round(self.predicted_ms, 3),
                "latency_ms": round(self.latency_ms, 3), "outcome": self.outcome, "probe": self.probe,
                "timings": dict(self.run.timings) if self.run else {},
                "bytes_sent": self.run.bytes_sent if self.run else 0, "estimates": dict(self.estimates),
                "decide_ms": round(self.decide_ms, 4)}


def _objective(objective, deadline_ms, accuracy_floor, local_ms: float) -> Objective:
    if isinstance(objective, Objective):
        return objective
    # NOTE: 4x local leaves the link about two local runs' worth of time after the fallback reserve
    deadline = float(deadline_ms) if deadline_ms is not None else round(4.0 * local_ms, 1)
    return Objective(str(objective), deadline, 0.0 if accuracy_floor is None else float(accuracy_floor))


class AdaptiveRuntime:
    """Adaptive execution of a model package; see the module docstring.

    Parameters
    ----------
    package : a :class:`Package` or its directory (profiled with ``edgeinf profile DIR``).
    endpoints : worker/broker URL(s); None runs everything locally.
    objective : 'latency' | 'accuracy' | 'energy', or an :class:`Objective`.
    deadline_ms : per-request deadline (default 4x the local time); accuracy_floor : min fidelity.
    device : an EMULATED target device profile name (e.g. 'raspberry-pi-4'): device-side
        compute is paced to the speed its published figures imply (labelled in results).
    costs : override the profile's plan costs (host ms; for tests and benchmarks).
    plans : restrict the candidates to these plans.
    samples : one input dict used to warm up every plan (default: the profile's sample source).
    clock : seconds, monotonic (default ``time.monotonic``); benchmarks pass the link's clock.
    """

    def __init__(self, package: Union[Package, str, Path], endpoints=None, *, objective="latency",
                 deadline_ms: Optional[float] = None, accuracy_floor: Optional[float] = None,
                 device: Optional[str] = None, costs: Optional[Sequence[PlanCost]] = None,
                 plans: Optional[Sequence[Plan]] = None, threads: Optional[int] = 1,
                 samples: Optional[Mapping[str, np.ndarray]] = None, tuning: Tuning = Tuning(),
                 clock: Callable[[], float] = time.monotonic, warmup: bool = True,
                 watch_system: bool = True, power: Optional[Power] = None, **client_options):
        self.package = package if isinstance(package, Package) else open_package(package)
        self.clock, self.watch_system = clock, watch_system
        self.pace, self.device_label, host_costs, power = self._costs(device, costs, power, accuracy_floor)
        if plans is not None:
            wanted = set(plans)
            missing = wanted - {c.plan for c in host_costs}
            if missing:
                raise ConfigError(f"plans {sorted(map(str, missing))} are not in the package's profile; "
                                  f"it has {sorted(str(c.plan) for c in host_costs)}")
            host_costs = [c for c in host_costs if c.plan in wanted]
        if endpoints is None and "client" not in client_options:
            host_costs = [c for c in host_costs if not c.plan.remote]
        self.costs = [_paced(c, self.pace) for c in host_costs]
        local = next((c for c in self.costs if c.plan == LOCAL), None)
        if local is None:
            raise ConfigError("the candidate plans must include the full local model (the fallback)")
        self.objective = _objective(objective, deadline_ms, accuracy_floor, local.device_ms)
        self.ctl = Controller(self.costs, self.objective, power, tuning)
        client_options.setdefault("heartbeat_s", 1.0)
        client_options.setdefault("dead_after", 5)
        self.rt = EdgeRuntime(self.package, endpoints, compute_pace=self.pace, threads=threads,
                              deadline_s=self.objective.deadline_ms / 1e3
                              if math.isfinite(self.objective.deadline_ms) else 1.0, **client_options)
        self._pin_pacing(host_costs)
        self.samples = dict(samples) if samples is not None else _default_samples(self.package)
        self._probes: "queue.SimpleQueue" = queue.SimpleQueue()
        self._probe_lock = threading.Lock()
        self._probe_inflight, self._n_probes, self._sys_t = False, 0, -math.inf
        # NOTE: the probe is the offload request closest to PROBE_BYTES: a 7 kB probe over a
        # 20 ms RTT is mostly RTT, and its bandwidth samples came out 2-3x low (the demo then
        # stayed local for 6 s after a link cut while offload won)
        self.probe_plan = min((c for c in self.costs if c.plan.kind == "offload"),
                              key=lambda c: abs(math.log(max(c.up_bytes, 1) / PROBE_BYTES)), default=None)
        self.history: List[AdaptiveResult] = []
        if warmup:
            self.warmup()

    # -- setup -----------------------------------------------------------------------------
    def _costs(self, device, costs, power, floor):
        from . import profiling

        prof = None
        if costs is None:
            prof = profiling.load_profile(self.package)
            # NOTE: the profile drops codecs under its own floor; a caller's floor overrides it
            costs = prof.costs(1.0, floor=floor) if floor is not None else prof.costs(1.0)
        pace, label = 1.0, "this machine (real speed)"
        if device not in (None, "native"):
            pace, label = profiling.pace_for(prof or profiling.load_profile(self.package), device)
            if power is None:
                from .controller.costmodel import power_of
                from .split.devices import load_device

                power = power_of(load_device(device))
        return pace, label, list(costs), power

    def _pin_pacing(self, host_costs: Sequence[PlanCost]) -> None:
        # NOTE: the EMULATED device then runs exactly as profiled (pace x host time), so what
        # differs between prediction and run is the link and the server, not a second measurement
        if self.pace <= 1.0:
            return
        for c in host_costs:
            p = c.plan
            if p.kind == "local" and not (p.variant or p.exit or p.branch):
                self.rt.set_pace_reference("full", c.device_ms)
            elif p.kind == "local" and not (p.exit or p.branch):  # a variant of the package
                # NOTE: exits and branch pairs vary per input by design: paced from their own runs
                self.rt.set_pace_reference("local", c.device_ms, plan=p)
            elif p.kind == "split":
                self.rt.set_pace_reference("head", c.device_ms, cut=p.cut)
            if p.remote and c.encode_ms > 0:
                self.rt.set_pace_reference("encode", c.encode_ms, cut=p.cut, codec=p.codec)

    def warmup(self) -> None:
        """Create every plan's sessions on both sides and time the fallbacks, before any request."""
        if self.rt.client is not None:
            self.rt.client.wait_ready(5.0)
        for c in self.costs:
            self.rt.warmup(c.plan, self.samples)
        for c in self.costs:
            if c.plan.remote and c.up_bytes <= WARM_REMOTE_BYTES:  # the worker's first runs too
                self.rt.run(self.samples, plan=c.plan, deadline=10.0, notify=False)
        if self.rt.client is not None:
            # NOTE: measure the link before the first request (an RTT probe, then a full one),
            # so a fresh runtime starts from a measured link rather than "not measured: local"
            for _ in range(2):
                fut = self._probe(self.samples)
                if fut is not None:
                    try:
                        fut.result(timeout=3.0)
                    except Exception:  # noqa: BLE001 - a failed probe is an observation, not an error
                        pass
                end = time.monotonic() + 1.0
                while self._probe_inflight and time.monotonic() < end:  # its done-callback runs after result()
                    time.sleep(0.001)
            self._drain()

    def probe_sizes(self) -> Tuple[int, int]:
        """(small, large) probe bytes, as sent: what a replay of this runtime must use."""
        if self.probe_plan is None:
            return (0, 0)
        from .transport import _util

        zeros = {k: np.zeros_like(v) for k, v in self.samples.items()}
        small = sum(memoryview(f).nbytes for f in _util.pack(zeros, self.probe_plan.plan.codec or "raw")[1])
        return small, self.probe_plan.up_bytes

    # -- per request -----------------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray], deadline_ms: Optional[float] = None) -> AdaptiveResult:
        """Decide, probe if the link needs it, execute, observe; returns outputs + the record."""
        t0 = time.perf_counter()
        now = self.clock()
        self._drain()
        self._sample_system()
        t_decide = time.perf_counter()
        d = self.ctl.decide(now)
        decide_ms = (time.perf_counter() - t_decide) * 1e3
        if d.probe:
            self._probe(inputs)
        deadline = self.objective.deadline_ms if deadline_ms is None else float(deadline_ms)
        deadline_s = deadline / 1e3 if math.isfinite(deadline) else self.rt.deadline_s
        res = self.rt.run(inputs, plan=d.plan, deadline=deadline_s)
        self.ctl.observe(self.clock(), self._measured(d.plan, res, deadline_s))
        pred = d.predicted()
        out = AdaptiveResult(res.outputs, d.plan, d.reason, pred.latency_ms if pred else math.nan,
                             (time.perf_counter() - t0) * 1e3, res.outcome, d.probe, res,
                             _estimates(self.ctl.last_estimates), decide_ms)
        self.history.append(out)
        del self.history[:-1000]  # NOTE: bounded: a daemon runs this for weeks
        return out

    def _measured(self, plan: Plan, res: RunResult, deadline_s: float) -> Measured:
        tm = res.timings
        device = tm.get("head", tm.get("full", 0.0)) + tm.get("encode", 0.0)
        if res.outcome != "offload" and res.transport == "skipped":
            # the runtime did not even try the link (too little time left): a bound on the
            # link (it had that long) moves the controller off the plan
            sent = res.bytes_sent or self.ctl.costs[plan].up_bytes  # nothing left: the plan's own size
            return Measured(plan, False, 0.0, sent, waited_ms=deadline_s * 1e3)
        if res.outcome != "offload":
            waited = tm.get("send_wait") if res.transport == "timeout" else None
            return Measured(plan, not plan.remote, device if not plan.remote else 0.0, res.bytes_sent,
                            waited_ms=waited)
        server = tm.get("server", 0.0)
        load = res.load or {}
        queue_ms = _num(load.get("queue")) * _num(load.get("service_ms"))
        return Measured(plan, True, device, res.bytes_sent, max(tm.get("send_wait", 0.0) - server, 0.0),
                        server, queue_ms)

    def _sample_system(self) -> None:
        if not self.watch_system:
            return
        t = time.monotonic()
        if t - self._sys_t < SYSTEM_SAMPLE_S:
            return
        self._sys_t = t
        from . import device

        load = device.load_sample()
        if load is not None:
            self.ctl.device.observe_system(load["other_cpu_percent"], load.get("freq_mhz"),
                                           load.get("max_freq_mhz"), load["cores"])

    # -- probes ----------------------------------------------------------------------------
    def _probe(self, inputs: Mapping[str, np.ndarray]):
        """Send a probe in the background (at most one in flight); its Future, or None."""
        client = self.rt.client
        if client is None or self.probe_plan is None:
            return None
        with self._probe_lock:
            if self._probe_inflight:
                return None
            self._probe_inflight = True
            self._n_probes += 1
            small = self._n_probes % 5 == 1
        from .transport import _util

        feeds = {k: np.zeros_like(v) for k, v in inputs.items()} if small else inputs
        down = not self.ctl.link.up
        codec = self.probe_plan.plan.codec or "raw"
        specs, frames = _util.pack(feeds, codec)
        nbytes = sum(memoryview(f).nbytes for f in frames)
        t0 = time.perf_counter()
        fut = client.submit(self.package.hash, None, specs, frames, codec=codec, timeout=1.0)

        def done(f):
            # NOTE: the in-flight flag is cleared whatever happens here: a probe whose answer
            # raised (a failed or cancelled Future) left it set, and no probe ever went out
            # again, so a runtime that had gone local on a slow link stayed local for good
            try:
                reply = f.result()
                if reply.ok:
                    server = _num(reply.message.meta.get("service_ms"))
                    self._probes.put((self.clock(), reply.bytes_sent or nbytes,
                                      (time.perf_counter() - t0) * 1e3 - server, down))
                else:
                    self._probes.put((self.clock(), nbytes, None, down))
            except Exception as e:  # noqa: BLE001 - a failed probe is an observation, not an error
                log.debug("probe failed: %s", e)
                self._probes.put((self.clock(), nbytes, None, down))
            finally:
                with self._probe_lock:
                    self._probe_inflight = False

        fut.add_done_callback(done)
        return fut

    def _drain(self) -> None:
        while True:
            try:
                t, nbytes, ms, down = self._probes.get_nowait()
            except queue.Empty:
                return
            self.ctl.observe_probe(t, nbytes, ms, sent_while_down=down)

    # -- lifecycle -------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"package": self.package.name, "hash": self.package.hash, "device": self.device_label,
                "pace": self.pace, "objective": {"kind": self.objective.kind, "deadline_ms": self.objective.deadline_ms,
                                                 "accuracy_floor": self.objective.accuracy_floor},
                "plans": [c.to_dict() for c in self.costs]}

    def close(self) -> None:
        self.rt.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _estimates(e) -> dict:
    return {"up": e.link.up, "mbps": round(e.link.mbps, 3), "rtt_ms": round(e.link.rtt_ms, 3),
            "confidence": round(e.link.confidence, 3), "slowdown": round(e.slowdown, 3),
            "server_queue_ms": round(e.server_queue_ms, 3), "server_factor": round(e.server_factor, 3)}


def _paced(c: PlanCost, pace: float) -> PlanCost:
    from dataclasses import replace

    return replace(c, device_ms=c.device_ms * pace, encode_ms=c.encode_ms * pace) if pace != 1.0 else c


def _num(v) -> float:
    # NOTE: load reports come from the network: a non-number is ignored, never raised
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else 0.0


def _default_samples(pkg: Package) -> Dict[str, np.ndarray]:
    from .profiling import sample_inputs

    return sample_inputs(pkg)
