"""The daemon's Starlette application: KServe v2, /metrics, the status page and, when
language models are configured, the OpenAI-compatible routes (:mod:`.openai_api`).

Authentication: with an API key every route needs it except ``/v2/health/*`` (liveness
probes, which say nothing) and the status page's HTML shell (``/``: it carries no data and
reads the key from the URL fragment, which browsers never send or log).
"""
from __future__ import annotations

import asyncio
import logging
import statistics
import time
from pathlib import Path
from typing import Dict, Mapping, Optional

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..errors import EdgeInfError, InputError
from . import kserve
from .config import DaemonConfig
from .http import Admission, HTTPError, check_key, client_id, error_response, log_request, read_body
from .metrics import Metrics

log = logging.getLogger("edgeinf.daemon")
PAGE = Path(__file__).with_name("status.html")


class Daemon:
    """State shared by the routes: the models, admission, metrics; built once per process."""

    def __init__(self, cfg: DaemonConfig, models: Mapping[str, object], llms: Optional[Mapping[str, object]] = None):
        self.cfg, self.models, self.llms = cfg, dict(models), dict(llms or {})
        self.admission = Admission(cfg.queue, cfg.per_client)
        self.device_load = None  # the server starts a models.DeviceLoad
        self.metrics = Metrics(lambda: self.models, lambda: self.device_load)
        self.locks: Dict[str, asyncio.Lock] = {}
        self.limit = int(cfg.max_body_mb * 2**20)
        self.started = time.time()

    def model(self, name: str):
        m = self.models.get(name)
        if m is None:
            extra = " (a language model: use /v1/chat/completions)" if name in self.llms else ""
            raise HTTPError(404, f"unknown model {name!r}{extra}; served: {sorted(self.models)}")
        return m

    def typical_ms(self, m) -> float:
        recent = [r["ms"] for r in list(m.history)[-20:]]
        return statistics.median(recent) if recent else 100.0


def route(auth: bool = True, openai: bool = False):
    """Wrap a handler ``(daemon, request) -> Response``: key check, errors as JSON, never a crash."""
    def wrap(fn):
        async def endpoint(request: Request):
            d: Daemon = request.app.state.daemon
            t0 = time.perf_counter()
            try:
                if auth:
                    check_key(request, d.cfg.api_key)
                return await fn(d, request)
            except HTTPError as e:
                log_request("error", request, e.status, t0, error=e.message)
                return error_response(e, openai)
            except InputError as e:
                return error_response(HTTPError(400, str(e)), openai)
            except EdgeInfError as e:
                log.warning("request failed: %s", e)
                return error_response(HTTPError(500, f"{type(e).__name__}: {e}", kind="server_error"), openai)
            except Exception as e:  # noqa: BLE001 - a bug answers 500 and is logged; the daemon stays up
                log.exception("unexpected error on %s", request.url.path)
                return error_response(HTTPError(500, f"internal error ({type(e).__name__})", kind="server_error"), openai)
        return endpoint
    return wrap


@route(auth=False)
async def live(d: Daemon, request: Request):
    return JSONResponse({"live": True})


@route(auth=False)
async def ready(d: Daemon, request: Request):
    return JSONResponse({"ready": True})


@route()
async def server_metadata(d: Daemon, request: Request):
    return JSONResponse({"name": "edgeinf", "version": __version__,
                         "extensions": ["binary_tensor_data", "model_repository_readiness"]})


@route()
async def model_metadata(d: Daemon, request: Request):
    _version(request)
    return JSONResponse(d.model(request.path_params["name"]).metadata())


@route()
async def model_ready(d: Daemon, request: Request):
    _version(request)
    d.model(request.path_params["name"])
    return JSONResponse({"name": request.path_params["name"], "ready": True})


def _version(request: Request) -> None:
    v = request.path_params.get("version")
    if v not in (None, "", "1"):
        raise HTTPError(404, f"model {request.path_params['name']!r} has only version 1; got {v!r}")


@route()
async def infer(d: Daemon, request: Request):
    t0 = time.perf_counter()
    _version(request)
    name = request.path_params["name"]
    m = d.model(name)
    who = client_id(request)
    # NOTE: admitted before the body is read, so at most 1 + queue bodies per model are in memory
    try:
        d.admission.enter(name, who, d.typical_ms(m))
    except HTTPError as e:
        d.metrics.rejected.labels(name, "client_limit" if e.status == 429 else "queue_full").inc()
        d.metrics.requests.labels(name, "none", "rejected").inc()
        raise
    d.metrics.inflight.labels(name).inc()
    try:
        return await _admitted(d, request, m, name, t0)
    finally:
        d.admission.leave(name, who)
        d.metrics.inflight.labels(name).dec()


