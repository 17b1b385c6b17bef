"""Who may use the model when: the model lock (:class:`FairLock`) and generation slots.

One model call runs at a time (a source is not thread-safe), and the lock goes to its waiters
in arrival order. At most ``Slots.size`` generations run at once: one more is refused at once
(429) rather than queued.

>>> slots = Slots(1)
>>> slots.take(), slots.take(), slots.running
(True, False, 1)
"""

from __future__ import annotations

import collections
import threading

__all__ = ["BUSY", "BusyError", "FairLock", "Slots"]

BUSY = "the model is busy: try again in a moment"


class BusyError(Exception):
    """The model lock stayed taken for as long as a request may wait (then 429)."""


class FairLock:
    """A lock handed to its waiters in the order they came (with a timeout).

    ``threading.Lock`` lets the thread that releases it take it again before any waiter
    wakes: a save stepping in a loop kept the model while a stream, which sends an event
    between two steps, waited behind every next-token request. Here a release hands the lock
    to the longest waiter, so each model call waits only for the calls queued before it.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def acquire(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` seconds; ``False`` if it did not come."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        """Hand the lock to the longest waiter, or free it."""
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # it stays held: the waiter owns it now
            else:
                self._held = False


class Slots:
    """At most ``size`` generations at once; taking a slot never waits (the caller says 429)."""

    def __init__(self, size: int) -> None:
        self.size, self.running = size, 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take a slot if one is free."""
        with self._lock:
            if self.running >= self.size:
                return False
            self.running += 1
            return True

    def free(self) -> None:
        """Give a slot back."""
        with self._lock:
            if self.running <= 0:
                raise RuntimeError("a generation slot was freed twice")
            self.running -= 1
