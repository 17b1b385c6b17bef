"""`sampler.report.summary.summarize()` against numbers worked out by hand.

The oracle is written here from docs/experiments.md's definitions of the report columns
("sampler report"), in plain Python, with NLTK's ``sentence_bleu`` (smoothing method 1) for
self-BLEU-4 and scipy's t quantile for the intervals below 8 prompts. It never calls
``sampler.report``. ``hand_summary`` is also the oracle of the report test in ``test_sweep.py``.
"""

import math
import statistics
from collections import defaultdict

import pytest
import scipy.stats
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from sampler.report.summary import format_summary, markdown_summary, summarize

# The summary keys whose definitions are checked here. summarize() may grow more keys (e.g.
# confidence intervals); they are not this test's business, so values are looked up by name.
CHECKED_KEYS = (
    "temperature",
    "rows",
    "length",
    "entropy_final",
    "entropy_base",
    "surprisal",
    "ppl_base",
    "distinct_1",
    "distinct_2",
    "distinct_3",
    "self_bleu4",
    "repetition",
    "greedy_agreement",
)


def _ngrams(tokens: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _nltk_self_bleu(sequences: list[list[int]]) -> float:
    """Texygen self-BLEU-4: each sequence against all the others, with NLTK as the scorer."""
    smooth = SmoothingFunction().method1
    scores = [
        sentence_bleu(sequences[:i] + sequences[i + 1 :], seq, smoothing_function=smooth)
        for i, seq in enumerate(sequences)
    ]
    return statistics.fmean(scores)


def _greedy_repeat(row: dict, seen: set) -> bool:
    """docs/experiments.md: greedy rows (no XTC) count once per distinct completion of a prompt."""
    xtc = (row.get("params") or {}).get("xtc_probability", 0)
    if row["temperature"] != 0 or xtc:
        return False
    key = (row["prompt"], tuple(row["token_ids"]))
    if key in seen:
        return True
    seen.add(key)
    return False


def hand_summary(completions: list[dict]) -> dict[float, dict]:
    """Every checked column per temperature, from docs/experiments.md's definitions."""
    by_temperature = defaultdict(list)
    for completion in completions:
        by_temperature[completion["temperature"]].append(completion)
    out = {}
    for temperature, logged in by_temperature.items():
        seen: set = set()
        rows = [row for row in logged if not _greedy_repeat(row, seen)]
        sequences = [list(row["token_ids"]) for row in rows]
        steps = [step for row in rows for step in row["steps"]]
        # seq-rep-4 per completion; those too short for a four-gram are skipped
        fours = [_ngrams(seq, 4) for seq in sequences]
        reps = [1 - len(set(grams)) / len(grams) for grams in fours if grams]
        by_prompt = defaultdict(list)
        for row in rows:
            by_prompt[row["prompt"]].append(list(row["token_ids"]))
        # distinct-n among one prompt's rows, then the mean over prompts
        distinct = {}
        for n in (1, 2, 3):
            per_prompt = []
            for group in by_prompt.values():
                grams = [g for seq in group for g in _ngrams(seq, n)]
                per_prompt.append(len(set(grams)) / len(grams))
            distinct[n] = statistics.fmean(per_prompt)
        bleus = [_nltk_self_bleu(group) for group in by_prompt.values() if len(group) > 1]
        out[temperature] = {
            "temperature": temperature,
            "rows": len(logged),
            "length": statistics.fmean(len(seq) for seq in sequences),
            # means over every step of every row
            "entropy_final": statistics.fmean(s["entropy_final"] for s in steps),
            "entropy_base": statistics.fmean(s["entropy_base"] for s in steps),
            "surprisal": statistics.fmean(s["surprisal"] for s in steps),
            "ppl_base": math.exp(statistics.fmean(s["surprisal_base"] for s in steps)),
            "distinct_1": distinct[1],
            "distinct_2": distinct[2],
            "distinct_3": distinct[3],
            # undefined (NaN) when no prompt has two completions (greedy)
            "self_bleu4": statistics.fmean(bleus) if bleus else math.nan,
            "repetition": statistics.fmean(reps),
            "greedy_agreement": statistics.fmean(s["token"] == s["base_argmax"] for s in steps),
        }
    return out


# 2 prompts × 2 temperatures × 2 samples. Token ids chosen so every n-gram count below can be
# checked on paper.
SEQUENCES = {
    (0.5, "a", 0): [1, 2, 3, 4, 1, 2, 3, 4],
    (0.5, "a", 1): [1, 2, 3, 5, 6],
    (0.5, "b", 0): [7, 8, 9],
    (0.5, "b", 1): [7, 8, 9, 7],
    (1.0, "a", 0): [1, 2, 3, 4, 5, 6],
    (1.0, "a", 1): [6, 5, 4, 3, 2, 1],
    (1.0, "b", 0): [9, 9, 9, 9, 9],
    (1.0, "b", 1): [2, 4, 6, 8],
}


def _completions() -> list[dict]:
    completions = []
    for row, ((temperature, prompt, sample), tokens) in enumerate(SEQUENCES.items()):
        steps = [
            {
                "step": j,
                "token": token,
                # Simple, distinct numbers per row and step, so means and spreads are not trivial.
                "entropy_final": 0.5 * temperature * (j + 1) + 0.1 * row,
                "entropy_base": 1.0 + 0.2 * j - 0.05 * row,
                "surprisal": 0.3 * (j % 3) + temperature,
                "surprisal_base": 0.4 + 0.1 * ((j + row) % 4),
                # the first two steps of each row follow the argmax, the rest do not
                "base_argmax": token if j < 2 else token + 100,
            }
            for j, token in enumerate(tokens)
        ]
        completions.append(
            {
                "row_index": row,
                "prompt": prompt,
                "sample": sample,
                "temperature": temperature,
                "token_ids": tokens,
                "steps": steps,
            }
        )
    return completions


def test_hand_summary_counts_match_the_paper_ones():
    """The oracle's n-gram columns against counts done on paper."""
    hand = hand_summary(_completions())
    # τ = 0.5, prompt a: 13 tokens, 6 distinct; 11 bigrams, 6 distinct; 9 trigrams, 6 distinct.
    # Prompt b: 7 tokens, 3 distinct; 5 bigrams, 3 distinct; 3 trigrams, 2 distinct.
    # seq-rep-4: [1,2,3,4,1,2,3,4] has 5 four-grams, 4 distinct: 0.2; [1,2,3,5,6] and
    # [7,8,9,7] repeat none: 0; [7,8,9] has no four-gram and is skipped. Mean 0.2 / 3.
    assert hand[0.5]["length"] == 5.0 and hand[0.5]["rows"] == 4
    assert hand[0.5]["distinct_1"] == pytest.approx((6 / 13 + 3 / 7) / 2, abs=1e-15)
    assert hand[0.5]["distinct_2"] == pytest.approx((6 / 11 + 3 / 5) / 2, abs=1e-15)
    assert hand[0.5]["distinct_3"] == pytest.approx((6 / 9 + 2 / 3) / 2, abs=1e-15)
    assert hand[0.5]["repetition"] == pytest.approx(0.2 / 3, abs=1e-15)
    # τ = 1, prompt a: 12 tokens, 6 distinct; 10 bigrams and 8 trigrams, all distinct.
    # Prompt b: 9 tokens, 5 distinct; 7 bigrams, 4 distinct; 5 trigrams, 3 distinct.
    # [9,9,9,9,9] has 2 four-grams, 1 distinct: 0.5; the three others 0. Mean 0.125.
    assert hand[1.0]["length"] == 5.25
    assert hand[1.0]["distinct_1"] == pytest.approx((6 / 12 + 5 / 9) / 2, abs=1e-15)
    assert hand[1.0]["distinct_2"] == pytest.approx((1 + 4 / 7) / 2, abs=1e-15)
    assert hand[1.0]["distinct_3"] == pytest.approx((1 + 3 / 5) / 2, abs=1e-15)
    assert hand[1.0]["repetition"] == 0.125
    # Two steps per row follow the argmax: 8 of 20 steps at τ = 0.5, 8 of 21 at τ = 1.
    assert hand[0.5]["greedy_agreement"] == 8 / 20 and hand[1.0]["greedy_agreement"] == 8 / 21
    # Prompt b at τ = 1: [9,9,9,9,9] and [2,4,6,8] share no unigram, so both BLEUs are 0 and
    # self-BLEU there is 0; the τ = 1 value is half of prompt a's.
    a_only = _nltk_self_bleu([SEQUENCES[1.0, "a", 0], SEQUENCES[1.0, "a", 1]])
    assert hand[1.0]["self_bleu4"] == pytest.approx(a_only / 2, abs=1e-15)
    # Row 4 (τ = 1, prompt a, sample 0): entropy_final 0.5·(j + 1) + 0.4 over j = 0..5 has
    # mean 0.5 · 3.5 + 0.4 = 2.15.
    assert statistics.fmean(s["entropy_final"] for s in _completions()[4]["steps"]) == (
        pytest.approx(2.15)
    )


def test_summarize_matches_hand_computed_columns():
    completions = _completions()
    summary = summarize(completions)
    hand = hand_summary(completions)
    assert [row["temperature"] for row in summary] == [0.5, 1.0]
    for row in summary:
        expected = hand[row["temperature"]]
        for key in CHECKED_KEYS:
            # float64 sums of a few dozen values in another order: ≲ n u relative
            assert row[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key


def _hand_t_interval(completions: list[dict], temperature: float, key: str) -> tuple:
    """Below 8 prompts: ratio ± t(G - 1) · se, se the linearised one of the ratio of sums over
    prompts (docs/experiments.md, "Intervals"), cut at 0 (every column here is >= 0)."""
    sums = {"entropy_final": ("entropy_final", None), "length": (None, None)}[key]
    a, b = [], []
    for prompt in ("a", "b"):
        rows = [c for c in completions if c["prompt"] == prompt and c["temperature"] == temperature]
        if sums[0] is None:  # length: tokens over rows
            a.append(sum(len(c["token_ids"]) for c in rows))
            b.append(len(rows))
        else:  # a step mean: summed over the steps, over the number of steps
            a.append(math.fsum(s[key] for c in rows for s in c["steps"]))
            b.append(sum(len(c["steps"]) for c in rows))
    ratio, mean_b, count = sum(a) / sum(b), sum(b) / len(b), len(a)
    residuals = [(x - ratio * y) / mean_b for x, y in zip(a, b, strict=True)]
    se = math.sqrt(sum(e * e for e in residuals) / (count * (count - 1)))
    half = scipy.stats.t.ppf(0.975, count - 1) * se
    return max(ratio - half, 0.0), ratio + half


def test_intervals_below_8_prompts_are_t_intervals_of_the_ratio():
    completions = _completions()
    for row in summarize(completions):
        for key in ("entropy_final", "length"):
            expected = _hand_t_interval(completions, row["temperature"], key)
            # as above, and both use scipy's t quantile
            assert row[f"{key}_ci"] == pytest.approx(expected, rel=1e-12, abs=1e-12), key


def test_few_prompts_warn_and_no_ordering_is_listed():
    summary = summarize(_completions())  # 2 prompts
    assert all(row["untested"] == [] or len(row["untested"]) == 11 for row in summary)
    for text in (format_summary(summary), markdown_summary(summary)):
        assert "WARNING: these intervals rest on only 2 prompts, fewer than 8" in text
        assert "No ordering between adjacent temperatures is tested" in text
        assert "Not significant" not in text


def _eight_prompts() -> list[dict]:
    """8 prompts at τ 0.5 and 1 (prompt b's and a's rows, renamed and shifted per copy)."""
    rows = []
    for copy in range(4):
        for completion in _completions():
            steps = [dict(s, entropy_final=s["entropy_final"] + 0.37 * copy)
                     for s in completion["steps"]]
            rows.append(dict(completion, prompt=f"{completion['prompt']}{copy}", steps=steps))
    return rows


def test_adjacent_orderings_are_tested_on_the_same_prompts():
    completions = _eight_prompts()
    later = [dict(c, temperature=2.0, steps=[dict(s, entropy_final=s["entropy_final"] + 5)
                                             for s in c["steps"]])
             for c in completions if c["temperature"] == 1.0]
    summary = summarize(completions + later)
    assert [row["prompts"] for row in summary] == [8, 8, 8]
    # τ 1 → 2 adds 5 nats to every step of every prompt: significant
    assert "entropy_final" not in summary[2]["not_significant"]
    # and changes nothing else, so those differences are exactly 0: not significant
    assert "length" in summary[2]["not_significant"]
    assert summary[0]["not_significant"] == [] and summary[2]["untested"] == []
    text = format_summary(summary)
    assert "WARNING" not in text and "No ordering" not in text
    assert "Not significant between adjacent temperatures (paired t-test" in text


def test_greedy_repeats_count_once():
    """Three identical greedy rows of a prompt are one completion: distinct-n is that
    completion's own (worked on paper), self-BLEU is undefined; rows still shows all three."""
    tokens = {"a": [1, 2, 3, 1, 2, 4], "b": [5, 5, 5, 6]}
    rows = [
        {"prompt": p, "sample": k, "temperature": 0.0, "token_ids": t,
         "steps": [{"token": x, "entropy_final": 0.0, "entropy_base": 1.0, "surprisal": 0.0,
                    "surprisal_base": 0.5, "base_argmax": x} for x in t]}
        for p, t in tokens.items() for k in range(3)
    ]
    (row,) = summarize(rows)
    # a: 6 tokens, 4 distinct; 5 bigrams, 4 distinct (1 2 twice). b: 4 tokens, 2 distinct;
    # 3 bigrams, 2 distinct (5 5 twice).
    assert row["distinct_1"] == pytest.approx((4 / 6 + 2 / 4) / 2, abs=1e-15)
    assert row["distinct_2"] == pytest.approx((4 / 5 + 2 / 3) / 2, abs=1e-15)
    assert row["distinct_1"] == pytest.approx(hand_summary(rows)[0.0]["distinct_1"], abs=1e-15)
    assert math.isnan(row["self_bleu4"])
    assert (row["rows"], row["distinct"], row["length"]) == (6, 2, 5.0)
    # with XTC's coin on, τ = 0 rows are draws: the same three rows count three times
    coin = [dict(r, params={"xtc_probability": 0.5, "xtc_threshold": 0.1}) for r in rows]
    (drawn,) = summarize(coin)
    assert drawn["distinct_1"] == pytest.approx((4 / 18 + 2 / 12) / 2, abs=1e-15)
    assert drawn["self_bleu4"] == pytest.approx(1.0)


def test_rows_too_short_for_a_four_gram_leave_repetition_undefined():
    short = [dict(c, token_ids=c["token_ids"][:2], steps=c["steps"][:2]) for c in _completions()]
    summary = summarize(short)
    assert all(math.isnan(row["repetition"]) for row in summary)
    assert all(row["length"] == 2 for row in summary)
