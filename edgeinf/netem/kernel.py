"""Kernel link shaping: a network namespace, a veth pair and ``tc tbf`` (root only).

The user-space proxy (:mod:`edgeinf.netem.proxy`) is the default because it runs anywhere
and does delay, jitter and outages. Where the process is root, this module shapes the real
kernel path instead: the worker runs inside namespace ``ns`` (``ip netns exec``), the edge
talks to ``peer_ip`` through the veth pair, and a token-bucket filter on each end limits
the rate, re-set from the trace as it plays (``follow``). Delay and jitter need the
``netem`` qdisc, which some kernels (this project's CI machine among them) do not have:
:func:`qdisc_available` checks, and :class:`KernelLink` says so instead of pretending.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from typing import List, Optional

from ..errors import ConfigError
from .trace import Trace

log = logging.getLogger("edgeinf")


def _sh(cmd: List[str], check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise ConfigError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def can_shape() -> Optional[str]:
    """None when kernel shaping can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "kernel shaping needs root (use the user-space proxy: edgeinf.netem.LinkProxy)"
    missing = [b for b in ("ip", "tc") if shutil.which(b) is None]
    return f"missing tools: {', '.join(missing)} (apt-get install iproute2)" if missing else None


def qdisc_available(kind: str) -> bool:
    """Whether this kernel knows qdisc ``kind`` (tried on lo of a throwaway namespace)."""
    if shutil.which("unshare") is None or shutil.which("tc") is None:
        return False
    args = {"netem": "delay 10ms", "tbf": "rate 8mbit burst 32kbit latency 400ms"}.get(kind, "")
    flags = "-n" if os.geteuid() == 0 else "-rn"
    res = _sh(["unshare", flags, "sh", "-c", f"ip link set lo up && tc qdisc add dev lo root {kind} {args}"],
              check=False)
    return res.returncode == 0


class KernelLink:
    """A namespace ``ns`` joined to the host by veth; rate-limited both ways with ``tc tbf``.

    Use as a context manager; run the worker with ``ip netns exec <ns> ...`` bound to
    ``peer_ip`` and connect the edge to it.
    """

    def __init__(self, mbps: float = 100.0, delay_ms: float = 0.0, index: int = 0):
        reason = can_shape()
        if reason:
            raise ConfigError(reason)
        if delay_ms and not qdisc_available("netem"):
            raise ConfigError("delay needs the 'netem' qdisc, which this kernel does not have; "
                              "use the user-space proxy (LinkProxy) for delay, jitter and outages")
        tag = f"{os.getpid() % 10000}{index}"
        self.ns, self.host_if, self.peer_if = f"edgeinf{tag}", f"ei{tag}a", f"ei{tag}b"
        self.host_ip, self.peer_ip = f"10.213.{index}.1", f"10.213.{index}.2"
        self.mbps, self.delay_ms = mbps, delay_ms
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self):
        ns = ["ip", "netns", "exec", self.ns]
        _sh(["ip", "netns", "add", self.ns])
        try:
            _sh(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if])
            _sh(["ip", "link", "set", self.peer_if, "netns", self.ns])
            _sh(["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if])
            _sh(["ip", "link", "set", self.host_if, "up"])
            _sh(ns + ["ip", "addr", "add", f"{self.peer_ip}/24", "dev", self.peer_if])
            _sh(ns + ["ip", "link", "set", self.peer_if, "up"])
            _sh(ns + ["ip", "link", "set", "lo", "up"])
            self.set_rate(self.mbps, verb="add")
        except ConfigError:
            self.__exit__()
            raise
        return self

    def _tbf(self, mbps: float) -> List[str]:
        # burst of ~10 ms at the rate (at least a few packets) keeps the shaping smooth
        burst = max(int(mbps * 1e6 / 8 * 0.01), 15000)
        return ["tbf", "rate", f"{max(mbps, 0.01):.3f}mbit", "burst", str(burst), "latency", "2000ms"]

    def set_rate(self, mbps: float, verb: str = "change") -> None:
        _sh(["tc", "qdisc", verb, "dev", self.host_if, "root"] + self._tbf(mbps))
        _sh(["ip", "netns", "exec", self.ns, "tc", "qdisc", verb, "dev", self.peer_if, "root"] + self._tbf(mbps))
        self.mbps = mbps

    def follow(self, trace: Trace, offset_s: float = 0.0, step_s: float = 0.1) -> None:
        """Re-set the rate every ``step_s`` from the trace's capacity, in a background thread."""
        t0 = time.monotonic()

        def loop():
            while not self._stop.wait(step_s):
                t = offset_s + time.monotonic() - t0
                self.set_rate(trace.mbps(t, t + step_s))

        self._thread = threading.Thread(target=loop, name="edgeinf-tbf", daemon=True)
        self._thread.start()

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join(2.0)
        _sh(["ip", "link", "del", self.host_if], check=False)  # deletes the peer too
        _sh(["ip", "netns", "del", self.ns], check=False)
