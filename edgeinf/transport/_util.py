"""Small zmq and codec helpers shared by the client, worker and broker."""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import numpy as np
import zmq

from ..errors import CodecError, ConfigError
from . import protocol

log = logging.getLogger("edgeinf")


def socket(ctx: zmq.Context, kind: int, limits: protocol.Limits = protocol.DEFAULT_LIMITS) -> zmq.Socket:
    """A socket that never hangs on close and refuses oversize frames at the transport."""
    s = ctx.socket(kind)
    s.linger = 0
    # NOTE: an oversize message is never delivered and its sender is disconnected
    s.setsockopt(zmq.MAXMSGSIZE, limits.max_frame + 4096)
    return s


def is_loopback(endpoint: str) -> bool:
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = urlsplit(endpoint).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def check_plaintext(endpoint: str, curve: bool, allow_plaintext: bool) -> None:
    """Refuse a plaintext non-loopback endpoint unless explicitly allowed (and log it)."""
    if curve or is_loopback(endpoint):
        return
    if not allow_plaintext:
        raise ConfigError(f"{endpoint} is not loopback and CURVE is off; pass --curve-secret/--allow "
                          "or --allow-plaintext to serve unencrypted on the network")
    log.warning("serving PLAINTEXT on non-loopback %s (--allow-plaintext): anyone who can reach it "
                "can submit work and read results", endpoint)


# -- codecs: edgeinf.codec when present (another module), raw always --------------------------
def _codec_module():
    try:
        from .. import codec  # noqa: PLC0415 - optional, written in parallel
    except ImportError:
        return None
    return codec


def codec_names() -> List[str]:
    mod = _codec_module()
    names = list(mod.names()) + list(mod.image_names()) if mod is not None else []
    return ["raw"] + [n for n in names if n != "raw"]


def _known(codec: str) -> bool:
    mod = _codec_module()
    return codec == "raw" or (mod is not None and mod.known(codec))


def decoder(codec: str) -> Optional[Callable]:
    """The decode function for ``codec`` (None for raw); CodecError if unknown here."""
    if codec == "raw":
        return None
    if not _known(codec):
        raise CodecError(f"codec {codec!r} is not available here; available: {codec_names()}")
    return _codec_module().decode


def pack(arrays: Mapping[str, np.ndarray], codec: str = "raw") -> Tuple[List[dict], list]:
    """(tensor specs, frames) for ``arrays`` encoded with ``codec``."""
    specs, frames = protocol.pack_raw(arrays)
    if codec == "raw":
        return specs, frames
    if not _known(codec):
        raise CodecError(f"codec {codec!r} is not available; available: {codec_names()}")
    enc = _codec_module().encode
    return specs, [enc(np.asarray(a), codec) for a in frames]


def unpack(msg: protocol.Message, limits: protocol.Limits = protocol.DEFAULT_LIMITS) -> Dict[str, np.ndarray]:
    return msg.arrays(decoder(msg.codec), limits)
