"""``POST /api/generate``'s response: a generation's events as ``text/event-stream``.

Each step runs in a worker thread (the event loop keeps serving). Between two steps the stream
checks whether the client is gone or the server is stopping (Ctrl-C: an ``error`` event says
so, and the response ends); Starlette also cancels the stream when the client disconnects, and
uvicorn cancels what still runs two seconds after Ctrl-C. However it ends, the generation is
closed (its session dropped, no step runs after) and its slot freed, once: at once if no step
is running, else by the worker thread as soon as its step returns (a generator cannot be
closed while it executes). An error after the stream has started is sent as an ``error``
event: the status line is long gone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from sampler.errors import InvalidInputError
from sampler.serve import stream
from sampler.serve.turns import BUSY, BusyError

__all__ = ["STOPPING", "EventStream"]

STOPPING = "the server is stopping: this generation ends here"
_log = logging.getLogger("sampler.serve")


class EventStream(StreamingResponse):
    """A generation's events; ``free`` is called once it has ended (see the module)."""

    def __init__(
        self,
        request: Request,
        generation: stream.Generation,
        guard: stream.Guard,
        free: Callable[[], None],
        stopping: threading.Event,
    ) -> None:
        self._generation, self._free, self._stopping = generation, free, stopping
        self._events = generation.events(guard)
        self._mutex = threading.Lock()
        self._stepping = self._ending = self._ended = False
        super().__init__(
            self._body(request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _body(self, request: Request) -> AsyncIterator[str]:
        while not await request.is_disconnected():
            if self._stopping.is_set():
                yield stream.sse("error", {"error": STOPPING})
                return
            try:
                event = await run_in_threadpool(self._step)
            except InvalidInputError as error:
                yield stream.sse("error", {"error": str(error)})
                return
            except BusyError:
                yield stream.sse("error", {"error": BUSY})
                return
            except Exception:
                _log.exception("a generation failed")
                yield stream.sse("error", {"error": "the generation failed (see the server log)"})
                return
            if event is None:
                return
            yield stream.sse(*event)  # json-safe: it cannot fail on a number

    def _step(self) -> tuple[str, dict[str, Any]] | None:
        """The next event (in a worker thread); the generation is closed here after the step
        if the response ended while it ran."""
        with self._mutex:
            if self._ending:
                return None
            self._stepping = True
        try:
            return next(self._events, None)
        finally:
            with self._mutex:
                self._stepping = False
                ended_meanwhile = self._ending
            if ended_meanwhile:
                self._end()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            # uvicorn cancels the responses still running when its shutdown wait is over (a
            # client that stopped reading): the process is exiting, the stream just ends
        finally:
            with self._mutex:
                self._ending = True
                stepping = self._stepping
            if not stepping:
                self._end()

    def _end(self) -> None:
        """Close the generation and free its slot, the first time only."""
        with self._mutex:
            if self._ended:
                return
            self._ended = True
        try:
            self._events.close()
            self._generation.close()
        finally:
            self._free()
