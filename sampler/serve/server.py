"""Running the app under uvicorn: :func:`stopping_server` (what ``sampler serve`` runs in the
foreground), and :func:`serving`, one on a loopback port in a thread for code that needs a
real server beside it (the browser tests, the load test).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["SHUTDOWN_S", "serving", "stopping_server"]

SHUTDOWN_S = 2  # after Ctrl-C, requests in flight get this long to finish, then are cut


def stopping_server(app: Any, **config: Any) -> Any:
    """A uvicorn server for ``app`` that, when it starts shutting down, tells the app's streams
    (``app.state.stopping``) to end between two steps, and cuts what still runs after
    :data:`SHUTDOWN_S` (uvicorn's default waited for every open connection)."""
    import uvicorn

    class StoppingServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            app.state.stopping.set()
            await super().shutdown(sockets)

    options = {"log_level": "warning", "lifespan": "off", "timeout_graceful_shutdown": SHUTDOWN_S}
    return StoppingServer(uvicorn.Config(app, **(options | config)))


@contextlib.contextmanager
def serving(source: Any, db: str | None, **options: Any) -> Iterator[tuple[str, Any]]:
    """``(base URL, app)`` of a uvicorn server on a free 127.0.0.1 port, in a thread.

    The socket is bound here and handed to uvicorn, so no other process can take the port in
    between; the server stops (and its thread ends) when the block exits.
    """
    from sampler.serve.app import make_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = make_app(source, db, "127.0.0.1", port, **options)
    server = stopping_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
