"""The daemon's configuration: frozen dataclasses from flags and a TOML file, validated once.

A TOML file (``edgeinf daemon --config daemon.toml``) and the flags fill the same fields;
flags win, ``--model``/``--llm``/``--worker`` add to the file's. Every error names the field::

    http = "127.0.0.1:8080"            # default; a non-loopback bind needs an API key
    device = "raspberry-pi-4"          # EMULATED device profile (optional)
    workers = ["tcp://server:5555"]
    api_key_file = "/etc/edgeinf/daemon.key"
    [models.hand]
    source = "hand_landmark_full"       # a package dir, a .onnx/.tflite file or a zoo name
    deadline_ms = 120
    [llms.chat]
    gguf = "/var/lib/edgeinf/smollm2.gguf"
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigError, nearest

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # a URL path segment, as KServe needs
OBJECTIVES = ("latency", "accuracy", "energy")
LLM_MODES = ("auto", "local", "cloud", "escalate", "speculate")


@dataclass(frozen=True)
class ModelSpec:
    """One vision model: ``source`` is a package directory, a model file or a zoo name."""

    name: str
    source: str
    objective: str = "latency"
    deadline_ms: Optional[float] = None
    cuts: str = "pareto"  # for a file or zoo name: "pareto" (the package's Pareto cuts) or "none"

    def __post_init__(self):
        _check_name(self.name, "model")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"models.{self.name}.objective must be one of {OBJECTIVES}; got {self.objective!r}")
        if self.deadline_ms is not None and not (0 < float(self.deadline_ms) < 3.6e6):
            raise ConfigError(f"models.{self.name}.deadline_ms must be > 0 ms; got {self.deadline_ms}")
        if self.cuts not in ("pareto", "none"):
            raise ConfigError(f"models.{self.name}.cuts must be 'pareto' or 'none'; got {self.cuts!r}")


@dataclass(frozen=True)
class LLMSpec:
    """One language model served on the OpenAI routes (``edgeinf.llm``)."""

    name: str
    gguf: str
    mode: str = "auto"
    n_ctx: int = 2048
    threads: int = 2  # decode is memory-bound: 2 threads of a Pi's 4 cores leave room for vision models

    def __post_init__(self):
        _check_name(self.name, "llm")
        if self.mode not in LLM_MODES:
            raise ConfigError(f"llms.{self.name}.mode must be one of {LLM_MODES}; got {self.mode!r}")
        if not 64 <= int(self.n_ctx) <= 1 << 20:
            raise ConfigError(f"llms.{self.name}.n_ctx must be in [64, 1048576]; got {self.n_ctx}")


@dataclass(frozen=True)
class DaemonConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    models: Tuple[ModelSpec, ...] = ()
    llms: Tuple[LLMSpec, ...] = ()
    workers: Tuple[str, ...] = ()
    device: Optional[str] = None
    api_key: Optional[str] = field(default=None, repr=False)
    api_key_file: Optional[str] = None
    server_key: Optional[str] = None  # CURVE to the workers: the server's public key file
    client_key: Optional[str] = None  # and this device's .key_secret
    threads: int = 1
    queue: int = 8  # requests waiting per model beyond the one running, before 503
    per_client: int = 4  # requests one client (address + key) may have in flight, before 429
    max_body_mb: float = 32.0
    drain_s: float = 10.0
    log_format: str = "json"

    def validate(self) -> "DaemonConfig":
        """Check everything that needs no model loaded; returns self with the key file read."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"http port must be in [0, 65535]; got {self.port}")
        for what, v, lo in (("threads", self.threads, 1), ("queue", self.queue, 0), ("per_client", self.per_client, 1)):
            if int(v) < lo:
                raise ConfigError(f"{what} must be >= {lo}; got {v}")
        if not 0 < self.max_body_mb <= 4096 or self.drain_s < 0:
            raise ConfigError(f"max_body_mb must be in (0, 4096] and drain_s >= 0; got {self.max_body_mb}, {self.drain_s}")
        if self.log_format not in ("json", "text"):
            raise ConfigError(f"log_format must be 'json' or 'text'; got {self.log_format!r}")
        if bool(self.server_key) != bool(self.client_key):
            raise ConfigError("CURVE to the workers needs both server_key and client_key")
        names = [m.name for m in self.models] + [m.name for m in self.llms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"model names must be unique across models and llms; repeated: {dup}")
        cfg = self._with_key()
        if not is_loopback_host(cfg.host) and not cfg.api_key:
            raise ConfigError(f"refusing to serve on non-loopback {cfg.host}:{cfg.port} without an API key "
                              f"(--api-key KEY or --api-key-file FILE): anyone on the network could use it")
        return cfg

    def _with_key(self) -> "DaemonConfig":
        if self.api_key_file is None:
            if self.api_key is not None and len(self.api_key) < 8:
                raise ConfigError("api_key must be at least 8 characters")
            return self
        if self.api_key:
            raise ConfigError("give api_key or api_key_file, not both")
        p = Path(self.api_key_file)
        try:
            if p.stat().st_size > 4096:
                raise ConfigError(f"api_key_file {p} is over 4 KiB: not a key file")
            key = p.read_text().strip()
        except OSError as e:
            raise ConfigError(f"api_key_file {p}: {e.strerror or e}") from e
        if len(key) < 8 or any(c.isspace() for c in key):
            raise ConfigError(f"api_key_file {p} must hold one key of >= 8 characters without spaces")
        return replace(self, api_key=key)


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and 'localhost'; a name or 0.0.0.0 is not (it could be anything)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_http(value: str) -> Tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (loopback) or ``[::1]:PORT``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"http must be HOST:PORT (e.g. 127.0.0.1:8080); got {value!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def parse_pair(value: str, what: str) -> Tuple[str, str]:
    name, sep, src = value.partition("=")
    if not sep or not name or not src:
        raise ConfigError(f"--{what} must be NAME=SOURCE (e.g. hand=hand_landmark_full); got {value!r}")
    return name.strip(), src.strip()


