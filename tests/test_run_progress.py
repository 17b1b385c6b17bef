"""RunProgress on a fake clock: when it writes a plain line, what the line says, and the live
line a terminal gets; and sample texts made safe for a terminal."""

import io

from sampler.experiments.progress import RunProgress
from sampler.report.sample_texts import terminal_safe


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_at_tenths_of_the_budget_spaced_by_min_seconds():
    clock, out = Clock(), io.StringIO()
    progress = RunProgress(10, 0, 100, out, live=False, min_seconds=5, max_seconds=60,
                           clock=clock)
    for _ in range(10):  # 10 steps of 10 rows: 10 tokens a step, one step every 3 s
        clock.now += 3
        progress.step(0, 10)
    for _ in range(10):
        progress.row()
    progress.finish()
    lines = out.getvalue().splitlines()
    # tenths at t = 3, 6, ..., 30 s: a line at each tenth at least 5 s after the last one
    # (6, 12, 18, 24 s; the whole budget, at 30 s, is the final line's), then the final line
    assert [line.split(" · ")[1] for line in lines[:-1]] == [
        f"tokens {n}/100 ({n}%)" for n in (20, 40, 60, 80)]
    assert lines[0] == "rows 0/10 · tokens 20/100 (20%) · 3.3 tokens/s · 0:06"
    assert lines[-1] == (
        "done: rows 10/10 · tokens 100/100 (100%) · 3.3 tokens/s · 0:30 · 0.33 rows/s")


def test_a_long_gap_writes_a_line_even_between_tenths():
    clock, out = Clock(), io.StringIO()
    progress = RunProgress(4, 1, 1000, out, live=False, min_seconds=5, max_seconds=60,
                           clock=clock)
    clock.now += 61
    progress.step(0, 3)  # 3 of 1000 tokens: no tenth, but a minute without a line
    assert out.getvalue() == "rows 1/4 · tokens 3/1000 (0%) · 0.0 tokens/s · 1:01\n"


def test_a_terminal_gets_one_line_redrawn_in_place():
    clock, out = Clock(), io.StringIO()
    progress = RunProgress(2, 0, 20, out, live=True, clock=clock)
    for step in range(10):
        clock.now += 1
        progress.step(step, 2)
    progress.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") == 11
    assert text.rsplit("\r", 1)[1].startswith("done: rows 0/2 · tokens 20/20 (100%)")


def test_terminal_safe_shows_breaks_and_escapes_control_characters():
    assert terminal_safe("a\n\nb\tc") == "a ⏎⏎ b c"
    assert terminal_safe("red \x1b[31m bell \x07 rtl \u202e") == (
        "red \\x1b[31m bell \\x07 rtl \\u202e")


def test_a_stopped_live_line_ends_with_a_line_break_and_no_done_line():
    clock, out = Clock(), io.StringIO()
    progress = RunProgress(2, 0, 20, out, live=True, clock=clock)
    clock.now += 1
    progress.step(0, 2)
    progress.stop()
    progress.finish()  # after stop: nothing more
    assert out.getvalue().endswith("\n") and "done" not in out.getvalue()


def test_a_cluster_run_shows_rows_per_second_on_every_line():
    # rows arrive one by one from many actors: 4 rows stored 2 s apart, 8 tokens each
    clock, out = Clock(), io.StringIO()
    progress = RunProgress(6, 2, 32, out, live=False, min_seconds=5, max_seconds=60,
                           clock=clock, rows_rate=True)
    for _ in range(4):
        clock.now += 2
        progress.step(0, 8)
        progress.row()
    progress.finish()
    lines = out.getvalue().splitlines()
    # a tenth is due at every row's tokens (8 of 32), a line at the first 5 s after the start:
    # at 6 s, the third row's tokens counted before the row itself, so 2 rows stored now (the
    # 2 stored before this start are not this run's rate): 2 / 6 s = 0.33
    assert lines[0] == "rows 4/6 · tokens 24/32 (75%) · 4.0 tokens/s · 0:06 · 0.33 rows/s"
    # the final line says the rate once, at its end: 4 rows in 8 s
    assert lines[-1] == "done: rows 6/6 · tokens 32/32 (100%) · 4.0 tokens/s · 0:08 · 0.50 rows/s"
