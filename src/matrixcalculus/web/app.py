"""The page's server: a Starlette app with the page, its static files and the JSON API.

``GET /`` the page; ``GET /static/...`` its script and style; ``GET /api/health``,
``GET /api/examples``; ``POST /api/parse``, ``/api/derivative``, ``/api/compile``
(``docs/web.md`` documents each, with curl examples and the limits).

Every response carries a Content-Security-Policy allowing only this server's own scripts and
styles (no inline script, no other host), ``X-Content-Type-Options: nosniff`` and no CORS
header, so another site's page cannot read the answers. Requests must name a known host
(a page elsewhere rebinding its DNS name to 127.0.0.1 is refused) and send JSON.

>>> app = create_app(workers=1)   # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8000)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matrixcalculus.web.examples import EXAMPLES
from matrixcalculus.web.service import DEFAULT_LIMITS, ENDPOINTS, RequestError, WebLimits, validate
from matrixcalculus.web.workers import WorkerPool, default_workers

__all__ = ["LOOPBACK_HOSTS", "SECURITY_HEADERS", "create_app"]

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

# The static files, by the name the page asks for, with their types.
_STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (errors and 404s included)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _file(name: str) -> bytes:
    return resources.files("matrixcalculus.web").joinpath("static", name).read_bytes()


def _error(exc: RequestError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (read no further than that)."""
    declared = request.headers.get("content-length")
    too_large = RequestError(413, f"the request body is over this server's limit of {limit:,} bytes (max_body_bytes)")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    *,
    workers: int | None = None,
    time_limit: float | None = None,
    limits: WebLimits = DEFAULT_LIMITS,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
) -> Starlette:
    """The app: ``workers`` worker processes (default: one per core, 2 to 4), each request's work
    stopped after ``time_limit`` seconds; ``allowed_hosts`` the names the ``Host`` header may
    give (``None``: any, for a server bound to a public address)."""
    if time_limit is not None:
        limits = replace(limits, time_limit=time_limit)
    pool = WorkerPool(workers or default_workers(), limits.time_limit, limits)
    page = _file("index.html")
    static = {name: _file(name) for name in _STATIC}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.start()
        try:
            yield
        finally:
            await pool.stop()

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"})

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            return JSONResponse({"error": {"message": "no such file"}}, status_code=404)
        return Response(static[name], media_type=_STATIC[name], headers={"cache-control": "no-cache"})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "version": _version(),
                "workers": len(pool.pids),
                "restarts": pool.restarts,
                "limits": asdict(limits),
                "endpoints": [f"/api/{name}" for name in ENDPOINTS],
            }
        )

    async def examples(request: Request) -> Response:
        return JSONResponse({"examples": [asdict(e) for e in EXAMPLES]})

    def api(endpoint: str) -> Any:
        async def handle(request: Request) -> Response:
            try:
                kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != "application/json":
                    # Also what keeps other sites' forms out: a cross-site JSON POST needs CORS.
                    raise RequestError(415, "send the request as JSON (Content-Type: application/json)")
                body = await _body(request, limits.max_body_bytes)
                try:
                    payload = json.loads(body)
                except (ValueError, RecursionError):
                    raise RequestError(400, "the request body is not valid JSON") from None
                status, answer = await pool.run(endpoint, validate(endpoint, payload, limits))
            except RequestError as exc:
                return _error(exc)
            return JSONResponse(answer, status_code=status)

        return handle

    routes = [
        Route("/", index),
        Route("/static/{name}", static_file),
        Route("/api/health", health),
        Route("/api/examples", examples),
        *[Route(f"/api/{name}", api(name), methods=["POST"]) for name in ENDPOINTS],
    ]
    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.pool = pool
    return app


def _version() -> str:
    from matrixcalculus import __version__

    return __version__