def _check_name(name: str, what: str) -> None:
    if not NAME.match(name or ""):
        raise ConfigError(f"{what} name {name!r} must be 1-64 characters of letters, digits, '_', '.', '-'")


def _section(obj: Any, cls, where: str) -> dict:
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{where} must be a table; got {type(obj).__name__}")
    known = {f.name for f in fields(cls)} - {"name"}
    for k in obj:
        if k not in known:
            raise ConfigError(f"{where}: unknown key {k!r}; did you mean {nearest(k, known)}? Known: {sorted(known)}")
    return dict(obj)


def from_toml(path: Path) -> Dict[str, Any]:
    """The TOML file as DaemonConfig keyword arguments (models and llms as specs)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        doc = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: {e}") from e
    except OSError as e:
        raise ConfigError(f"--config {path}: {e.strerror or e}") from e
    top = {f.name for f in fields(DaemonConfig)} - {"host", "port"} | {"http"}
    out: Dict[str, Any] = {}
    for k, v in doc.items():
        if k not in top:
            raise ConfigError(f"--config {path}: unknown key {k!r}; did you mean {nearest(k, top)}? Known: {sorted(top)}")
        if k == "http":
            out["host"], out["port"] = parse_http(str(v))
        elif k == "models":
            out["models"] = tuple(ModelSpec(n, **_section(s, ModelSpec, f"models.{n}")) for n, s in _table(v, k).items())
        elif k == "llms":
            out["llms"] = tuple(LLMSpec(n, **_section(s, LLMSpec, f"llms.{n}")) for n, s in _table(v, k).items())
        elif k == "workers":
            if not isinstance(v, list) or not all(isinstance(w, str) for w in v):
                raise ConfigError(f"--config {path}: workers must be a list of endpoint strings")
            out["workers"] = tuple(v)
        else:
            out[k] = v
    return out


def _table(v, key: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise ConfigError(f"{key} must be a table of tables ([{key}.NAME])")
    return v


def build(toml: Optional[Path] = None, **flags) -> DaemonConfig:
    """File values, then flags (None means 'not given'); list flags add to the file's lists."""
    kw = from_toml(toml) if toml else {}
    for k in ("models", "llms", "workers"):
        extra: Sequence = flags.pop(k, None) or ()
        kw[k] = tuple(kw.get(k, ())) + tuple(extra)
    kw.update({k: v for k, v in flags.items() if v is not None})
    try:
        return DaemonConfig(**kw).validate()
    except TypeError as e:  # a wrong type in the file (a string where a number goes)
        raise ConfigError(f"daemon config: {e}") from e
