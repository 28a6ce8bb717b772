"""At most once: the idempotency window of a server (pure bookkeeping, no sockets).

A request is identified by its key ``(user, client, id)``. Once answered, the key is
remembered for ``window_s`` seconds (a *tombstone*, a few dozen bytes) and its reply is kept
while the reply cache has room (bounded in entries and bytes). A retry of the key:

* within the window, reply still cached: answered from the cache (``FLAG_CACHED``);
* within the window, reply evicted: refused, ``ErrorCode.RETRY_WINDOW``;
* after the window, or after its tombstone was evicted by count: refused the same way,
  because the client's *watermark* (highest id forgotten) is at or above the retried id.

The watermark is why request ids must increase per client (``edgeinf.transport.Client``
counts up): it turns "forgotten" into "refused" instead of "run again". Forgetting a whole
client (more than ``max_clients`` of them) is the one way a retry could run twice; it is
counted in ``forgotten_clients`` and logged by the caller.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Dict, Optional, Tuple

Key = Tuple[str, object, int]


class ReplayWindow:
    """Remember answered keys for ``window_s``; keep their replies while room allows.

    Parameters
    ----------
    window_s : float
        How long an answered request id stays known (the idempotency window).
    cache_entries, cache_bytes : int
        Bounds of the reply cache (entries, and tensor bytes they hold).
    max_keys : int
        Tombstones kept at most (older ones are forgotten early, into the watermark).
    max_clients : int
        Clients whose watermark is kept.
    """

    def __init__(self, window_s: float = 60.0, cache_entries: int = 1024, cache_bytes: int = 64 * 2**20,
                 max_keys: int = 1 << 17, max_clients: int = 1 << 14, clock=time.monotonic):
        self.window_s, self.cache_entries, self.cache_bytes = window_s, cache_entries, cache_bytes
        self.max_keys, self.max_clients, self.clock = max_keys, max_clients, clock
        self._cache: "OrderedDict[Key, tuple]" = OrderedDict()  # key -> (reply, nbytes)
        self._cache_nbytes = 0
        self._done: "OrderedDict[Key, float]" = OrderedDict()   # key -> answered at (tombstones)
        self._mark: "OrderedDict[tuple, int]" = OrderedDict()   # (user, client) -> highest id forgotten
        self.forgotten_clients = 0

    @property
    def nbytes(self) -> int:
        return self._cache_nbytes

    def __len__(self) -> int:
        return len(self._cache)

    def lookup(self, key: Key) -> Tuple[str, Optional[tuple]]:
        """``("new", None)``, ``("cached", reply)`` or ``("refused", None)`` for an arriving key."""
        self.expire()
        hit = self._cache.get(key)
        if hit is not None:
            return "cached", hit[0]
        if key in self._done:
            return "refused", None
        mark = self._mark.get(key[:2])
        if mark is not None and type(key[2]) is int and key[2] <= mark:
            return "refused", None
        return "new", None

    def remember(self, key: Key, reply: tuple, nbytes: int) -> None:
        """Record ``key`` as answered with ``reply`` (``nbytes`` of tensor data)."""
        now = self.clock()
        self._done[key] = now
        self._done.move_to_end(key)
        old = self._cache.pop(key, None)
        if old is not None:
            self._cache_nbytes -= old[1]
        self._cache[key] = (reply, nbytes)
        self._cache_nbytes += nbytes
        while self._cache and (len(self._cache) > self.cache_entries or self._cache_nbytes > self.cache_bytes):
            self._cache_nbytes -= self._cache.popitem(last=False)[1][1]
        while len(self._done) > self.max_keys:
            self._forget(*self._done.popitem(last=False))

    def expire(self) -> None:
        """Forget keys answered more than ``window_s`` ago (cheap when nothing is due)."""
        limit = self.clock() - self.window_s
        while self._done:
            key, t = next(iter(self._done.items()))
            if t > limit:
                return
            self._done.popitem(last=False)
            self._forget(key, t)

    def _forget(self, key: Key, _t: float) -> None:
        hit = self._cache.pop(key, None)
        if hit is not None:
            self._cache_nbytes -= hit[1]
        if type(key[2]) is not int:
            return
        who = key[:2]
        self._mark[who] = max(self._mark.get(who, -1), key[2])
        self._mark.move_to_end(who)
        while len(self._mark) > self.max_clients:
            self._mark.popitem(last=False)
            self.forgotten_clients += 1

    def stats(self) -> Dict[str, int]:
        return {"cached": len(self._cache), "known": len(self._done), "clients": len(self._mark)}
