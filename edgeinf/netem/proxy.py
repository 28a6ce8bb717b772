"""User-space link emulator: a TCP proxy that follows a mahimahi trace in real time.

Runs unprivileged on loopback between the edge and the worker::

    edge --TCP--> LinkProxy(listen) --shaped--> worker(target)

Each direction is a :class:`_Shaper`: bytes read from one side wait in a FIFO until the
trace gives delivery opportunities (1500 bytes each; an opportunity with nothing queued is
lost, as in mahimahi), then sit in a delay line for the one-way delay plus jitter (never
reordered: it is one TCP stream), then are written to the other side. Outages stop
delivery in both directions; data queues and flows again when the link comes back, like a
cellular link that loses coverage. All connections share the link, as flows share a
mahimahi shell. The event loop runs in its own thread, so the proxy can live inside a
benchmark or a test process.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
import time
from typing import List, Optional, Tuple

from ..errors import ConfigError
from .trace import PACKET, Link, Trace

log = logging.getLogger("edgeinf")

QUEUE_LIMIT = 8 << 20  # bytes queued per direction before we stop reading (TCP backpressure)
IDLE_TICK_S = 0.05


class _Shaper:
    """One direction of the link."""

    def __init__(self, proxy: "LinkProxy", link: Link, jitter_ms: float):
        self.p, self.link, self.jitter_ms = proxy, link, jitter_ms
        self.queue: collections.deque = collections.deque()  # [writer, bytes | None(EOF)]
        self.queued = 0
        self.line: collections.deque = collections.deque()  # (deliver_at_ms, writer, bytes|None)
        self.last_ms = 0.0
        self.last_deliver = 0.0
        self.wake = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.rng = random.Random(proxy.seed)

    async def push(self, writer, data: Optional[bytes]) -> None:
        if not self.queue:
            self.last_ms = self.p.now_ms()  # opportunities before the data arrived are lost
        self.queue.append([writer, data])
        self.queued += len(data or b"")
        self.wake.set()
        if self.queued > QUEUE_LIMIT:
            self.space.clear()
            await self.space.wait()

    def _budget(self, now: float) -> float:
        if self.link.trace is None:
            return 0.0 if self.link.down(now) else float("inf")
        return float(self.link.count(self.last_ms, now) * PACKET)

    def _release(self, now: float) -> None:
        budget = self._budget(now) if self.queue else 0.0
        self.last_ms = now
        while self.queue and (budget > 0 or self.queue[0][1] is None):
            writer, data = self.queue[0]
            if data is None:
                piece = None
                self.queue.popleft()
            else:
                take = int(min(len(data), budget))
                piece, rest = data[:take], data[take:]
                budget -= take
                self.queued -= take
                if rest:
                    self.queue[0][1] = rest
                else:
                    self.queue.popleft()
            jitter = self.rng.gauss(0.0, self.jitter_ms) if self.jitter_ms else 0.0
            at = max(now + self.link.delay_ms + jitter, self.last_deliver)  # FIFO: no overtaking
            self.last_deliver = at
            self.line.append((at, writer, piece))
        if self.queued <= QUEUE_LIMIT // 2:
            self.space.set()

    def _deliver(self, now: float) -> None:
        while self.line and self.line[0][0] <= now:
            _, writer, piece = self.line.popleft()
            if writer.is_closing():
                continue
            if piece is None:
                writer.close()
            else:
                writer.write(piece)

    def _next_wake_ms(self, now: float) -> Optional[float]:
        cands = []
        if self.line:
            cands.append(self.line[0][0])
        if self.queue:
            if self.link.trace is None:
                ends = [b for a, b in self.link.outages if a <= now < b]
                cands.append(min(ends) if ends else now)
            else:
                cands.append(self.link.serialize_done(now, 1) - 0.99)  # just after the next opportunity
        return min(cands) if cands else None

    async def run(self) -> None:
        while True:
            now = self.p.now_ms()
            self._release(now)
            self._deliver(now)
            nxt = self._next_wake_ms(now)
            timeout = IDLE_TICK_S if nxt is None else min(max((nxt - now) / 1000.0, 0.0005), IDLE_TICK_S)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass


class LinkProxy:
    """Forward ``listen`` -> ``target`` through an emulated link.

    Parameters
    ----------
    target : (host, port) of the real server (the worker).
    up, down : mahimahi traces for edge->server and server->edge (None: unlimited rate).
    delay_ms, jitter_ms : one-way delay and its jitter (std. dev., ms), each direction.
    offset_s : where in the trace the replay starts (the trace repeats).
    outages : ``[(start_s, duration_s)]`` on the replay clock (seconds since :meth:`start`).
    """

    def __init__(self, target: Tuple[str, int], up: Optional[Trace] = None, down: Optional[Trace] = None,
                 delay_ms: float = 0.0, jitter_ms: float = 0.0, offset_s: float = 0.0,
                 outages: List[Tuple[float, float]] = (), listen: Tuple[str, int] = ("127.0.0.1", 0),
                 seed: int = 0):
        if delay_ms < 0 or jitter_ms < 0 or offset_s < 0:
            raise ConfigError(f"delay_ms, jitter_ms and offset_s must be >= 0; got {delay_ms}, {jitter_ms}, {offset_s}")
        self.target, self.listen, self.seed = tuple(target), tuple(listen), seed
        self.offset_ms = offset_s * 1000.0
        self.up_link = Link(up, delay_ms)
        self.down_link = Link(down, delay_ms)
        self.jitter_ms = jitter_ms
        self.t0 = None
        self.port: Optional[int] = None
        self._loop = self._thread = self._server = None
        for start, dur in outages:
            self.add_outage(start, dur)

    # -- clocks ------------------------------------------------------------------------------
    def now_ms(self) -> float:
        """Trace time in ms (the offset plus time since start)."""
        return self.offset_ms + (time.monotonic() - self.t0) * 1000.0

    def elapsed_s(self) -> float:
        return time.monotonic() - self.t0

    # -- control -------------------------------------------------------------------------------
    def add_outage(self, start_s: float, duration_s: float) -> None:
        """Cut the link for ``duration_s`` from ``start_s`` on the replay clock (seconds since start)."""
        if duration_s <= 0:
            raise ConfigError(f"outage duration must be > 0 s; got {duration_s}")
        w = (self.offset_ms + start_s * 1000.0, self.offset_ms + (start_s + duration_s) * 1000.0)
        for link in (self.up_link, self.down_link):
            link.outages = sorted(link.outages + [w])

    def cut(self, duration_s: float) -> None:
        """Cut the link now for ``duration_s``."""
        self.add_outage(self.elapsed_s() if self.t0 else 0.0, duration_s)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> int:
        """Start the proxy thread; returns the listening port."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="edgeinf-netem", daemon=True)
        self._thread.start()
        if not ready.wait(10.0) or self.port is None:
            raise ConfigError(f"link proxy failed to listen on {self.listen}")
        return self.port

    def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self.t0 = time.monotonic()
        self._up, self._down = _Shaper(self, self.up_link, self.jitter_ms), _Shaper(self, self.down_link, self.jitter_ms)
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, *self.listen))
        except OSError as e:
            log.error("netem: cannot listen on %s: %s", self.listen, e)
            ready.set()
            return
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [self._loop.create_task(s.run()) for s in (self._up, self._down)]
        ready.set()
        self._loop.run_forever()

    async def _handle(self, c_reader, c_writer) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError as e:
            log.warning("netem: cannot reach target %s: %s", self.target, e)
            c_writer.close()
            return
        try:
            await asyncio.gather(self._pump(c_reader, self._up, s_writer), self._pump(s_reader, self._down, c_writer))
        except asyncio.CancelledError:  # proxy stopping: close both ends quietly
            c_writer.close()
            s_writer.close()

    @staticmethod
    async def _pump(reader, shaper: _Shaper, writer) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await shaper.push(writer, data)
        except (ConnectionError, OSError):
            pass
        await shaper.push(writer, None)  # EOF travels behind the data

    def stop(self) -> None:
        if self._loop is None:
            return

        async def _shutdown():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(_shutdown(), self._loop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()
        self._loop = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
