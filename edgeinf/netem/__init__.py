"""Link emulation: mahimahi traces, a user-space TCP proxy, and kernel shaping where root.

- :class:`Trace`, :class:`Link`: read mahimahi traces; exact capacity/transfer-time queries.
- :class:`LinkProxy`: unprivileged TCP proxy imposing a trace, delay, jitter and outages.
- :mod:`edgeinf.netem.kernel`: network namespaces + veth + ``tc tbf`` (root only).
"""
from .proxy import LinkProxy
from .trace import PACKET, Link, Trace

__all__ = ["Trace", "Link", "LinkProxy", "PACKET"]
