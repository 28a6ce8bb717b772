"""Process lifecycle: load the models, bind, serve with uvicorn, drain on SIGTERM, exit 0.

The socket is bound here (not by uvicorn) so port 0 works and the real address is printed
in the one line scripts and systemd logs wait for::

    edgeinf daemon: serving 2 model(s) on http://127.0.0.1:8080 (ready in 1.23 s)

Shutdown (SIGTERM or SIGINT): uvicorn stops accepting, lets in-flight requests finish for
up to ``drain_s``, then the lifespan closes every runtime (worker connections with linger 0).
"""
from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
from typing import Optional

from .config import DaemonConfig
from .http import JSONFormatter

log = logging.getLogger("edgeinf.daemon")


def setup_logging(fmt: str, level: str = "info") -> None:
    """The daemon's logs: one JSON object per line on stderr (journald keeps them), or text."""
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("edgeinf", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [h]
        lg.setLevel(getattr(logging, level.upper(), logging.INFO))
        lg.propagate = False


def bind(host: str, port: int) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    # NOTE: proto IPPROTO_TCP, or asyncio skips TCP_NODELAY on accepted sockets (40 ms delayed ACKs)
    s = socket.socket(fam, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    s.set_inheritable(True)
    return s


def serve(cfg: DaemonConfig, log_level: str = "info") -> int:
    import uvicorn

    from .app import Daemon, create_app
    from .models import load_all

    t0 = time.perf_counter()
    sock = bind(cfg.host, cfg.port)  # NOTE: bind first: a taken port fails before minutes of model loading
    models = load_all(cfg)
    try:
        llms = _llms(cfg)
    except BaseException:
        for m in models.values():
            m.close()
        raise
    d = Daemon(cfg, models, llms)
    from .models import DeviceLoad

    d.device_load = DeviceLoad(models).start()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        d.device_load.stop()
        for m in list(d.models.values()) + list(d.llms.values()):
            m.close()  # after the drain: no request is running any more

    app = create_app(d, lifespan)
    # NOTE: limit_concurrency bounds connections (uvicorn answers 503 past it), and so the
    # bodies being read at once: admission bounds the rest per model
    server = _server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                                    timeout_graceful_shutdown=cfg.drain_s, log_config=None,
                                    limit_concurrency=64, timeout_keep_alive=30, server_header=False))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"edgeinf daemon: serving {len(models)} model(s) and {len(llms)} language model(s) on "
          f"http://{shown}:{port} (ready in {time.perf_counter() - t0:.2f} s)", flush=True)
    log.info("serving", extra={"fields": {"event": "start", "host": host, "port": port, "models": sorted(models),
                                          "llms": sorted(llms), "workers": list(cfg.workers), "auth": bool(cfg.api_key)}})
    server.run(sockets=[sock])
    log.info("stopped", extra={"fields": {"event": "stop", "drained": True}})
    return 0


def _llms(cfg: DaemonConfig) -> dict:
    if not cfg.llms:
        return {}
    from .openai_api import LLMModel

    return {s.name: LLMModel(s, cfg) for s in cfg.llms}


def _server(config):
    """uvicorn's Server, but a handled SIGTERM ends in exit 0 (uvicorn re-raises the signal
    after its graceful shutdown, which would make systemd log the drain as a failure)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame: Optional[object]) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return Server(config)
