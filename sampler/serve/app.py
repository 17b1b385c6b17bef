"""The ASGI application of ``sampler serve`` (Starlette): routes, Host check, limits, errors.

Why Starlette: a small, established ASGI toolkit (the core FastAPI builds on) with streaming
responses for what comes next (token streaming), and nothing this API does not use; uvicorn
serves it. Security, as the issue asks: the app answers only requests whose Host header names
the address it is bound to (a page of another site cannot reach it through DNS rebinding),
bodies over 256 kB are refused, one model call runs at a time and a request that waits too long
gets 429, and no endpoint takes a path: the run log is the one named on the command line.

Generations (``POST /api/generate``, a server-sent event stream, and ``POST /api/runs``, which
re-runs a session to log it) take one of :data:`GENERATIONS` slots or get 429 at once; each of
their steps takes the model lock for one model call, so a long generation never holds the model
from other requests; the lock goes to its waiters in arrival order (:class:`FairLock`). A stream
whose client disconnects stops between two steps and frees its slot
(:class:`~sampler.serve.events.EventStream`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sampler.errors import InvalidInputError
from sampler.serve import api, runlog_access, sessions, stream
from sampler.serve.bodies import MAX_BODY_BYTES, BodyTooLargeError, query_int, read_json
from sampler.serve.events import EventStream
from sampler.serve.page import page_html, server_view
from sampler.serve.token_labels import run_labels
from sampler.serve.turns import BUSY, BusyError, FairLock, Slots

__all__ = ["GENERATIONS", "MAX_BODY_BYTES", "allowed_hosts", "make_app"]

GENERATIONS = 2  # generations at once: each holds a batch's KV cache and a share of the model
_WAIT_SECONDS = 10.0
_log = logging.getLogger("sampler.serve")


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values this server answers: its own address (and ``localhost`` for a
    loopback address), with the port (browsers leave out port 80); IPv6 in brackets."""
    names = {f"[{host}]" if ":" in host and not host.startswith("[") else host}
    if host in ("127.0.0.1", "::1", "localhost"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    with_port = {f"{name}:{port}" for name in names}
    return frozenset(with_port | names if port == 80 else with_port)


class _JSON(JSONResponse):
    """JSON answers with non-finite numbers as null (api.to_json), never a 500 for them."""

    def render(self, content: Any) -> bytes:
        return api.to_json(content).encode("utf-8")


def _error(status: int, message: str) -> JSONResponse:
    return _JSON({"error": message}, status_code=status)


async def _answer(function: Callable[..., Any], *args: Any, status: int = 200) -> Response:
    """``function(*args)`` as JSON, both in a worker thread: a large answer (a page of a run)
    takes a while to encode, and the event loop keeps serving other clients meanwhile."""

    def encoded() -> bytes:
        return api.to_json(function(*args)).encode("utf-8")

    body = await run_in_threadpool(encoded)
    return Response(body, status_code=status, media_type="application/json")


def make_app(
    source: Any,
    db: str | None,
    host: str = "127.0.0.1",
    port: int = 8765,
    generations: int = GENERATIONS,
    first_view: dict[str, Any] | None = None,
) -> Starlette:
    """The app serving ``source`` (a loaded logit source) and the run log at ``db`` (or none).

    ``first_view`` holds what the page opens with (``prompt``, ``temperature``: the keywords of
    :func:`~sampler.serve.page.server_view`; by default its prompt and the library's τ).

    The run log is opened per request: an SQLite connection belongs to its thread. At most
    ``generations`` streams and saves run at once (``app.state.slots`` counts them).
    """
    hosts = allowed_hosts(host, port)
    server = _Routes(source, db, Slots(generations), first_view or {})
    app = Starlette(
        routes=[
            Route("/", _guarded(server.page, hosts)),
            Route("/api/next-token", _guarded(server.next_token, hosts), methods=["POST"]),
            Route("/api/generate", _guarded(server.generate, hosts), methods=["POST"]),
            Route("/api/runs", _guarded(server.runs, hosts), methods=["GET"]),
            Route("/api/runs", _guarded(server.save, hosts), methods=["POST"]),
            Route("/api/runs/{run_id}", _guarded(server.run, hosts)),
        ]
    )
    app.state.slots = server.slots
    app.state.stopping = server.stopping  # set when the server shuts down (server.StoppingServer)
    return app


def _guarded(handler: Callable[[Request], Any], hosts: frozenset[str]) -> Callable[[Request], Any]:
    """``handler`` behind the Host and cross-site checks, its errors as JSON answers."""

    async def endpoint(request: Request) -> Any:
        if request.headers.get("host", "") not in hosts:
            return _error(421, f"Host {request.headers.get('host')!r} is not this server")
        refused = _cross_site(request, hosts)
        if refused:
            return _error(403, refused)
        try:
            return await handler(request)
        except InvalidInputError as error:
            return _error(400, str(error))
        except BodyTooLargeError:
            return _error(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        except BusyError:
            return _error(429, BUSY)
        except runlog_access.RunLogUnavailableError as error:
            return _error(error.status, str(error))
        except Exception:  # a bug: logged with its traceback, answered as JSON
            _log.exception("a request failed")
            return _error(500, "the server failed on this request (see the server log)")

    return endpoint


class _Routes:
    """The routes' handlers and what they share: the source, the run log, the model lock, the
    generation slots. Grouped as the page, the model (next token, generate) and the run log."""

    def __init__(
        self, source: Any, db: str | None, slots: Slots, first_view: dict[str, Any]
    ) -> None:
        self.source = source
        self.db = db
        self.slots = slots
        self.stopping = threading.Event()
        self._model_lock = FairLock()
        self._html, csp = page_html(server_view(source, **first_view))
        self._page_headers = {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"}

    @contextlib.contextmanager
    def model_turn(self) -> Iterator[None]:
        # one model call (a prefill, a step, an encoding) at a time: sources are not thread-safe
        if not self._model_lock.acquire(timeout=_WAIT_SECONDS):
            raise BusyError
        try:
            yield
        finally:
            self._model_lock.release()

    # The page.

    async def page(self, _request: Request) -> Any:
        return HTMLResponse(self._html, headers=self._page_headers)

    # The model: one next-token answer, or a generation streamed as server-sent events.

    async def next_token(self, request: Request) -> Any:
        body = await read_json(request)
        return await _answer(_guarded_call(self.model_turn, api.next_token), self.source, body)

    async def generate(self, request: Request) -> Any:
        body = await read_json(request)
        if not self.slots.take():
            return self._no_slot()
        try:
            with_model = _guarded_call(self.model_turn, stream.prepare)
            generation = await run_in_threadpool(with_model, self.source, body)
        except BaseException:
            self.slots.free()
            raise
        return EventStream(request, generation, self.model_turn, self.slots.free, self.stopping)

    def _no_slot(self) -> JSONResponse:
        return _error(
            429,
            f"all {self.slots.size} generation slots are taken: try again when a generation ends",
        )

    # The run log: save a session, list the runs, read one run a page at a time.

    async def save(self, request: Request) -> Any:
        if self.db is None:
            return _no_run_log()
        body = await read_json(request)
        if not self.slots.take():
            return self._no_slot()
        db = self.db

        def store_session() -> dict[str, Any]:
            with runlog_access.opened(db, write=True) as store:
                return sessions.save_session(self.source, store, body, self.model_turn)

        try:
            return await _answer(store_session, status=201)
        finally:
            self.slots.free()

    async def runs(self, request: Request) -> Any:
        if self.db is None:
            return _no_run_log()
        return await _answer(self._read_store, api.run_listing, query_int(request, "limit", 50))

    async def run(self, request: Request) -> Any:
        if self.db is None:
            return _no_run_log()
        run_id = request.path_params["run_id"]
        offset, limit = api.run_page_bounds(
            query_int(request, "offset", 0), query_int(request, "limit", api.RUN_PAGE_STEPS)
        )
        try:
            return await _answer(self._read_store, self._run_page, run_id, offset, limit)
        except InvalidInputError as error:  # the one thing a run id can be: not in the log
            return _error(404, str(error))

    def _run_page(self, store: Any, run_id: str, offset: int, limit: int) -> dict[str, Any]:
        # the run-log tab shows tokens as text: labelled when this server serves the run's model
        page = api.run_view(store, run_id, offset, limit)
        return page | {"labels": run_labels(self.source, page["run"], page["completions"])}

    def _read_store(self, read: Callable[..., Any], *args: Any) -> Any:
        # in a worker thread: a run log busy for a moment must not stall the streams
        with runlog_access.opened(self.db) as store:
            return read(store, *args)


def _no_run_log() -> JSONResponse:
    return _error(404, "no run log: start the server with --db PATH")


def _cross_site(request: Request, hosts: frozenset[str]) -> str | None:
    """Why a request from another site's page is refused (CSRF), or None: its Origin is not
    this server, or the browser says it comes from another site."""
    origin = request.headers.get("origin")
    if origin is not None and origin.removeprefix("http://") not in hosts:
        return f"a request from {origin!r} is refused: only this server's own page may call it"
    if request.headers.get("sec-fetch-site") == "cross-site":
        return "a cross-site request is refused: only this server's own page may call it"
    return None


def _guarded_call(guard: stream.Guard, function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        with guard():
            return function(*args)

    return call
