"""Estimators fed only by what really happened. Pure classes: the clock is passed in.

- :class:`LinkEstimator`: uplink bandwidth and RTT from real transfers (bytes sent, time
  from send to reply minus the server's own time). Bandwidth is tracked as an EWMA of its
  logarithm with a variance, so one slow transfer does not halve the estimate and a 10x
  step is followed in two or three samples (a surprising sample, or one long after the
  last, gets a larger gain).
  Confidence decays with the age of the last sample; ``needs_probe`` says when to send a
  small probe. A failed transfer marks the link down until a transfer succeeds.
- :class:`DeviceEstimator`: slowdown of the device vs its profile, from measured head times,
  with psutil's CPU load and frequency as a prior when nothing was measured lately.
- :class:`ServerEstimator`: queueing and service time from the worker's LOAD reports.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional


@dataclass
class Ewma:
    """EWMA with variance (West's exponentially weighted incremental variance)."""

    alpha: float
    mean: Optional[float] = None
    var: float = 0.0
    n: int = 0

    def update(self, x: float, alpha: Optional[float] = None) -> float:
        a = self.alpha if alpha is None else alpha
        if self.mean is None:
            self.mean, self.var = x, 0.0
        else:
            d = x - self.mean
            self.mean += a * d
            self.var = (1 - a) * (self.var + a * d * d)
        self.n += 1
        return self.mean

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))


@dataclass(frozen=True)
class LinkEstimate:
    """A snapshot of the link, as the cost model reads it."""

    up: bool
    log_bw: float  # mean of ln(bits/s)
    log_bw_std: float  # uncertainty of ln(bw), grown with age
    rtt_ms: float
    confidence: float  # 0..1: decays with the age of the last sample
    age_s: float
    failures: int = 0  # remote attempts failed in a row (0 after any success)
    bw_confidence: float = 0.0  # as ``confidence``, aged from the last transfer large enough to measure bandwidth

    @property
    def mbps(self) -> float:
        return math.exp(self.log_bw) / 1e6

    def transfer_ms(self, nbytes: int, z: float = 0.0) -> float:
        """Time to move ``nbytes``: RTT + bytes/bw. ``z`` > 0 is pessimistic (a quantile of bw);
        ``z`` = 0 gives the expectation of a lognormal 1/bw (mean latency)."""
        if not self.up:
            return math.inf
        # NOTE: the lognormal mean exp(s^2/2) explodes for a stale estimate; cap s there so a
        # stale link is "uncertain", not "hopeless" (exploration and probes handle staleness)
        s = self.log_bw_std
        inv_bw = math.exp(-self.log_bw + (z * s if z else 0.5 * min(s, 1.0) ** 2))
        return self.rtt_ms + nbytes * 8 * inv_bw * 1000.0


