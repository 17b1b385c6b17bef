"""Splitting a large batch across the CPU's cores.

A row's result does not depend on the other rows of its batch (its chain, draw and statistics
are computed from that row alone, a tested property), so a large group of rows can be cut into
one slice per core and the slices run at once: numpy releases the interpreter lock inside its
array loops, so threads scale on full-vocabulary rows. Small batches run in the calling thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

__all__ = ["cores", "map_parallel", "slices"]

# Below this many logits per slice, a thread costs more than it saves.
_MIN_SLICE_LOGITS = 1 << 20

Item = TypeVar("Item")
T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def cores() -> int:
    """The cores this process may run on (``SAMPLER_THREADS`` overrides; 1 = no threads)."""
    override = os.environ.get("SAMPLER_THREADS", "")
    if override.isdigit() and int(override) > 0:
        return int(override)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def slices(members: np.ndarray, width: int) -> list[np.ndarray]:
    """``members`` cut into at most one contiguous slice per core, none under the threshold."""
    count = min(cores(), len(members), max(1, len(members) * width // _MIN_SLICE_LOGITS))
    return [part for part in np.array_split(members, count) if len(part)]


def map_parallel(function: Callable[[Item], T], items: Sequence[Item]) -> list[T]:
    """``function`` over each item, at once on a shared pool when there are several."""
    if len(items) <= 1:
        return [function(item) for item in items]
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < len(items):
            _pool = ThreadPoolExecutor(max_workers=max(len(items), cores()))
        pool = _pool
    return list(pool.map(function, items))
