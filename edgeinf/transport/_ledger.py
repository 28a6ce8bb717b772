"""The broker's books: requests in flight, per-client limits and workers' load (no I/O).

Pure bookkeeping so the at-most-once and fairness rules are plain code with plain tests;
``broker.py`` does the sockets.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Set, Tuple

Key = Tuple[bytes, int]  # (client routing id, request id)
LOAD_FIELDS = ("queue", "busy", "workers", "capacity")
_MAX_LOAD = 10**6


def clean_load(v) -> Dict[str, int]:
    """The numeric load fields of a worker's report; anything else is ignored.

    A worker is a peer like any other: a string, a list, NaN or a huge number in ``load``
    must not reach arithmetic in the broker."""
    if not isinstance(v, dict):
        return {}
    out = {}
    for k in LOAD_FIELDS:
        x = v.get(k)
        if type(x) in (int, float) and math.isfinite(x) and 0 <= x <= _MAX_LOAD:
            out[k] = int(x)
    return out


@dataclass
class Worker:
    id: bytes
    last_seen: float
    load: Dict[str, int] = field(default_factory=dict)
    forwarded: int = 0
    outstanding: Set[Key] = field(default_factory=set)

    @property
    def capacity(self) -> int:
        return max(self.load.get("capacity", 1), 1)

    def set_load(self, load: Dict[str, int]) -> None:
        if load:
            self.load = load

    def room(self) -> int:
        return self.capacity - len(self.outstanding)

    def score(self) -> float:
        return len(self.outstanding) / self.capacity


@dataclass
class Request:
    client: bytes
    rid: int
    owner: bytes             # whose in-flight limit it counts against
    deadline: float          # monotonic
    body: list               # the frames, kept for re-dispatch
    name: Optional[str] = None                         # the client's "client" field, for CANCEL
    sent_to: Set[bytes] = field(default_factory=set)   # workers that may run it
    current: bytes = b""                                # the one it was last sent to


class Ledger:
    """Requests in flight by key, and how many each owner holds.

    Parameters
    ----------
    per_client
        Most requests one owner may have in flight.
    max_clients
        Most distinct owners with requests in flight at once.
    """

    def __init__(self, per_client: int = 8, max_clients: int = 1024):
        if per_client < 1 or max_clients < 1:
            raise ValueError(f"per_client and max_clients must be >= 1; got {per_client}, {max_clients}")
        self.per_client, self.max_clients = per_client, max_clients
        self._reqs: Dict[Key, Request] = {}
        self._owners: Counter = Counter()

    def __len__(self) -> int:
        return len(self._reqs)

    def __contains__(self, key: Key) -> bool:
        return key in self._reqs

    def get(self, key: Key) -> Optional[Request]:
        return self._reqs.get(key)

    def refuse(self, owner: bytes) -> Optional[str]:
        """Why ``owner`` may not add a request now (a BUSY reason), or None."""
        if self._owners[owner] >= self.per_client:
            return "client limit"
        if owner not in self._owners and len(self._owners) >= self.max_clients:
            return "too many clients"
        return None

    def add(self, key: Key, req: Request) -> None:
        self._reqs[key] = req
        self._owners[req.owner] += 1

    def pop(self, key: Key) -> Optional[Request]:
        req = self._reqs.pop(key, None)
        if req is not None:
            self._owners[req.owner] -= 1
            if self._owners[req.owner] <= 0:
                del self._owners[req.owner]  # bounded: idle identities leave no trace
        return req

    def expired(self, before: float) -> List[Key]:
        """Keys whose deadline is earlier than ``before`` (their clients have fallen back)."""
        return [k for k, r in self._reqs.items() if r.deadline < before]

    def owners(self) -> int:
        return len(self._owners)

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._reqs))