class WindowMin:
    """Minimum of the samples of the last ``window_s`` seconds (a monotonic deque: O(1) per sample)."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._q: deque = deque()  # (time, value), values increasing from left to right

    def update(self, now_s: float, x: float) -> None:
        q = self._q
        while q and q[-1][1] >= x:
            q.pop()
        q.append((now_s, x))
        while q[0][0] < now_s - self.window_s:
            q.popleft()

    @property
    def value(self) -> Optional[float]:
        return self._q[0][1] if self._q else None


class LinkEstimator:
    """Uplink bandwidth and RTT from transfers; see the module docstring."""

    def __init__(self, prior_mbps: float = 5.0, prior_rtt_ms: float = 10.0, alpha: float = 0.35,
                 surprise_alpha: float = 0.75, tau_s: float = 1.5, drift_per_s: float = 0.5,
                 small_bytes: int = 3000):
        self.bw = Ewma(alpha)
        # NOTE: the RTT is the minimum of the last 10 s of samples (BBR's min_rtt), not their
        # mean: a small transfer's time also holds any wait behind our own probe or request
        # still crossing the link (a 16 kB probe takes 130 ms at 1 Mbit/s), only ever more,
        # and a mean of such samples read a 10 ms link as 26-72 ms (UMTS replay)
        self.rtt = WindowMin(10.0)
        self.prior = (math.log(prior_mbps * 1e6), prior_rtt_ms)
        self.surprise_alpha, self.tau_s, self.drift, self.small = surprise_alpha, tau_s, drift_per_s, small_bytes
        self.last_s: Optional[float] = None  # any transfer
        self.bw_s: Optional[float] = None  # the last one that measured bandwidth
        self.up = True
        self.failures = 0

    def observe(self, now_s: float, nbytes: int, transfer_ms: float) -> None:
        """A transfer of ``nbytes`` up (plus a small reply) took ``transfer_ms`` end to end,
        not counting the server's own compute."""
        self.up, self.failures, self.last_s = True, 0, now_s
        rtt = self.rtt.value if self.rtt.value is not None else self.prior[1]
        if nbytes <= self.small:
            # NOTE: a small transfer is mostly RTT; it also says little about bandwidth. A large
            # one that was fast (a LAN, loopback) is still a bandwidth sample: treating it as
            # RTT left a fast link "not measured" forever. It does not renew the bandwidth's
            # own age (``bw_confidence``): a plan of small transfers kept a 1 Mbit/s estimate
            # "fresh" for as long as it ran, on a link back at 50 Mbit/s
            # NOTE: minus its serialization at the bandwidth estimate: 1.2 kB take 24 ms at
            # 0.4 Mbit/s, which the cost model charges again as transfer
            serial_ms = nbytes * 8 / math.exp(self.bw.mean if self.bw.mean is not None else self.prior[0]) * 1000.0
            self.rtt.update(now_s, max(transfer_ms - serial_ms, 0.25 * transfer_ms, 0.1))
            return
        prev_bw_s, self.bw_s = self.bw_s, now_s
        if transfer_ms < rtt:  # no transfer is faster than the RTT: the RTT fell
            self.rtt.update(now_s, 0.5 * transfer_ms)
            rtt = self.rtt.value
        serial_ms = max(transfer_ms - rtt, 0.05 * transfer_ms, 0.2)
        x = math.log(nbytes * 8 / (serial_ms / 1000.0))
        surprise = self.bw.mean is not None and abs(x - self.bw.mean) > max(3 * self.bw.std, math.log(2.0))
        # NOTE: the older the last bandwidth sample, the more this one counts (an EWMA over
        # irregular samples: the old estimate's weight decays with time, as its confidence
        # does in ``estimate``). With a fixed gain, a link sampled once a second by probes
        # (a local plan) needed 4-5 probes to follow a 10x step up, and the exact replay of
        # tests/test_byom.py's trace stayed local through a whole 4 s high segment
        age = math.inf if prev_bw_s is None else max(now_s - prev_bw_s, 0.0)
        base = self.surprise_alpha if surprise else self.bw.alpha
        self.bw.update(x, 1.0 - (1.0 - base) * math.exp(-age / self.tau_s))

    def fail(self, now_s: float, nbytes: int = 0, waited_ms: Optional[float] = None) -> None:
        """A transfer failed. ``waited_ms`` given (a timeout): the link moved ``nbytes`` slower
        than that, so it counts as a (pessimistic) sample, and only a second timeout in a row
        marks the link down; no ``waited_ms`` (peer gone, connection refused): down at once."""
        self.failures += 1
        self.last_s = now_s
        if self.failures == 1 and self.bw.mean is not None:  # what the link was before this streak
            self._before = (self.bw.mean, self.bw.var, self.bw.n)
        if waited_ms is not None and nbytes > self.small and self.failures < 2:
            # bytes did not make it in waited_ms: the bandwidth is at most this (a bound, so
            # clamp the estimate rather than average it in)
            rtt = self.rtt.value if self.rtt.value is not None else self.prior[1]
            bound = math.log(nbytes * 8 / (max(waited_ms - rtt, 1.0) / 1000.0))
            self.bw_s = now_s
            self.bw.update(min(bound, self.bw.mean if self.bw.mean is not None else bound), alpha=1.0)
            return
        self.up = False

    def revive(self, now_s: float) -> None:
        """An answer came back over a link marked down: it is up again, but the time that
        answer took includes the outage, so it is no bandwidth sample; the estimate stays
        stale (low confidence) and the next probe measures the link afresh.

        The bandwidth goes back to what it was before the failures: the bound the first
        timeout set belongs to the outage, and keeping it made every remote plan look
        hopeless, so the next probe waited the slow interval (2.4 s back to offload after a
        4 s cut; about 0.5 s with this)."""
        self.up, self.failures = True, 0
        before = getattr(self, "_before", None)
        if before is not None:
            self.bw.mean, self.bw.var, self.bw.n = before
            self._before = None

    def estimate(self, now_s: float) -> LinkEstimate:
        age = math.inf if self.last_s is None else max(now_s - self.last_s, 0.0)
        log_bw = self.bw.mean if self.bw.mean is not None else self.prior[0]
        std = self.bw.std if self.bw.n >= 2 else 1.0
        # uncertainty grows with age (random walk), so stale estimates invite a probe
        bw_age = math.inf if self.bw_s is None else max(now_s - self.bw_s, 0.0)
        # (from the last bandwidth sample: transfers that only measured RTT leave it uncertain)
        std = math.sqrt(std * std + (self.drift ** 2) * min(bw_age, 60.0))
        conf = 0.0 if self.bw.mean is None else math.exp(-age / self.tau_s)
        rtt = self.rtt.value if self.rtt.value is not None else self.prior[1]
        return LinkEstimate(self.up, log_bw, std, rtt, conf, age, self.failures,
                            0.0 if self.bw.mean is None else math.exp(-bw_age / self.tau_s))

    def needs_probe(self, now_s: float, last_probe_s: Optional[float], interval_s: float = 0.5) -> bool:
        """Probe when stale (or down) and no probe went out in the last ``interval_s``."""
        stale = self.estimate(now_s).confidence < 0.5 or not self.up
        return stale and (last_probe_s is None or now_s - last_probe_s >= interval_s)


