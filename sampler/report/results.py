"""A run's results as one JSON-ready dict: the run, its per-temperature summary with
intervals, every row's text and where it leaves greedy, and the sample texts a sweep shows.

``sampler sweep --json`` and ``sampler compare --json`` print :func:`run_results` through
:func:`sampler.json_values.to_json`, which writes an undefined value (NaN: an interval from
one prompt, self-BLEU of greedy) or an infinite one (τ = inf) as ``null``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sampler.report.bootstrap import CONFIDENCE, MIN_PROMPTS
from sampler.report.compact import GLOSSARY, format_compact_summary
from sampler.report.sample_texts import (
    SampleText,
    divergence_steps,
    format_sample_texts,
    pick_sample_texts,
)
from sampler.report.summary import (
    format_summary,
    interval_caption,
    interval_warning,
    summarize,
)
from sampler.runlog.recording import completion_record

if TYPE_CHECKING:
    from sampler.generation.compare import SampleComparison
    from sampler.generation.generation_row import Completion

__all__ = ["ROW_KEYS", "compare_results", "results_text", "run_results"]

#: What each row of ``rows`` carries from the run log (steps are in ``sampler export``).
ROW_KEYS = ("row_index", "prompt", "temperature", "sample", "finish_reason", "text", "token_ids")

_RUN_KEYS = ("kind", "model", "fingerprint", "status", "rows_done", "total_rows", "created_at")


def run_results(
    run: dict[str, Any],
    summary: Sequence[dict[str, Any]],
    completions: Sequence[dict[str, Any]],
    decode: Callable[[list[int]], str] | None = None,
) -> dict[str, Any]:
    """The results of ``run`` as plain values.

    Parameters
    ----------
    run
        The run as ``RunStore.get_run`` gives it (``id``, ``kind``, ``model``, ``config``, ...);
        keys it lacks (a run that was not logged) are ``None``.
    summary
        :func:`sampler.report.summary.summarize` of its completions.
    completions
        Its rows (run-log completions; their steps are not used).
    decode
        ``source.decode``, to place each sample's first differing token in its text.

    Returns
    -------
    dict
        ``run_id``, the run's ``kind``, ``model``, ``fingerprint``, ``status``,
        ``rows_done``, ``total_rows``, ``created_at``, ``seed`` and ``config``; ``intervals``
        (``confidence``, ``method``, ``min_prompts``, ``reliable``, ``warning``); ``columns``
        (each summary column in plain words); ``summary`` (per temperature: every column,
        ``<column>_ci`` as ``[low, high]``, ``not_significant``, ``untested``);
        ``sample_prompt`` and ``samples`` (greedy, then sample 0 at each temperature, of the
        first prompt: ``divergence_step``, ``divergence_char``, ``text``, ...); ``rows``
        (every row, by ``row_index``, with its ``divergence_step`` against its prompt's
        greedy row, ``None`` when it has none or follows it).
    """
    config = run.get("config") or {}
    rows = sorted(completions, key=lambda row: row["row_index"])
    steps = divergence_steps(rows)
    samples = pick_sample_texts(rows, decode=decode)
    warning = interval_warning(summary)
    return {
        "run_id": run.get("id"),
        **{key: run.get(key) for key in _RUN_KEYS},
        "seed": config.get("seed"),
        "config": config,
        "intervals": {
            "confidence": CONFIDENCE,
            "method": interval_caption(summary),
            "min_prompts": MIN_PROMPTS,
            "reliable": warning is None,
            "warning": warning,
        },
        "columns": dict(GLOSSARY),
        "summary": [dict(row) for row in summary],
        "sample_prompt": rows[0]["prompt"] if rows else None,
        "samples": [sample.to_dict() for sample in samples],
        "rows": [
            {key: row.get(key) for key in ROW_KEYS}
            | {"divergence_step": steps.get(row["row_index"])}
            for row in rows
        ],
    }


def results_text(
    summary: Sequence[dict[str, Any]],
    prompt: str,
    samples: Sequence[SampleText],
    width: int = 100,
    all_columns: bool = False,
) -> str:
    """A run's results for a terminal: the per-temperature table (compact, with its legend,
    or every column with ``all_columns``), then the sample texts of ``prompt`` wrapped to
    ``width``."""
    table = format_summary(summary) if all_columns else format_compact_summary(summary, width)
    return "\n".join([table, "", *format_sample_texts(prompt, samples, width)])


def compare_results(
    run: dict[str, Any],
    greedy: Completion,
    comparisons: Sequence[SampleComparison],
    decode: Callable[[list[int]], str] | None = None,
) -> dict[str, Any]:
    """:func:`run_results` of a comparison (greedy at row 0, sample ``i`` at row ``1 + i``, as
    a compare run logs them), with ``comparisons``: per sample, where it leaves greedy, the
    entropy there, what each chose there, and its share of the model's top-choice tokens."""
    finished = [greedy, *(item.completion for item in comparisons)]
    records = [completion_record(c) | {"row_index": i} for i, c in enumerate(finished)]
    results = run_results(run, summarize(records), records, decode)
    results["comparisons"] = [
        {
            "row_index": index,
            "sample": item.completion.row.sample,
            "temperature": item.completion.row.params.temperature,
            "divergence_step": item.divergence_step,
            "entropy_at_divergence": item.entropy_at_divergence,
            "greedy_token": item.greedy_token,
            "sampled_token": item.sampled_token,
            "argmax_rate": item.argmax_rate,
        }
        for index, item in enumerate(comparisons, start=1)
    ]
    return results
