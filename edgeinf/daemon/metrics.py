"""Prometheus metrics of the daemon (``GET /metrics``), all named ``edgeinf_*``.

Counters and histograms are updated per request; link estimates, device load and
temperature and the workers' load are read when scraped (a collector), so a scrape
always sees the controller's current view rather than the last request's.

========================================  =========  ==========================================
name                                      type       labels
========================================  =========  ==========================================
edgeinf_requests_total                    counter    model, plan, outcome (local | offload |
                                                     local_fallback | error | rejected)
edgeinf_request_latency_seconds           histogram  model, plan (decide to outputs)
edgeinf_fallbacks_total                   counter    model (remote failed, ran here)
edgeinf_deadline_misses_total             counter    model
edgeinf_rejected_total                    counter    model, reason (queue_full | client_limit)
edgeinf_inflight_requests                 gauge      model (running + waiting)
edgeinf_link_bandwidth_bits_per_second    gauge      model (the controller's estimate)
edgeinf_link_rtt_seconds                  gauge      model
edgeinf_link_up                           gauge      model (1 up, 0 down)
edgeinf_worker_queue                      gauge      model (queue length in the last load report)
edgeinf_worker_service_seconds            gauge      model (service time in the last load report)
edgeinf_device_slowdown_ratio             gauge      model (predicted local slowdown from load)
edgeinf_device_other_cpu_percent          gauge      model (CPU of all but this model: other
                                                     processes and the daemon's other models)
edgeinf_device_cpu_load_ratio             gauge      (1-minute load average / cores)
edgeinf_device_cpu_percent                gauge      (all processes, 0-100)
edgeinf_device_temperature_celsius        gauge      (absent where the platform has no sensor)
edgeinf_llm_requests_total                counter    model, mode, outcome
edgeinf_llm_tokens_total                  counter    model, source (edge | cloud)
========================================  =========  ==========================================
"""
from __future__ import annotations

import os
from typing import Callable, Mapping, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# NOTE: a Pi at 30-150 ms per model run; the low buckets catch local runs on a Jetson
BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self, models: Callable[[], Mapping[str, object]], load: Optional[Callable[[], object]] = None):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("edgeinf_requests", "Inference requests by model, plan and outcome",
                                ["model", "plan", "outcome"], registry=r)
        self.latency = Histogram("edgeinf_request_latency_seconds", "Latency from decision to outputs",
                                 ["model", "plan"], buckets=BUCKETS, registry=r)
        self.fallbacks = Counter("edgeinf_fallbacks", "Remote attempts that fell back to local execution",
                                 ["model"], registry=r)
        self.deadline_misses = Counter("edgeinf_deadline_misses", "Requests that finished after their deadline",
                                       ["model"], registry=r)
        self.rejected = Counter("edgeinf_rejected", "Requests refused before running (429/503)",
                                ["model", "reason"], registry=r)
        self.inflight = Gauge("edgeinf_inflight_requests", "Requests running or waiting", ["model"], registry=r)
        self.llm_requests = Counter("edgeinf_llm_requests", "Language-model requests", ["model", "mode", "outcome"],
                                    registry=r)
        self.llm_tokens = Counter("edgeinf_llm_tokens", "Generated tokens by where they were produced",
                                  ["model", "source"], registry=r)
        r.register(_Live(models, load))

    def observe(self, model: str, res, missed: bool) -> None:
        plan = str(res.plan)
        self.requests.labels(model, plan, res.outcome).inc()
        self.latency.labels(model, plan).observe(res.latency_ms / 1e3)
        if res.outcome == "local_fallback":
            self.fallbacks.labels(model).inc()
        if missed:
            self.deadline_misses.labels(model).inc()


class _Live(Collector):
    """Values read at scrape time from the models' last estimates and from the OS."""

    def __init__(self, models: Callable[[], Mapping[str, object]], load: Optional[Callable[[], object]] = None):
        self.models, self.load = models, load

    def describe(self):
        return []  # NOTE: dynamic families: nothing to check at registration

    def collect(self):
        fams = {k: GaugeMetricFamily(f"edgeinf_{k}", h, labels=["model"]) for k, h in (
            ("link_bandwidth_bits_per_second", "Estimated link bandwidth"),
            ("link_rtt_seconds", "Estimated link round-trip time"),
            ("link_up", "1 when the controller believes the link is up"),
            ("worker_queue", "Queue length in the worker's last load report"),
            ("worker_service_seconds", "Service time in the worker's last load report"),
            ("device_slowdown_ratio", "Predicted local slowdown from device load"),
            ("device_other_cpu_percent", "CPU used by everything but this model (other processes, other models)"))}
        others = getattr(self.load(), "last", {}) if self.load else {}
        for name, m in self.models().items():
            if name in others:
                fams["device_other_cpu_percent"].add_metric([name], others[name])
            est, load = getattr(m, "last_estimates", {}) or {}, getattr(m, "server_load", {}) or {}
            if est:
                fams["link_bandwidth_bits_per_second"].add_metric([name], float(est.get("mbps", 0.0)) * 1e6)
                fams["link_rtt_seconds"].add_metric([name], float(est.get("rtt_ms", 0.0)) / 1e3)
                fams["link_up"].add_metric([name], 1.0 if est.get("up") else 0.0)
                fams["device_slowdown_ratio"].add_metric([name], float(est.get("slowdown", 1.0)))
            if isinstance(load.get("queue"), (int, float)):
                fams["worker_queue"].add_metric([name], float(load["queue"]))
            if isinstance(load.get("service_ms"), (int, float)):
                fams["worker_service_seconds"].add_metric([name], float(load["service_ms"]) / 1e3)
        yield from fams.values()
        yield from _device(getattr(self.load(), "total", None) if self.load else None)


def _device(total: Optional[float]):
    import psutil

    from .. import device

    cores = psutil.cpu_count(logical=True) or 1
    g = GaugeMetricFamily("edgeinf_device_cpu_load_ratio", "1-minute load average per core")
    g.add_metric([], os.getloadavg()[0] / cores)
    yield g
    # NOTE: the daemon's load sampler's reading (psutil's interval state is process-wide:
    # a second reader here would shorten the sampler's windows)
    g = GaugeMetricFamily("edgeinf_device_cpu_percent", "CPU use of all processes, last 0.5 s (0-100)")
    g.add_metric([], psutil.cpu_percent(None) if total is None else total)
    yield g
    # NOTE: the device module's sensor choice (CPU package first), shared rather than copied
    t = device.temperature()
    if t is not None:
        g = GaugeMetricFamily("edgeinf_device_temperature_celsius", "Hottest CPU/SoC sensor")
        g.add_metric([], t)
        yield g
