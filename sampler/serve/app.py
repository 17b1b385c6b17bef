"""The ASGI application of ``sampler serve`` (Starlette): routes, Host check, limits, errors.

Why Starlette: a small, established ASGI toolkit (the core FastAPI builds on) with streaming
responses for what comes next (token streaming), and nothing this API does not use; uvicorn
serves it. Security, as the issue asks: the app answers only requests whose Host header names
the address it is bound to (a page of another site cannot reach it through DNS rebinding),
bodies over 64 kB are refused, one model call runs at a time and a request that waits too long
gets 429, and no endpoint takes a path: the run log is the one named on the command line.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from sampler.errors import InvalidInputError
from sampler.serve import api

__all__ = ["MAX_BODY_BYTES", "allowed_hosts", "make_app"]

MAX_BODY_BYTES = 64 * 1024
_WAIT_SECONDS = 10.0
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>sampler serve</title></head><body><h1>sampler serve</h1>
<p>The JSON API is up: <code>POST /api/next-token</code>, <code>GET /api/runs</code>,
<code>GET /api/runs/RUN</code> (see README). The page comes in a later release.</p>
</body></html>"""


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values this server answers: its own address (and ``localhost`` for a
    loopback address), with the port."""
    names = {host}
    if host in ("127.0.0.1", "::1", "localhost"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return frozenset(f"{name}:{port}" for name in names)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def make_app(source: Any, db: str | None, host: str = "127.0.0.1", port: int = 8765) -> Starlette:
    """The app serving ``source`` (a loaded logit source) and the run log at ``db`` (or none).

    The run log is opened per request: an SQLite connection belongs to its thread.
    """
    hosts = allowed_hosts(host, port)
    model_lock = threading.Lock()

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Any:
            if request.headers.get("host", "") not in hosts:
                return _error(421, f"Host {request.headers.get('host')!r} is not this server")
            try:
                return await handler(request)
            except InvalidInputError as error:
                return _error(400, str(error))

        return endpoint

    async def read_json(request: Request) -> Any:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise _BodyTooLargeError
        try:
            return json.loads(body or b"null")
        except ValueError as error:
            raise InvalidInputError(f"the request body is not valid JSON: {error}") from None

    async def next_token(request: Request) -> Any:
        try:
            body = await read_json(request)
        except _BodyTooLargeError:
            return _error(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        from starlette.concurrency import run_in_threadpool

        def answer() -> Any:
            if not model_lock.acquire(timeout=_WAIT_SECONDS):
                return None
            try:
                return api.next_token(source, body)
            finally:
                model_lock.release()

        result = await run_in_threadpool(answer)
        if result is None:
            return _error(429, "the model is busy: try again in a moment")
        return JSONResponse(result)

    def open_store() -> Any:
        from sampler.runlog.store import RunStore

        return RunStore(db)

    async def runs(request: Request) -> Any:
        if db is None:
            return _error(404, "no run log: start the server with --db PATH")
        text = request.query_params.get("limit", "50")
        if not text.isdigit():
            raise InvalidInputError(f"limit {text!r} is not an integer")
        with open_store() as store:
            return JSONResponse(api.run_listing(store, int(text)))

    async def run(request: Request) -> Any:
        if db is None:
            return _error(404, "no run log: start the server with --db PATH")
        with open_store() as store:
            return JSONResponse(api.run_view(store, request.path_params["run_id"]))

    async def page(_request: Request) -> Any:
        return HTMLResponse(_PAGE, headers={"Content-Security-Policy": _CSP})

    return Starlette(
        routes=[
            Route("/", guarded(page)),
            Route("/api/next-token", guarded(next_token), methods=["POST"]),
            Route("/api/runs", guarded(runs)),
            Route("/api/runs/{run_id}", guarded(run)),
        ]
    )


class _BodyTooLargeError(Exception):
    """A request body over :data:`MAX_BODY_BYTES`."""
