"""``edgeinf daemon --check-config``: everything that can be checked without loading a model."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .config import DaemonConfig


def check(cfg: DaemonConfig) -> dict:
    """Sources, key files, device profile and endpoints; a summary, or one ConfigError."""
    from .. import zoo

    models = {}
    for m in cfg.models:
        p = Path(m.source).expanduser()
        if p.is_dir():
            if not (p / "edgeinf.json").is_file():
                raise ConfigError(f"models.{m.name}: {p} is a directory but not a model package (no edgeinf.json)")
            kind = "package" + ("" if (p / "profile.json").is_file() else " (unprofiled: profiled at start)")
        elif p.is_file():
            kind = "file"
        elif m.source in zoo.names():
            kind = "zoo" + ("" if zoo.location(m.source).exists() else " (not cached: fetched at start)")
        else:
            raise ConfigError(f"models.{m.name}: {m.source!r} is neither a file, a package directory nor a zoo "
                              f"model (zoo: {', '.join(zoo.names())})")
        models[m.name] = {"source": m.source, "kind": kind}
    for s in cfg.llms:
        if not Path(s.gguf).expanduser().is_file():
            raise ConfigError(f"llms.{s.name}: no such GGUF file {s.gguf!r}")
    for w in cfg.workers:
        if not w.startswith(("tcp://", "ipc://")):
            raise ConfigError(f"worker endpoint {w!r} must start with tcp:// or ipc://")
    for what, f in (("server_key", cfg.server_key), ("client_key", cfg.client_key)):
        if f and not Path(f).is_file():
            raise ConfigError(f"{what}: no such file {f!r}")
    if cfg.device not in (None, "native"):
        from ..split.devices import load_device

        load_device(cfg.device)  # ConfigError naming the known profiles
    return {"ok": True, "http": f"{cfg.host}:{cfg.port}", "auth": bool(cfg.api_key), "models": models,
            "llms": {s.name: s.gguf for s in cfg.llms}, "workers": list(cfg.workers), "device": cfg.device}
