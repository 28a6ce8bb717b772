"""The device daemon (``edgeinf daemon``): one process on a Pi or Jetson that owns the
models, their adaptive runtimes and the worker connections, and serves local apps over
HTTP: KServe v2 (vision models), an OpenAI-compatible API (language models), Prometheus
``/metrics`` and a live status page at ``/``. See docs/daemon.md.

Starlette + uvicorn because a Pi has little memory and slow imports: measured on the
2-core dev machine, 30 MiB idle RSS, 184 ms import and 1,480 req/s from one client, against
FastAPI's 48 MiB and 489 ms (its validation layer buys nothing here: bodies are parsed by
:mod:`.kserve` against the model's own specs) and aiohttp's 38 MiB.
"""
from .config import DaemonConfig, LLMSpec, ModelSpec

__all__ = ["DaemonConfig", "ModelSpec", "LLMSpec"]
