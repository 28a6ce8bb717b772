"""Mahimahi link traces and the link model built on them.

A mahimahi trace is a text file with one integer per line: a time in milliseconds from
the start of the trace. Each line is one opportunity for a 1500-byte packet to cross the
link during that millisecond (several packets in one millisecond repeat the timestamp).
The trace repeats with a period equal to its last timestamp, as mahimahi's LinkShell does.

:class:`Link` adds what the file does not say: one-way delay and outage windows (absolute
seconds on the replay clock, not repeated). The same object drives the live proxy
(:mod:`edgeinf.netem.proxy`) and the exact replay used for the oracle and static baselines,
so both see the same capacity at the same moment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple, Union

import numpy as np

from ..errors import ConfigError

PACKET = 1500  # bytes per delivery opportunity (mahimahi's MTU-sized packet)


class Trace:
    """Sorted delivery-opportunity timestamps (ms) of one period of a mahimahi trace."""

    def __init__(self, ms: Sequence[int], name: str = "trace"):
        ms = np.asarray(ms, dtype=np.int64)
        if ms.ndim != 1 or ms.size == 0:
            raise ConfigError(f"trace {name!r}: expected at least one timestamp, got {ms.size}")
        if np.any(np.diff(ms) < 0) or ms[0] < 0:
            raise ConfigError(f"trace {name!r}: timestamps must be non-negative and non-decreasing")
        self.ms, self.name = ms, name
        # NOTE: mahimahi loops at the last timestamp; a one-line "0" trace would never advance.
        self.period_ms = int(max(ms[-1], 1))
        self._n_last = int(np.sum(ms == self.period_ms))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Trace":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"cannot read trace file {path}: {e}") from None
        try:
            ms = [int(line) for line in text.split()]
        except ValueError as e:
            raise ConfigError(f"trace {path}: every line must be an integer millisecond ({e})") from None
        return cls(ms, name=path.name)

    @classmethod
    def constant(cls, mbps: float, period_ms: int = 1000, name: str = "") -> "Trace":
        """A fixed-rate trace like mahimahi's own ``12Mbps`` files."""
        return cls.steps([(period_ms / 1000.0, mbps)], name=name or f"{mbps:g}Mbps")

    @classmethod
    def steps(cls, segments: Iterable[Tuple[float, float]], name: str = "steps") -> "Trace":
        """Piecewise-constant capacity: ``[(seconds, Mbit/s), ...]`` written as opportunities."""
        out: List[int] = []
        t0 = 0.0
        for secs, mbps in segments:
            pps = mbps * 1e6 / 8 / PACKET  # packets per second
            n = int(round(secs * pps))
            if n:
                out.extend(int(t0 + (i + 1) * 1000.0 / pps) for i in range(n))
            t0 += secs * 1000.0
        # a final opportunity at the end keeps the period equal to the segments' length
        out.append(int(t0))
        return cls(sorted(out), name=name)

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text("\n".join(str(int(x)) for x in self.ms) + "\n")

    # -- counting, across repeats ----------------------------------------------------------
    def count_before(self, t_ms: float) -> int:
        """Opportunities with timestamp < ``t_ms`` since time 0 (the trace repeating)."""
        if t_ms <= 0:
            return 0
        k, rem = divmod(float(t_ms), self.period_ms)
        n = int(k) * self.ms.size + int(np.searchsorted(self.ms, rem, side="left"))
        if rem == 0 and k > 0:  # the last period's final opportunity sits exactly at t_ms: not before it
            n -= self._n_last
        return n

    def nth_time(self, n: int) -> float:
        """Timestamp (ms) of the opportunity with global 0-based index ``n``."""
        per, j = divmod(int(n), self.ms.size)
        return float(per * self.period_ms + self.ms[j])

    def mbps(self, t0_s: float, t1_s: float) -> float:
        """Mean capacity in Mbit/s over ``[t0_s, t1_s)``."""
        n = self.count_before(t1_s * 1000) - self.count_before(t0_s * 1000)
        return n * PACKET * 8 / max(t1_s - t0_s, 1e-9) / 1e6

    def series(self, t0_s: float, t1_s: float, step_s: float = 1.0) -> np.ndarray:
        """Capacity (Mbit/s) in consecutive windows of ``step_s`` from ``t0_s``."""
        edges = np.arange(t0_s, t1_s + 1e-9, step_s)
        return np.array([self.mbps(a, b) for a, b in zip(edges[:-1], edges[1:])])


@dataclass
class Link:
    """A trace plus one-way delay and outages; times in ms on the trace's clock.

    ``outages`` are ``(start_ms, end_ms)`` windows with no delivery at all (a cut link).
    """

    trace: Trace
    delay_ms: float = 0.0
    outages: List[Tuple[float, float]] = field(default_factory=list)

    def __post_init__(self):
        self.outages = sorted((float(a), float(b)) for a, b in self.outages)
        for a, b in self.outages:
            if b <= a:
                raise ConfigError(f"outage window must end after it starts; got ({a}, {b}) ms")

    def down(self, t_ms: float) -> bool:
        return any(a <= t_ms < b for a, b in self.outages)

    def count(self, t0_ms: float, t1_ms: float) -> int:
        """Usable opportunities in ``[t0_ms, t1_ms)`` (outages removed)."""
        if t1_ms <= t0_ms:
            return 0
        n = self.trace.count_before(t1_ms) - self.trace.count_before(t0_ms)
        for a, b in self.outages:
            lo, hi = max(a, t0_ms), min(b, t1_ms)
            if hi > lo:
                n -= self.trace.count_before(hi) - self.trace.count_before(lo)
        return n

    def serialize_done(self, start_ms: float, nbytes: int) -> float:
        """Time the last of ``nbytes`` leaves the sender, starting at ``start_ms`` on an idle link."""
        need = max(1, math.ceil(nbytes / PACKET))
        t = float(start_ms)
        for a, b in self.outages:
            if b <= t:
                continue
            avail = self.count(t, a) if a > t else 0
            if avail >= need:
                break
            need -= avail
            t = max(t, b)
        idx = self.trace.count_before(t) + need - 1
        return self.trace.nth_time(idx) + 1.0  # the opportunity is used during that millisecond

    def arrival(self, start_ms: float, nbytes: int) -> float:
        """Time ``nbytes`` sent at ``start_ms`` have all arrived at the far end."""
        return self.serialize_done(start_ms, nbytes) + self.delay_ms
