"""Connecting to a Ray cluster for a run, with Ray's own logs kept out of the terminal.

Ray is imported here, when a run asks for it (the ``ray`` extra), never by ``import sampler``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sampler.errors import InvalidInputError

__all__ = ["INSTALL_HINT", "import_ray", "ray_session"]

INSTALL_HINT = "install it with: pip install 'sampler[ray]'"
# How long joining a cluster may take to find its address listening, before Ray's own
# connection (which retries for minutes) is tried at all.
CONNECT_SECONDS = 5.0


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
    if address is not None:
        _check_reachable(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        options["include_dashboard"] = False
    ray.init(address=address, **options)
    _quiet_ray(ray)
    try:
        yield ray
    finally:
        ray.shutdown()