class DeviceEstimator:
    """How much slower the device runs than its profile (1.0 = as profiled)."""

    def __init__(self, alpha: float = 0.3, tau_s: float = 5.0):
        self.ratio = Ewma(alpha)
        self.tau_s = tau_s
        self.last_s: Optional[float] = None
        self.prior = 1.0

    def observe(self, now_s: float, measured_ms: float, profiled_ms: float) -> None:
        if profiled_ms <= 0 or measured_ms <= 0:
            return
        self.ratio.update(math.log(measured_ms / profiled_ms))
        self.last_s = now_s

    def observe_system(self, cpu_percent: float, freq_mhz: Optional[float], max_freq_mhz: Optional[float],
                       cores: int = 1) -> None:
        """psutil's view: other load takes a share of the cores; a lower clock runs slower."""
        busy = min(max(cpu_percent / 100.0, 0.0), 0.95)
        freq = (max_freq_mhz / freq_mhz) if freq_mhz and max_freq_mhz else 1.0
        self.prior = max(1.0, freq) / max(1.0 - busy * (1.0 if cores <= 1 else 0.5), 0.2)

    def slowdown(self, now_s: float) -> float:
        if self.ratio.mean is None or self.last_s is None:
            return self.prior
        w = math.exp(-max(now_s - self.last_s, 0.0) / self.tau_s)
        return math.exp(w * self.ratio.mean + (1 - w) * math.log(self.prior))


class ServerEstimator:
    """Server queueing delay and service-time factor from LOAD reports."""

    def __init__(self, alpha: float = 0.4):
        self.queue_ms = Ewma(alpha)
        self.service = Ewma(alpha)

    def observe(self, queue_ms: float, service_ms: Optional[float] = None, profiled_ms: Optional[float] = None) -> None:
        self.queue_ms.update(max(queue_ms, 0.0))
        if service_ms and profiled_ms:
            self.service.update(service_ms / profiled_ms)

    @property
    def queue(self) -> float:
        return self.queue_ms.mean or 0.0

    @property
    def factor(self) -> float:
        return self.service.mean or 1.0
