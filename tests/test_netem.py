"""Link emulator: mahimahi traces, and bandwidth/delay/outage measured through the real proxy.

Proxy tests run a real TCP sink on a loopback port behind ``LinkProxy``; each is short
(about a second) and every wait is bounded.
"""
import os
import socket
import threading
import time

import pytest

from edgeinf.errors import ConfigError
from edgeinf.netem import PACKET, Link, LinkProxy, Trace
from edgeinf.netem import kernel
from edgeinf.evaluation.setup import DEFAULT_TRACE


def test_shipped_trace_parses_and_matches_its_published_mean():
    tr = Trace.load(DEFAULT_TRACE)
    assert tr.period_ms == 140000
    assert tr.mbps(0, 140) == pytest.approx(13.2, rel=0.05)  # README's figure


def test_counting_repeats_the_trace_and_skips_outages(tmp_path):
    p = tmp_path / "t.up"
    p.write_text("1\n1\n5\n10\n")
    tr = Trace.load(p)
    assert tr.count_before(10) == 3 and tr.count_before(11) == 4 and tr.count_before(12) == 6  # repeats at 10 ms
    link = Link(tr, delay_ms=7.0, outages=[(0.0, 10.0)])
    assert link.count(0, 10) == 0 and link.count(10, 20) == 4
    # 3 packets from t=0: the outage [0, 10) drops 1, 1, 5; then 10, 11, 11 (the repeat)
    assert link.serialize_done(0.0, 3 * PACKET) == 12.0 and link.arrival(0.0, 3 * PACKET) == 19.0


def test_bad_traces_name_the_problem(tmp_path):
    p = tmp_path / "bad.up"
    p.write_text("5\nx\n")
    with pytest.raises(ConfigError, match="integer"):
        Trace.load(p)
    with pytest.raises(ConfigError, match="non-decreasing"):
        Trace([5, 3])


def test_steps_trace_has_the_asked_rates():
    tr = Trace.steps([(1.0, 12.0), (1.0, 1.2)])
    assert tr.mbps(0, 1) == pytest.approx(12.0, rel=0.02) and tr.mbps(1, 2) == pytest.approx(1.2, rel=0.05)


class Sink:
    """A real TCP server: acknowledges each ``chunk`` bytes received with one byte."""

    def __init__(self, chunk: int):
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.chunk = chunk
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        c, _ = self.srv.accept()
        got = 0
        while True:
            d = c.recv(65536)
            if not d:
                return
            got += len(d)
            while got >= self.chunk:
                got -= self.chunk
                c.sendall(b"k")

    @property
    def addr(self):
        return self.srv.getsockname()


def _transfer(proxy, nbytes: int, conn=None) -> float:
    conn.settimeout(10.0)
    t = time.monotonic()
    conn.sendall(b"x" * nbytes)
    assert conn.recv(1) == b"k"
    return time.monotonic() - t


def test_proxy_imposes_bandwidth_and_delay():
    sink = Sink(400_000)
    with LinkProxy(sink.addr, up=Trace.constant(8.0), delay_ms=25.0) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            dt = _transfer(proxy, 400_000, c)  # 400 kB at 8 Mbit/s = 0.4 s, + 2 x 25 ms
    assert dt == pytest.approx(0.45, rel=0.15)


def test_proxy_small_message_sees_the_round_trip_delay():
    sink = Sink(100)
    with LinkProxy(sink.addr, delay_ms=40.0) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            dt = min(_transfer(proxy, 100, c) for _ in range(3))
    assert 0.078 <= dt <= 0.12


def test_proxy_follows_the_trace_offset():
    sink = Sink(100_000)
    slow_then_fast = Trace.steps([(30.0, 0.8), (30.0, 16.0)])
    with LinkProxy(sink.addr, up=slow_then_fast, offset_s=30.0) as proxy:  # start in the fast half
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            dt = _transfer(proxy, 100_000, c)
    assert dt < 0.2  # 0.05 s at 16 Mbit/s; 1 s at 0.8


def test_proxy_outage_stalls_then_delivers():
    sink = Sink(50_000)
    with LinkProxy(sink.addr, up=Trace.constant(40.0)) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            proxy.cut(0.6)
            dt = _transfer(proxy, 50_000, c)
            after = _transfer(proxy, 50_000, c)
    assert 0.58 <= dt <= 0.9 and after < 0.1


def test_kernel_shaping_detection_says_why():
    reason = kernel.can_shape()
    assert reason is None or "root" in reason or "missing" in reason
    assert isinstance(kernel.qdisc_available("netem"), bool)


@pytest.mark.skipif(os.geteuid() != 0 or kernel.can_shape() is not None, reason="kernel shaping needs root + ip/tc")
def test_kernel_link_sets_up_and_tears_down():
    if not kernel.qdisc_available("tbf"):
        pytest.skip("this kernel has no tbf qdisc")
    with kernel.KernelLink(mbps=8.0) as k:
        k.set_rate(4.0)
        assert k.mbps == 4.0
    if not kernel.qdisc_available("netem"):
        with pytest.raises(ConfigError, match="netem"):
            kernel.KernelLink(delay_ms=10.0)
