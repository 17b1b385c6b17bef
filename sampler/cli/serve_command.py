"""``sampler serve``: the local web app over one loaded model (the page and its JSON API).

The address is bound before the model loads: a port in use or an address this machine does
not have is one ``error:`` line and exit code 2, never a "serving" line first. Ctrl-C stops
the server within two seconds (and the step a generation is in): streams end between two
steps, and what still runs then is cut, not waited for (:mod:`sampler.serve.server`).
"""

from __future__ import annotations

import socket

import click

from sampler.cli import cli
from sampler.cli.options import cache_option, dtype_option, load_model, model_option
from sampler.errors import InvalidInputError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), or a one-line error."""
    # IPv4 unless the address has a colon, as uvicorn binds ("localhost" is 127.0.0.1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM
        )[0]
    except (socket.gaierror, UnicodeError) as error:
        raise InvalidInputError(
            f"--host {host!r} is not an address of this machine ({error})"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise InvalidInputError(
            f"cannot bind {host}:{port} ({error.strerror or error}): choose another --port, "
            "or stop what uses it"
        ) from None
    return sock


@cli.command()
@model_option()
@dtype_option()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option(
    "--db", default=None, metavar="PATH", help="Run log to browse and save to (default: yours)."
)
@cache_option
def serve(
    model: str, dtype: str, host: str, port: int, db: str | None, cache_dir: str | None
) -> None:
    """Serve the page (sliders over a real model's next-token distribution, generation,
    branching, the cheat sheet, the run log) and its JSON API on this machine."""
    try:
        import uvicorn  # noqa: F401 (the server below runs on it)

        from sampler.serve.app import make_app
        from sampler.serve.server import stopping_server
    except ImportError:
        raise InvalidInputError(
            "serving needs starlette and uvicorn: pip install -e '.[serve]' (part of 'all')"
        ) from None
    from sampler.runlog.location import prepare_run_log
    from sampler.runlog.store import RunStore

    # the same run log as every other command (--db > SAMPLER_DB > the per-user log), so the
    # page's run-log tab shows the user's sweeps; a foreign or damaged one is refused now
    db = str(prepare_run_log(db, create=True))
    with RunStore(db):
        pass
    if host in ("0.0.0.0", "::", ""):
        raise InvalidInputError(
            f"--host {host!r} binds every address, but the server answers only requests that "
            "name the address it is bound to (against DNS rebinding): give the address clients "
            "use, e.g. --host 192.168.1.5"
        )
    sock = bound_socket(host, port)
    try:
        source = load_model(model, cache_dir, dtype)
        if host not in LOOPBACK:
            click.echo(
                f"warning: binding {host}: other machines can reach this server "
                "(default 127.0.0.1)",
                err=True,
            )
        server = stopping_server(make_app(source, db, host, port))
        sock.listen(server.config.backlog)  # connections wait for the server from now on
        click.echo(f"serving {source.name} on http://{host}:{port}/ (Ctrl-C stops)", err=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
