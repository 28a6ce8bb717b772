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
from typing import Optional, Set, Tuple, Union

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

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


class Allowlist:
    """Client public keys allowed to talk to a server, re-read when the directory changes.

    Used both as the ZAP credentials provider (new handshakes) and per message (open
    connections), so a removed key is refused on its next message.
    """

    def __init__(self, directory: PathLike, recheck_s: float = 0.2):
        self.directory = Path(directory)
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._sig = None
        self._keys: Set[bytes] = set()
        self._checked = 0.0
        self.reload(force=True)
        if not self._keys:
            raise ConfigError(f"CURVE allowlist {self.directory} holds no client keys (*.key); "
                              "refusing to start (add keys with `edgeinf keys generate`)")

    def _signature(self):
        if not self.directory.is_dir():
            raise ConfigError(f"CURVE allowlist directory {self.directory} does not exist")
        return tuple(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(self.directory)
                            if e.name.endswith(".key")))

    def reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.recheck_s:
            return
        self._checked = now
        try:
            sig = self._signature()
        except (ConfigError, OSError):
            if force:
                raise
            sig = ()  # the directory vanished: fail closed, allow nobody
        if sig == self._sig:
            return
        keys = set(zmq.auth.load_certificates(str(self.directory))) if sig else set()
        with self._lock:
            if self._sig is not None and keys != self._keys:
                log.info("CURVE allowlist %s changed: %d key(s)", self.directory, len(keys))
            self._sig, self._keys = sig, keys

    def allowed(self, z85_key: Union[str, bytes]) -> bool:
        self.reload()
        key = z85_key.encode() if isinstance(z85_key, str) else bytes(z85_key)
        with self._lock:
            return key in self._keys

    def callback(self, domain, z85_key) -> bool:  # ZAP credentials-provider hook
        ok = self.allowed(z85_key)
        if not ok:
            log.warning("CURVE handshake refused for key %s", bytes(z85_key)[:8].decode(errors="replace"))
        return ok


class ServerSecurity:
    """Fail-closed CURVE server: authenticator + allowlist, applied to binding sockets."""

    def __init__(self, secret_file: PathLike, allow_dir: PathLike):
        check_libzmq()
        self.public, self.secret = load_keypair(secret_file)
        if not self.secret:
            raise ConfigError(f"{secret_file} holds no secret key; pass the .key_secret file")
        self.allowlist = Allowlist(allow_dir)
        self.auth: Optional[ThreadAuthenticator] = None

    def start(self, ctx: zmq.Context) -> None:
        self.auth = ThreadAuthenticator(ctx, log=logging.getLogger("edgeinf.auth"))
        self.auth.start()
        self.auth.configure_curve_callback(domain="*", credentials_provider=self.allowlist)
        if not self.auth.is_alive():
            raise AuthError("CURVE configured but the ZAP authenticator is not running; refusing to serve")

    def apply(self, sock: zmq.Socket) -> None:
        if self.auth is None or not self.auth.is_alive():
            raise AuthError("CURVE configured but the ZAP authenticator is not running; refusing to serve")
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def user_allowed(self, frame: zmq.Frame) -> bool:
        """Whether the sender of ``frame`` (its authenticated User-Id) is still allowed."""
        try:
            user = frame.get("User-Id")
        except zmq.ZMQError:
            return False  # no authenticated user on a CURVE socket: fail closed
        return self.allowlist.allowed(user)

    def stop(self) -> None:
        if self.auth is not None:
            self.auth.stop()
            self.auth = None


def apply_client_curve(sock: zmq.Socket, server_public: PathLike, client_secret: PathLike) -> None:
    """Make ``sock`` a CURVE client of the server whose public key file is ``server_public``."""
    check_libzmq()
    spub, _ = load_keypair(server_public)
    cpub, csec = load_keypair(client_secret)
    if not csec:
        raise ConfigError(f"{client_secret} holds no secret key; pass the client's .key_secret file")
    sock.curve_secretkey = csec
    sock.curve_publickey = cpub
    sock.curve_serverkey = spub
