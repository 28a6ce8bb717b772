"""CurveZMQ: key files, the live client allowlist and fail-closed server setup.

Pitfalls this module exists for (docs/transport.md, shared RELIABILITY.md):
without a running authenticator CURVE accepts any client key; ``configure_curve`` only
logs a failure to load keys; revoking a key does not cut open connections. So the server
refuses to start unless the authenticator runs and the allowlist holds at least one key,
and every message's authenticated ``User-Id`` is checked against the live allowlist.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Dict, FrozenSet, Optional, Tuple, Union

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from ..errors import AuthError, ConfigError

log = logging.getLogger("edgeinf")
PathLike = Union[str, Path]


def check_libzmq() -> None:
    """libzmq below 4.3.3 has pre-auth memory bugs; CURVE needs libsodium support."""
    if zmq.zmq_version_info() < (4, 3, 3):
        raise ConfigError(f"libzmq {zmq.zmq_version()} is too old; edgeinf needs >= 4.3.3 (CVE-2020-15166)")
    if not zmq.has("curve"):
        raise ConfigError("this libzmq was built without CURVE; install pyzmq from PyPI wheels")


def generate_keys(directory: PathLike, name: str = "client") -> Tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` into ``directory``."""
    check_libzmq()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if (d / f"{name}.key_secret").exists():
        raise ConfigError(f"{d / (name + '.key_secret')} exists; pick another --name or remove it")
    public, secret = zmq.auth.create_certificates(str(d), name)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def load_keypair(path: PathLike) -> Tuple[bytes, Optional[bytes]]:
    """(public, secret) z85 keys from a ``.key`` or ``.key_secret`` file; names the bad file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"key file {p} not found")
    try:
        public, secret = zmq.auth.load_certificate(str(p))
    except (ValueError, OSError) as e:
        raise ConfigError(f"{p} is not a CurveZMQ key file: {e}") from None
    return public, secret


def read_public_key(path: PathLike) -> bytes:
    """The z85 public key in a ``.key`` file; ValueError unless it is a whole, valid key."""
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as e:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"{path}: {e}") from None
    try:
        if public is None or len(public) != 40 or len(z85.decode(public)) != 32:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: not a 40-character z85 CURVE public key (truncated or garbage?)") from None
    return public


class Allowlist:
    """Client public keys allowed to talk to a server, re-read when the directory changes.

    Used both as the ZAP credentials provider (new handshakes) and per message (open
    connections), so a removed key is refused on its next message. A reload never raises
    and never half-applies: each ``*.key`` file is parsed on its own, a bad one (garbage, or
    caught half-copied) is skipped with a warning, keeping the key that file name held
    before, and the new set replaces the old in one assignment.
    """

    def __init__(self, directory: PathLike, recheck_s: float = 0.2):
        self.directory = Path(directory)
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._sig = None
        self._files: Dict[str, bytes] = {}  # file name -> key: what a bad rewrite falls back on
        self._keys: FrozenSet[bytes] = frozenset()
        self._checked = 0.0
        self.skipped = 0  # bad files seen (a counter for stats and tests)
        if not self.directory.is_dir():
            raise ConfigError(f"CURVE allowlist directory {self.directory} does not exist")
        self.reload(force=True)
        if not self._keys:
            raise ConfigError(f"CURVE allowlist {self.directory} holds no valid client keys (*.key); "
                              "refusing to start (add keys with `edgeinf keys generate`)")

    def _signature(self):
        return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(self.directory)
                            if e.name.endswith(".key") and e.is_file()))

    def reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.recheck_s:
            return
        self._checked = now
        try:
            sig = self._signature()
        except OSError:
            sig = ()  # the directory vanished or is unreadable: fail closed, allow nobody
        if sig == self._sig:
            return
        files = {}
        for name, _, _ in sig:
            try:
                files[name] = read_public_key(self.directory / name)
            except ValueError as e:
                self.skipped += 1
                kept = self._files.get(name)
                log.warning("CURVE allowlist: skipping %s (%s)%s", name, e,
                            "; keeping the key it held before" if kept else "")
                if kept:
                    files[name] = kept
        keys = frozenset(files.values())
        with self._lock:
            if self._sig is not None and keys != self._keys:
                log.info("CURVE allowlist %s changed: %d key(s)", self.directory, len(keys))
            self._sig, self._files, self._keys = sig, files, keys

    def allowed(self, z85_key: Union[str, bytes]) -> bool:
        self.reload()
        key = z85_key.encode() if isinstance(z85_key, str) else bytes(z85_key)
        with self._lock:
            return key in self._keys

    def callback(self, domain, z85_key) -> bool:  # ZAP credentials-provider hook
        # NOTE: an exception here ends pyzmq's authenticator thread (and with it every later
        # handshake), so nothing may escape: refuse this handshake instead
        try:
            ok = self.allowed(z85_key)
        except Exception:  # noqa: BLE001 - see NOTE
            log.exception("CURVE allowlist check failed; handshake refused")
            return False
        if not ok:
            log.warning("CURVE handshake refused for key %s", bytes(z85_key)[:8].decode(errors="replace"))
        return ok


class ServerSecurity:
    """Fail-closed CURVE server: one authenticator, one allowlist per ZAP domain.

    ``allow_dir`` is the default domain's allowlist (clients); ``domains`` adds more, e.g.
    the broker's ``{"workers": DIR}`` for its backend, applied with ``apply(sock, "workers")``.
    """

    def __init__(self, secret_file: PathLike, allow_dir: Optional[PathLike] = None, *,
                 domains: Optional[Dict[str, PathLike]] = None):
        check_libzmq()
        self.public, self.secret = load_keypair(secret_file)
        if not self.secret:
            raise ConfigError(f"{secret_file} holds no secret key; pass the .key_secret file")
        dirs = dict(domains or {})
        if allow_dir is not None:
            dirs["*"] = allow_dir
        if not dirs:
            raise ConfigError("CURVE needs at least one allowlist directory (--allow)")
        self.allowlists = {d: Allowlist(p) for d, p in dirs.items()}
        self.auth: Optional[ThreadAuthenticator] = None

    @property
    def allowlist(self) -> Allowlist:
        return self.allowlists.get("*") or next(iter(self.allowlists.values()))

    def start(self, ctx: zmq.Context) -> None:
        self.auth = ThreadAuthenticator(ctx, log=logging.getLogger("edgeinf.auth"))
        self.auth.start()
        for domain, allow in self.allowlists.items():
            self.auth.configure_curve_callback(domain=domain, credentials_provider=allow)
        self.check_alive()

    def alive(self) -> bool:
        """Whether the ZAP authenticator thread runs (without it no handshake completes)."""
        return self.auth is not None and self.auth.is_alive()

    def check_alive(self) -> None:
        """AuthError if the authenticator is not running: servers call this periodically and
        exit non-zero, so a supervisor restarts the process with a fresh authenticator."""
        if not self.alive():
            raise AuthError("CURVE configured but the ZAP authenticator is not running; refusing to serve")

    def apply(self, sock: zmq.Socket, domain: str = "*") -> None:
        self.check_alive()
        if domain not in self.allowlists:
            raise ConfigError(f"no CURVE allowlist for ZAP domain {domain!r}; have {sorted(self.allowlists)}")
        if domain != "*":
            sock.zap_domain = domain.encode()
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def user_allowed(self, frame: zmq.Frame, domain: str = "*") -> bool:
        """Whether the sender of ``frame`` (its authenticated User-Id) is still allowed."""
        try:
            user = frame.get("User-Id")
        except zmq.ZMQError:
            return False  # no authenticated user on a CURVE socket: fail closed
        return self.allowlists[domain].allowed(user)

    def stop(self) -> None:
        if self.auth is not None:
            if self.auth.is_alive():
                self.auth.stop()
            else:  # a dead thread's pipe has no reader: stop() would block on TERMINATE
                self.auth.pipe.close(linger=0)
                self.auth.pipe = None
                zmq.auth.Authenticator.stop(self.auth)
            self.auth = None


def apply_client_curve(sock: zmq.Socket, server_public: PathLike, client_secret: PathLike) -> None:
    """Make ``sock`` a CURVE client of the server whose public key file is ``server_public``."""
    check_libzmq()
    if not server_public or not client_secret:
        raise ConfigError("a CURVE client needs the server's public .key and its own .key_secret")
    spub, _ = load_keypair(server_public)
    cpub, csec = load_keypair(client_secret)
    if not csec:
        raise ConfigError(f"{client_secret} holds no secret key; pass the client's .key_secret file")
    sock.curve_secretkey = csec
    sock.curve_publickey = cpub
    sock.curve_serverkey = spub
