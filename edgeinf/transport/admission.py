"""Fair service between clients: a job queue that takes turns by owner (pure, thread-safe).

A plain FIFO lets one client that queues many requests (or never reads its answers) put
everyone else behind all of its work. Here each owner (a CURVE key, else a connection)
has its own FIFO, and executors take the head of the next owner in round-robin order, so a
well-behaved client waits for at most one job per other active owner, not for their
whole backlog. ``None`` (the stop marker) is served after everything queued before it.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Deque, Hashable, Optional


class FairQueue:
    """``put(job, owner)`` / ``get()``: round-robin across owners, FIFO within one."""

    def __init__(self):
        self._queues: "OrderedDict[Hashable, Deque]" = OrderedDict()
        self._stops = 0
        self._cond = threading.Condition()

    def put(self, job, owner: Hashable = None) -> None:
        with self._cond:
            if job is None:
                self._stops += 1
            else:
                self._queues.setdefault(owner, deque()).append(job)
            self._cond.notify()

    def get(self, timeout: Optional[float] = None):
        """The next job (the owner served longest ago first); None means stop."""
        with self._cond:
            while not self._queues and not self._stops:
                if not self._cond.wait(timeout):
                    raise TimeoutError("no job")
            if not self._queues:
                self._stops -= 1
                return None
            owner, q = next(iter(self._queues.items()))
            job = q.popleft()
            del self._queues[owner]
            if q:  # back of the line
                self._queues[owner] = q
            return job

    def __len__(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())
