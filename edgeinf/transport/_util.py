"""Small zmq and codec helpers shared by the client, worker and broker."""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import numpy as np
import zmq

from .. import codec
from ..errors import CodecError, ConfigError
from . import protocol

log = logging.getLogger("edgeinf")


# NOTE: pyzmq sends a frame of at least copy_threshold bytes (default 64 KiB) zero-copy, and
# then releases it through its garbage-collector thread (an inproc message and a GIL hand-off
# per frame, after libzmq is done with it); below ~256 KiB a memcpy is cheaper: a 64 KiB
# round trip took 59 us copied against 80-210 us zero-copy on a 2-core EPYC (bare pyzmq).
COPY_THRESHOLD = 256 * 1024


def socket(ctx: zmq.Context, kind: int, limits: protocol.Limits = protocol.DEFAULT_LIMITS) -> zmq.Socket:
    """A socket that never hangs on close and refuses oversize frames at the transport."""
    s = ctx.socket(kind)
    s.linger = 0
    s.copy_threshold = COPY_THRESHOLD
    # NOTE: an oversize message is never delivered and its sender is disconnected
    s.setsockopt(zmq.MAXMSGSIZE, limits.max_frame + 4096)
    return s


# -- multipart send/recv: what send_multipart/recv_multipart do, at a third of the cost ------
# NOTE: those spend ~3 us of Python per extra part (a Flag-enum `|` and a type check per part
# on send, a getsockopt(RCVMORE) per part on receive): about 10 us of every round trip
_MORE = int(zmq.SNDMORE)
_BUFFERS = (bytes, zmq.Frame, memoryview, np.ndarray)


def send_frames(sock: zmq.Socket, frames: list, flags: int = 0) -> None:
    """``sock.send_multipart(frames, flags, copy=False)``: every part is checked before the
    first is sent (a bad one must not leave a half-sent message on the socket)."""
    for f in frames:
        if type(f) not in _BUFFERS:
            memoryview(f)  # TypeError for a non-buffer, as send_multipart raises
    flags = int(flags)
    more = flags | _MORE
    for f in frames[:-1]:
        sock.send(f, more, copy=False)
    sock.send(frames[-1], flags, copy=False)


def recv_frames(sock: zmq.Socket, flags: int = 0) -> List[zmq.Frame]:
    """``sock.recv_multipart(flags, copy=False)``: the rest of a message is there once its
    first part is (zmq delivers messages whole), so only that recv can raise ``zmq.Again``."""
    flags = int(flags)
    f = sock.recv(flags, copy=False)
    parts = [f]
    while f.more:
        f = sock.recv(flags, copy=False)
        parts.append(f)
    return parts


def is_loopback(endpoint: str) -> bool:
    """Whether every host in a ZeroMQ ``endpoint`` is this machine (ipc/inproc, localhost,
    127.0.0.0/8, ::1). Parsed as addresses: ``127.evil.com``, ``*`` and interface names are not."""
    import ipaddress

    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    try:
        netloc = urlsplit(endpoint).netloc
    except ValueError:  # e.g. an unclosed "[": not an address we can vouch for
        return False
    hosts = []
    for part in netloc.split(";"):  # "source;destination" on connect
        if part.startswith("["):
            hosts.append(part[1:part.find("]")] if "]" in part else "")
        else:
            hosts.append(part.rsplit(":", 1)[0] if ":" in part else part)
    for host in hosts:
        if host.lower() == "localhost":
            continue
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False  # a name (could resolve anywhere), "*" or an interface
        mapped = getattr(ip, "ipv4_mapped", None)
        if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)):
            return False
    return bool(hosts)


def check_plaintext(endpoint: str, curve: bool, allow_plaintext: bool) -> None:
    """Refuse a plaintext non-loopback endpoint unless explicitly allowed (and log it)."""
    if curve or is_loopback(endpoint):
        return
    if not allow_plaintext:
        raise ConfigError(f"{endpoint} is not loopback and CURVE is off; pass --curve-secret/--allow "
                          "or --allow-plaintext to serve unencrypted on the network")
    log.warning("serving PLAINTEXT on non-loopback %s (--allow-plaintext): anyone who can reach it "
                "can submit work and read results", endpoint)


# -- codecs: names travel on the wire; "raw" frames skip the codec entirely -----------------
def codec_names() -> List[str]:
    """Every codec this process can encode and decode (sent in HELLO)."""
    return ["raw"] + [n for n in codec.names() + codec.image_names() if n != "raw"]


def _check(name: str) -> None:
    if name != "raw" and not codec.known(name):
        raise CodecError(f"codec {name!r} is not available here; available: {codec_names()}")


def decoder(name: str) -> Optional[Callable]:
    """The decode function for ``name`` (None for raw); CodecError if unknown here."""
    _check(name)
    return None if name == "raw" else codec.decode


def pack(arrays: Mapping[str, np.ndarray], codec_name: str = "raw",
         axes: Optional[Mapping[str, int]] = None) -> Tuple[List[dict], list]:
    """(tensor specs, frames) for ``arrays`` encoded with ``codec_name``.

    Parameters
    ----------
    arrays : tensors by name, sent in this order.
    codec_name : the message's codec (pass the same name to ``Client.submit``).
    axes : channel axis per tensor name for per-channel (``-pc``) codecs, e.g.
        ``Cut.channel_axes()`` (NHWC: -1, NCHW: 1); a tensor without one gets the codec's default.

    Integer and bool tensors (shapes, indices, masks) never go through the codec, lossy or
    not: they cross raw, and their spec says so (``"codec": "raw"``), which
    ``protocol.decode`` honours per tensor (``docs/protocol.md``).
    """
    specs, frames = protocol.pack_raw(arrays)
    _check(codec_name)
    if codec_name == "raw":
        return specs, frames
    axes = axes or {}
    unknown = set(axes) - {s["name"] for s in specs}
    if unknown:
        raise ConfigError(f"axes names tensors not sent: {sorted(unknown)}; sent: {[s['name'] for s in specs]}")
    out = []
    for spec, a in zip(specs, frames):
        if a.dtype.kind in "biu":  # NOTE: a shape or an index off by one is not "within tolerance"
            spec["codec"] = "raw"
            out.append(a)
        else:
            out.append(codec.encode(a, codec_name, axis=axes.get(spec["name"])))
    return specs, out


def unpack(msg: protocol.Message, limits: protocol.Limits = protocol.DEFAULT_LIMITS) -> Dict[str, np.ndarray]:
    """Arrays of a decoded message, each tensor through its own codec (``Message.codecs``)."""
    fn = None
    for name in set(msg.codecs) if msg.codecs else (msg.codec,):
        fn = decoder(name) or fn  # CodecError for any codec unknown here
    return msg.arrays(fn, limits)
