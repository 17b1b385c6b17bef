"""What a grammar's mask did over a generation, in one line: the probability it removed per
step (mean and most), how often the model's favourite was illegal, how many steps were
forced. The per-step picture is the report's ``grammar.png``
(:func:`~sampler.report.telemetry_plots.grammar_traces`).

Examples
--------
>>> rows = [[{"grammar_removed_mass": 0.5, "grammar_top1_illegal": 1.0, "grammar_forced": 0.0},
...          {"grammar_removed_mass": 0.0, "grammar_top1_illegal": 0.0, "grammar_forced": 1.0}]]
>>> for part in grammar_summary(rows).split("; "):
...     print(part)
grammar: the mask removed 0.2500 of the model's probability per step on average (2 steps, 1 row)
most 0.5000 (row 0, step 0)
the model's top-1 was illegal at 1 step
1 step forced
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = ["grammar_summary"]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def grammar_summary(step_lists: Iterable[Sequence[Mapping[str, float]]]) -> str | None:
    """One line over rows' steps (:class:`~sampler.engine.stats.StepStats` rows, as
    ``generate --json`` and the run log hold them); ``None`` when no step had a grammar."""
    removed: list[tuple[float, int, int]] = []
    illegal = forced = rows = 0
    for row, steps in enumerate(step_lists):
        masked = [step for step in steps if "grammar_removed_mass" in step]
        rows += bool(masked)
        for index, step in enumerate(masked):
            removed.append((step["grammar_removed_mass"], row, index))
            illegal += step.get("grammar_top1_illegal", 0) == 1
            forced += step.get("grammar_forced", 0) == 1
    if not removed:
        return None
    most, row, step = max(removed, key=lambda item: item[0])
    mean = sum(item[0] for item in removed) / len(removed)
    return (
        f"grammar: the mask removed {mean:.4f} of the model's probability per step on average "
        f"({_count(len(removed), 'step')}, {_count(rows, 'row')}); most {most:.4f} (row {row}, "
        f"step {step}); the model's top-1 was illegal at {_count(illegal, 'step')}; "
        f"{_count(forced, 'step')} forced"
    )
