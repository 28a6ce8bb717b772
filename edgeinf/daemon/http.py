"""HTTP plumbing shared by the daemon's routes: JSON errors, the API key, bounded bodies,
admission (per-model queue, per-client limit) and structured request logs."""
from __future__ import annotations

import hmac
import json
import logging
import math
import time
import zlib
from collections import Counter
from typing import Optional

from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("edgeinf.daemon")


class HTTPError(Exception):
    """An error answered as ``{"error": message}`` with ``status`` (and extra headers)."""

    def __init__(self, status: int, message: str, headers: Optional[dict] = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.headers, self.kind = status, message, headers or {}, kind


def error_response(e: HTTPError, openai: bool = False) -> JSONResponse:
    # NOTE: KServe clients read {"error": str}; the openai client reads {"error": {"message": ...}}
    body = {"error": {"message": e.message, "type": e.kind, "code": e.status}} if openai else {"error": e.message}
    return JSONResponse(body, status_code=e.status, headers=e.headers)


def check_key(request: Request, key: Optional[str]) -> None:
    """Bearer token or X-API-Key; constant-time compare; 401 when wrong or missing."""
    if not key:
        return
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        raise HTTPError(401, "missing or wrong API key (send 'Authorization: Bearer KEY')",
                        {"WWW-Authenticate": "Bearer"}, kind="authentication_error")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (also after decompression)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPError(413, f"request body of {declared} bytes is over the limit of {limit} bytes (--max-body-mb)")
    parts, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise HTTPError(413, f"request body is over the limit of {limit} bytes (--max-body-mb)")
        parts.append(chunk)
    body = b"".join(parts)
    enc = request.headers.get("content-encoding", "identity").lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise HTTPError(415, f"Content-Encoding {enc!r} is not supported (gzip, deflate, identity)")
    d = zlib.decompressobj(31 if enc == "gzip" else 15)
    try:
        out = d.decompress(body, limit + 1)  # bounded: a zip bomb stops at the limit
    except zlib.error as e:
        raise HTTPError(400, f"request body is not valid {enc}: {e}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise HTTPError(413, f"decompressed request body is over the limit of {limit} bytes")
    return out


def client_id(request: Request) -> str:
    """Who a per-client limit counts: the app's X-Client-Id, else its address (apps on the
    device all come from 127.0.0.1, so local apps that want separate limits name themselves)."""
    cid = request.headers.get("x-client-id", "")[:64]
    host = request.client.host if request.client else "?"
    return f"{host}/{cid}"


class Admission:
    """Bounded work: one running request per model plus ``queue`` waiting (else 503), and at
    most ``per_client`` in flight per client (else 429), each with a Retry-After.

    Only touched from the event loop thread, so plain counters suffice.
    """

    def __init__(self, queue: int, per_client: int):
        self.queue, self.per_client = queue, per_client
        self.models: Counter = Counter()
        self.clients: Counter = Counter()

    def enter(self, model: str, client: str, typical_ms: float) -> None:
        if self.clients[client] >= self.per_client:
            raise HTTPError(429, f"this client already has {self.clients[client]} requests in flight "
                                 f"(limit {self.per_client})", {"Retry-After": "1"}, kind="rate_limit_error")
        if self.models[model] >= 1 + self.queue:
            wait = max(1, math.ceil(self.models[model] * typical_ms / 1e3))
            raise HTTPError(503, f"model {model!r} is busy: {self.models[model]} requests running or queued",
                            {"Retry-After": str(wait)}, kind="server_busy")
        self.models[model] += 1
        self.clients[client] += 1

    def leave(self, model: str, client: str) -> None:
        self.models[model] -= 1
        self.clients[client] -= 1
        if self.clients[client] <= 0:
            del self.clients[client]  # NOTE: bounded: one entry per client with work in flight


def log_request(event: str, request: Request, status: int, t0: float, **fields) -> None:
    log.info(event, extra={"fields": {"event": event, "path": request.url.path, "status": status,
                                      "ms": round((time.perf_counter() - t0) * 1e3, 3),
                                      "client": request.client.host if request.client else None, **fields}})


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        doc.update(getattr(record, "fields", {}))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)
