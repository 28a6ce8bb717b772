"""One exception hierarchy for the whole library.

Every error edgeinf raises derives from :class:`EdgeInfError`, so callers can catch one
type. Messages name the argument that was wrong, what was expected and what was given.
"""
from __future__ import annotations


class EdgeInfError(Exception):
    """Base class of every edgeinf error."""


class ConfigError(EdgeInfError, ValueError):
    """A configuration file, option or environment variable is invalid."""


class ModelError(EdgeInfError):
    """A model file is missing, unreadable or of an unknown format."""


class BackendError(EdgeInfError):
    """An inference engine failed, or is not installed."""


class InputError(EdgeInfError, ValueError):
    """Inputs given to a model do not match its input specs (name, shape or dtype)."""


class KernelError(EdgeInfError):
    """The native extension is missing, or a native kernel rejected its arguments."""


class SplitError(EdgeInfError):
    """A cut is invalid or a graph cannot be split where asked."""


class PackageError(EdgeInfError):
    """A model package is malformed or a file in it does not match its hash."""


class CodecError(EdgeInfError, ValueError):
    """An encoded tensor buffer is corrupt, truncated or over the configured limits."""


class ProtocolError(EdgeInfError):
    """A wire message is malformed, too large or of an unknown version."""


class PeerTimeout(EdgeInfError, TimeoutError):
    """A remote peer did not answer by the deadline."""


class PeerBusy(EdgeInfError):
    """A remote peer refused the request because its queue is full."""


class AuthError(EdgeInfError):
    """A CurveZMQ handshake or allowlist check failed."""


def nearest(name: str, choices, n: int = 3) -> list:
    """Return up to ``n`` choices closest to ``name``, for "did you mean" messages."""
    import difflib

    choices = [str(c) for c in choices]
    return difflib.get_close_matches(str(name), choices, n=n, cutoff=0.0)