async def _admitted(d: Daemon, request: Request, m, name: str, t0: float) -> Response:
    body = await read_body(request, d.limit)
    # NOTE: no Content-Type check: tritonclient sends a JSON-only request without one
    try:
        req = kserve.parse_infer(body, request.headers.get(kserve.HEADER), m.inputs, m.outputs)
        deadline = _deadline(req.parameters)
    except (kserve.RequestError, HTTPError) as e:
        d.metrics.requests.labels(name, "none", "error").inc()
        raise HTTPError(400, getattr(e, "message", str(e))) from None
    t_queue = time.perf_counter()
    async with d.locks.setdefault(name, asyncio.Lock()):
        # NOTE: time spent queued behind other apps' requests is taken off this request's
        # deadline, so the runtime gives the link only what is really left
        waited = (time.perf_counter() - t_queue) * 1e3
        limit = m.deadline_ms if deadline is None else deadline
        res = await run_in_threadpool(m.infer, req.feeds, max(limit - waited, 1.0) if waited > 0.5 else deadline)
    missed = m.missed(res, deadline, waited)
    d.metrics.observe(name, res, missed)
    params = {**kserve.result_parameters(res, missed), "edgeinf_queue_ms": round(waited, 3)}
    payload, head = kserve.build_response(name, req, res.outputs, params)
    log_request("infer", request, 200, t0, model=name, plan=str(res.plan), outcome=res.outcome,
                latency_ms=round(res.latency_ms, 3), missed=missed)
    if head is None:
        return Response(payload, media_type="application/json")
    return Response(payload, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(head)})


def _deadline(params: dict) -> Optional[float]:
    v = params.get("deadline_ms")
    if v is None:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 < v <= 600_000:
        raise HTTPError(400, f"parameters.deadline_ms must be a number in (0, 600000]; got {v!r}")
    return float(v)


@route()
async def metrics(d: Daemon, request: Request):
    return Response(generate_latest(d.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@route(auth=False)
async def page(d: Daemon, request: Request):
    return HTMLResponse(PAGE.read_text(), headers={"Cache-Control": "no-store",
                                                   "Content-Security-Policy": "default-src 'self'; "
                                                   "script-src 'unsafe-inline'; style-src 'unsafe-inline'"})


@route()
async def status(d: Daemon, request: Request):
    try:
        since = min(max(float(request.query_params.get("since", 300)), 1.0), 3600.0)
    except ValueError:
        raise HTTPError(400, "since must be a number of seconds") from None
    models = {}
    for name, m in d.models.items():
        rows = m.recent(since)
        models[name] = {"kind": "vision", "deadline_ms": m.deadline_ms, "device": m.rt.device_label,
                        "plan": rows[-1]["plan"] if rows else None, "estimates": m.last_estimates,
                        "plans": sorted(str(c.plan) for c in m.rt.costs),
                        "remote": any(c.plan.remote for c in m.rt.costs),
                        "history": [[round(r["t"], 3), r["ms"], r["plan"], r["mbps"], r["outcome"]] for r in rows]}
    for name, g in d.llms.items():
        models[name] = {"kind": "llm", **g.status_dict()}
    return JSONResponse({"now": time.time(), "since": since, "uptime_s": round(time.time() - d.started, 1),
                         "models": models}, headers={"Cache-Control": "no-store"})


def routes():
    out = [Route("/", page), Route("/status.json", status), Route("/metrics", metrics),
           Route("/v2/health/live", live), Route("/v2/health/ready", ready), Route("/v2", server_metadata)]
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        out += [Route(base, model_metadata), Route(base + "/ready", model_ready),
                Route(base + "/infer", infer, methods=["POST"])]
    return out


async def _not_found(request: Request, exc) -> JSONResponse:
    # NOTE: every answer is JSON, unknown routes included (Starlette's default is plain text)
    status = getattr(exc, "status_code", 404)
    return JSONResponse({"error": f"{request.method} {request.url.path}: {getattr(exc, 'detail', 'not found')}"},
                        status_code=status)


def create_app(d: Daemon, lifespan=None) -> Starlette:
    from . import openai_api

    app = Starlette(routes=routes() + (openai_api.routes(route) if d.llms else []), lifespan=lifespan,
                    exception_handlers={404: _not_found, 405: _not_found})
    app.state.daemon = d
    return app
