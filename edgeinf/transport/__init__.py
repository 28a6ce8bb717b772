"""Transport: the wire protocol (pure), the edge client, auth helpers and the broker.

``protocol`` never imports zmq; the rest is imported lazily so that importing
``edgeinf.transport.protocol`` stays cheap and dependency-free.
"""
from __future__ import annotations

__all__ = ["Client", "Outcome", "Reply"]


def __getattr__(name):
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
