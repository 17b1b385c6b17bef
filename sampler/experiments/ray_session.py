"""Connecting to a Ray cluster for a run, with Ray's own logs kept out of the terminal.

Ray is imported here, when a run asks for it (the ``ray`` extra), never by ``import sampler``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sampler.errors import InvalidInputError
from sampler.sources.model_cache import first_line

__all__ = ["INSTALL_HINT", "import_ray", "ray_session"]

INSTALL_HINT = "install it with: pip install 'sampler[ray]'"
# How long joining a cluster may take to find its address listening, before Ray's own
# connection (which retries for minutes) is tried at all.
CONNECT_SECONDS = 5.0
# How long a joined address has to answer as a Ray cluster does.
JOIN_SECONDS = 10.0


def import_ray() -> Any:
    """The ``ray`` module, or an input error saying which extra installs it."""
    try:
        import ray
    except ImportError:
        raise InvalidInputError(f"running on Ray needs ray, which is not installed: "
                                f"{INSTALL_HINT}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at ``host:port``."""
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        if address in ("auto", "local"):
            return  # Ray's own names: the cluster on this machine
        raise InvalidInputError(
            f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379 or ray://host:10001)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS):
            pass
    except OSError as error:
        raise InvalidInputError(
            f"cannot reach the Ray cluster at {address!r} ({error.strerror or error}); start "
            "one there with `ray start --head`, or give the address it printed"
        ) from None


def _quiet_ray(ray: Any) -> None:
    """Ray's notices about its own workers (a killed actor's) go to the log, not the terminal.

    With ``log_to_driver`` off Ray still prints them on standard output from a thread of its
    own, through ``print_to_stdstream`` (Ray 2.60, pinned): the run reports a lost actor
    itself, in one line on standard error.
    """
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    if worker is not None and hasattr(worker, "print_to_stdstream"):
        log = logging.getLogger("sampler.cluster")
        worker.print_to_stdstream = lambda data, ignore_prefix=False: log.debug(
            "ray: %s", " ".join(data.get("lines", []))
        )


def _join(ray: Any, address: str, options: dict[str, Any]) -> None:
    """``ray.init`` at ``address``, bounded: nothing listening, or something that is not a Ray
    cluster, fails in seconds with one line (Ray itself retries for minutes, with a warning a
    second and a traceback at the end)."""
    _check_reachable(address)
    if not address.startswith("ray://"):  # the Ray Client protocol has no control store to ask
        with _quiet_stderr():  # Ray's core prints a warning a second while it retries
            problem = _control_store_problem(address, JOIN_SECONDS)
        if problem is not None:
            raise InvalidInputError(
                f"cannot join the Ray cluster at {address!r}: something answers there, but not "
                f"a Ray {ray.__version__} cluster ({problem})"
            )
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError) as error:  # e.g. another Ray version there
        raise InvalidInputError(
            f"cannot join the Ray cluster at {address!r}: {first_line(error)}"
        ) from None


def _control_store_problem(address: str, seconds: float) -> str | None:
    """``None`` if a Ray control store (GCS) at ``address`` tells its cluster id in
    ``seconds``, else why not. The asking thread is left behind if it hangs: it holds no
    state, and gives up by itself (Ray 2.60's private ``GcsClient``, the pinned version)."""
    from ray._raylet import GcsClient

    outcome: list[str | None] = []

    def ask() -> None:
        try:
            GcsClient(address=address).cluster_id  # noqa: B018 (asking is the point)
            outcome.append(None)
        except Exception as error:  # any failure is the answer
            outcome.append(first_line(error))

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    asking.join(seconds)
    return outcome[0] if outcome else f"no answer in {seconds:g} s"


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 (where Ray's C++ core writes) into the void for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as void:
            os.dup2(void.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Connected to a Ray cluster for the block; yields the ``ray`` module.

    An existing connection of the caller's is used as it is (and left open); otherwise the
    block joins ``address`` (else ``$RAY_ADDRESS``) or starts a local cluster, and disconnects
    at its end. Ray's logs stay out of the terminal.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        options["include_dashboard"] = False
        ray.init(**options)
    else:
        _join(ray, address, options)
    _quiet_ray(ray)
    try:
        yield ray
    finally:
        ray.shutdown()
