"""Progress of a run on a stream: a live line on a terminal, plain periodic lines elsewhere.

A run's rows generate batched, so rows finish together near the end; progress is therefore
counted in tokens (each running row yields one per step) as well as in rows done. On a terminal
one line is redrawn in place; in a log file or a pipe, where a redrawn line would be one long
line of carriage returns, a plain line is written at every tenth of the token budget (at most
one per ``min_seconds``, and at least one per ``max_seconds``) and a last one at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["RunProgress"]


def _clock_text(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


class RunProgress:
    """Counts rows and tokens of a run and writes progress lines to ``stream``.

    Parameters
    ----------
    rows_total, rows_done
        Rows the run plans, and how many were stored before this start (a resumed run).
    token_budget
        Rows to generate now × the most tokens each may make: the 100 % of the token count
        (rows that end early at EOS leave it short of that).
    stream
        Where the lines go (standard error, so standard output keeps the results).
    live
        Redraw one line in place; default: when ``stream`` is a terminal.
    min_seconds, max_seconds
        Bounds on the time between two plain lines (a line is also due at each tenth of the
        budget).
    clock
        Seconds, monotonic (tests give their own).
    rows_rate
        Show rows per second in every line, not only the last: a run on a cluster, whose rows
        arrive from many actors one by one, counts its progress in rows.

    Call :meth:`step` as the generation loop's ``on_step``, :meth:`row` when a row is stored,
    and :meth:`finish` once at the end.
    """

    def __init__(
        self,
        rows_total: int,
        rows_done: int,
        token_budget: int,
        stream: TextIO,
        live: bool | None = None,
        min_seconds: float = 5.0,
        max_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        rows_rate: bool = False,
    ) -> None:
        self.rows_total, self.rows_done, self.rows_at_start = rows_total, rows_done, rows_done
        self.token_budget, self.tokens = token_budget, 0
        self.stream = stream
        self.live = _is_terminal(stream) if live is None else live
        self.min_seconds, self.max_seconds, self.clock = min_seconds, max_seconds, clock
        self.started = self.last_line = clock()
        self.next_tenth = 1
        self.finished = False
        self.shown_width = 0
        self.rows_rate = rows_rate

    def line(self) -> str:
        """``rows 16/80 · tokens 512/2560 (20 %) · 45 tokens/s · 0:11`` as of now."""
        elapsed = self.clock() - self.started
        share = self.tokens / self.token_budget if self.token_budget else 1.0
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        text = (
            f"rows {self.rows_done}/{self.rows_total} · tokens {self.tokens}/{self.token_budget} "
            f"({share:.0%}) · {rate:.1f} tokens/s · {_clock_text(elapsed)}"
        )
        if self.rows_rate and not self.finished:  # the final line says it once, at its end
            text += f" · {self._rows_per_second(elapsed):.2f} rows/s"
        return text

    def _rows_per_second(self, elapsed: float) -> float:
        return (self.rows_done - self.rows_at_start) / elapsed if elapsed > 0 else 0.0

    def step(self, _step: int, running: int) -> None:
        """One step of the loop in which ``running`` rows each drew a token."""
        self.tokens += running
        self._show()

    def row(self) -> None:
        """One more row is stored."""
        self.rows_done += 1
        self._show()

    def finish(self) -> None:
        """The last line: rows and tokens done, tokens and rows per second, wall time."""
        if self.finished:
            return
        self.finished = True
        elapsed = self.clock() - self.started
        rows_rate = f" · {self._rows_per_second(elapsed):.2f} rows/s" if elapsed > 0 else ""
        text = f"done: {self.line()}{rows_rate}"
        self._write(self._redraw(text) + "\n" if self.live else text + "\n")

    def stop(self) -> None:
        """End a run that did not finish (an error, Ctrl-C): a live line is left as it is,
        with a line break after it, so the next message starts on a line of its own."""
        if self.live and self.shown_width and not self.finished:
            self._write("\n")
        self.finished = True

    def _show(self) -> None:
        now = self.clock()
        if self.live:
            if now - self.last_line >= 0.25:
                self.last_line = now
                self._write(self._redraw(self.line()))
            return
        tenth = (
            self.tokens * 10 >= self.next_tenth * self.token_budget > 0
            and self.tokens < self.token_budget  # the whole budget is for finish() to say
        )
        since = now - self.last_line
        if (tenth and since >= self.min_seconds) or since >= self.max_seconds:
            self.last_line = now
            self._write(self.line() + "\n")
        while self.token_budget and self.tokens * 10 >= self.next_tenth * self.token_budget:
            self.next_tenth += 1

    def _redraw(self, text: str) -> str:
        # spaces over what a longer earlier line left on the terminal
        padded, self.shown_width = text.ljust(self.shown_width), len(text)
        return "\r" + padded

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
