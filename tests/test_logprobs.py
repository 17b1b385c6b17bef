"""``--logprobs raw|processed``: per-token log-probabilities against independent oracles.

Oracles: ``scipy.special.log_softmax`` of the source's logits, fetched in the test by driving
the source's own session (the code under test never sees them); for ``processed``, the chain
temperature + top-k transcribed here (divide by τ, keep the k largest, log-softmax over them),
and :func:`sampler.distribution` for XTC's mixture. Tolerances: both sides compute in float64
from the same float32 logits, so raw ones differ only by float64 rounding of a 49,152-term sum
(~1e-11): 1e-9 absolute. The chain runs on float32 (x/τ is rounded to float32, relative error
2^-24), so a processed log-probability ``z_i - logsumexp(z)`` may be off by about 2^-24 times
|z_i| plus the largest |z| kept: the bound is 2 · max |z| · 2^-24 per step (a few 1e-7 here). A
real fault (a wrong temperature, a token off by one) moves a log-probability by more than 1e-3.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.special import log_softmax

from sampler import SamplingParams, distribution
from sampler.cli import cli
from sampler.engine.logprobs import top_tokens
from sampler.generation.generation_row import GenerationRow
from sampler.generation.logprobs import LogprobRequest
from sampler.generation.loop import generate
from sampler.sources.synthetic_spec import parse_synthetic

MARKOV = "synthetic:markov?vocab=300&sharpness=2.0&seed=1"
PROMPT = "kalo mesu"
TOLERANCE = 1e-9


def strict(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def step_logits(source, completion) -> list[np.ndarray]:
    """The source's logits at each step of ``completion``, by its own session, in float64."""
    logits, session = source.start([completion.prompt_ids])
    rows = [np.asarray(logits[0], dtype=np.float64)]
    for token in [s["token"] for s in completion.steps][:-1]:
        rows.append(np.asarray(session.advance(np.array([token]))[0], dtype=np.float64))
    return rows


def temperature_top_k(logits: np.ndarray, temperature: float, k: int) -> np.ndarray:
    """The chain temperature -> top-k, transcribed: log-probabilities, -inf where cut."""
    scaled = logits / temperature
    kept = np.argsort(-scaled, kind="stable")[:k]
    out = np.full(scaled.shape, -np.inf)
    out[kept] = log_softmax(scaled[kept])
    return out


def float32_bound(scaled: np.ndarray) -> float:
    """How far float32 rounding of ``scaled`` can move its log-softmax (module docstring)."""
    return 2 * float(np.abs(scaled[np.isfinite(scaled)]).max()) * 2.0**-24 + TOLERANCE


def check_entries(content, references, key, bounds=None):
    """Every reported ``key`` (chosen and alternatives) equals the reference row's value."""
    bounds = bounds or [TOLERANCE] * len(references)
    for entry, reference, bound in zip(content, references, bounds, strict=True):
        for item in [entry, *entry["top_logprobs"]]:
            expected = reference[item["id"]]
            if np.isfinite(expected):
                assert item[key] == pytest.approx(expected, abs=bound)
            else:
                assert item[key] in (None, -np.inf)


@pytest.mark.parametrize("mode", ["raw", "processed"])
def test_raw_is_log_softmax_and_processed_is_temperature_then_top_k(mode):
    source = parse_synthetic(MARKOV)
    rows = [
        GenerationRow(PROMPT, SamplingParams(temperature=t, top_k=k, seed=3), sample)
        for t, k in ((0.7, 3), (1.3, 10))
        for sample in range(2)
    ]
    request = LogprobRequest(mode, 12)
    for completion in generate(source, rows, max_new_tokens=6, logprobs=request):
        params = completion.row.params
        logits = step_logits(source, completion)
        raw = [log_softmax(row) for row in logits]
        processed = [temperature_top_k(row, params.temperature, params.top_k) for row in logits]
        content = completion.logprobs["content"]
        assert [e["id"] for e in content] == [s["token"] for s in completion.steps]
        check_entries(content, raw, "raw_logprob")
        bounds = [float32_bound(row / params.temperature) for row in logits]
        check_entries(content, processed, "processed_logprob", bounds)
        first, second = (raw, processed) if mode == "raw" else (processed, raw)
        for entry, ranked, other in zip(content, first, second, strict=True):
            assert entry["logprob"] == entry[f"{mode}_logprob"]
            assert np.isfinite(entry["processed_logprob"])  # it was drawn: the chain kept it
            # the 12 best under the mode; with top_k < 12 the cut ones follow by raw
            expected = np.lexsort((np.arange(ranked.size), -other, -ranked))[:12]
            assert [t["id"] for t in entry["top_logprobs"]] == expected.tolist()


def test_json_is_strict_and_cut_tokens_are_null():
    result = invoke(
        "generate", "--model", MARKOV, "--prompt", PROMPT, "-t", "0.8", "--top-k", "2",
        "--seed", "4", "--max-new-tokens", "5", "--json", "--no-log",
        "--logprobs", "processed", "--top-logprobs", "6",
    )
    assert result.exit_code == 0, result.output
    document = strict(result.stdout)
    content = document["logprobs"]["content"]
    assert document["logprobs"]["mode"] == "processed" and len(content) == len(document["steps"])
    for entry in content:
        kept = [t for t in entry["top_logprobs"] if t["processed_logprob"] is not None]
        cut = [t for t in entry["top_logprobs"] if t["processed_logprob"] is None]
        assert len(kept) == 2 and len(cut) == 4  # top-k 2 of 6 shown
        assert all(t["raw_logprob"] is not None and t["logprob"] is None for t in cut)
        assert entry["processed_logprob"] is not None
        assert bytes(entry["bytes"]).decode() == entry["token"]


def test_greedy_is_one_hot_and_without_the_flag_nothing_is_computed():
    source = parse_synthetic(MARKOV)
    row = GenerationRow(PROMPT, SamplingParams(temperature=0))
    (greedy,) = generate(source, [row], max_new_tokens=3, logprobs=LogprobRequest("processed"))
    for entry in greedy.logprobs["content"]:
        assert entry["processed_logprob"] == 0.0
        assert [t["processed_logprob"] for t in entry["top_logprobs"][1:]] == [-np.inf] * 4
    (plain,) = generate(source, [row], max_new_tokens=3)
    assert plain.logprobs is None and "logprobs" not in plain.to_dict()
    assert plain.token_ids == greedy.token_ids


def test_xtc_reports_the_law_of_the_draw():
    source = parse_synthetic(MARKOV)
    params = SamplingParams(
        temperature=1.0, xtc_probability=0.5, xtc_threshold=0.05, seed=2, order="llama.cpp"
    )
    (completion,) = generate(
        source, [GenerationRow(PROMPT, params)], max_new_tokens=4,
        logprobs=LogprobRequest("processed", 20),
    )
    history, moved = list(completion.prompt_ids), 0.0
    logits_rows = step_logits(source, completion)
    for entry, logits in zip(completion.logprobs["content"], logits_rows, strict=True):
        law = distribution(logits.astype(np.float32), params, history=[history])
        moved = max(moved, float(np.abs(law - np.exp(log_softmax(logits))).max()))
        # the engine's float32 law against the float64 log-law: ≤ 2 (V + 2 + 2 max|x|) u32
        # relative (x - max, exp, the division, a V-term sum), in each of XTC's two laws
        bound = 2 * (len(logits) + 2 + 2 * float(np.abs(logits).max())) * 2.0**-24
        for item in [entry, *entry["top_logprobs"]]:
            assert np.exp(item["processed_logprob"]) == pytest.approx(law[item["id"]], rel=bound)
        history.append(entry["id"])
    assert moved > 0.01  # XTC did change the law: the mixture is what is tested


def test_export_writes_what_generate_printed(tmp_path):
    db = tmp_path / "r.db"
    result = invoke(
        "generate", "--model", MARKOV, "--prompt", PROMPT, "-t", "0.9", "--top-k", "3",
        "--max-new-tokens", "4", "--json", "--db", db, "--logprobs", "raw", "--top-logprobs", "5",
    )
    assert result.exit_code == 0, result.output
    printed = strict(result.stdout)
    exported = invoke("export", printed["run_id"], "--db", db)
    assert exported.exit_code == 0, exported.output
    (line,) = [strict(text) for text in exported.stdout.splitlines()]
    assert line["logprobs"] == printed["logprobs"] and "logprobs" not in line["extra"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--logprobs", "foo"], ["'foo'", "'raw', 'processed'"]),
        (["--logprobs", "raw", "--top-logprobs", "-1"], ["-1", "0<=x<=20"]),
        (["--logprobs", "raw", "--top-logprobs", "21"], ["21", "0<=x<=20"]),
        (["--top-logprobs", "3"], ["--top-logprobs 3", "--logprobs raw or processed"]),
    ],
)
def test_bad_values_are_one_error_line_and_exit_2(args, fragments):
    result = invoke("generate", "--model", MARKOV, "--prompt", PROMPT, "--no-log", *args)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and all(f in line for f in fragments), line


def test_top_tokens_equals_a_full_sort_with_ties():
    generator = np.random.default_rng(0)
    for _ in range(200):
        size = int(generator.integers(1, 40))
        primary = generator.integers(-3, 2, size).astype(float)
        primary[generator.random(size) < 0.3] = -np.inf
        secondary = generator.integers(-2, 2, size).astype(float)
        count = int(generator.integers(0, size + 2))
        full = np.lexsort((np.arange(size), -secondary, -primary))[:count]
        assert top_tokens(primary, secondary, count).tolist() == full.tolist()


def test_penalties_see_the_step_own_history():
    source = parse_synthetic(MARKOV)
    params = SamplingParams(temperature=1.0, repetition_penalty=1.5, penalty_last_n=64, seed=6)
    (completion,) = generate(
        source, [GenerationRow(PROMPT, params)], max_new_tokens=5,
        logprobs=LogprobRequest("processed", 20),
    )
    history = list(completion.prompt_ids)
    logits_rows = step_logits(source, completion)
    for entry, logits in zip(completion.logprobs["content"], logits_rows, strict=True):
        # the penalty transcribed: seen tokens' logits divided (positive) or multiplied by 1.5
        seen = np.zeros(logits.size, dtype=bool)
        seen[history] = True
        penalised = np.where(seen, np.where(logits > 0, logits / 1.5, logits * 1.5), logits)
        expected = log_softmax(penalised)
        bound = float32_bound(penalised)
        for item in [entry, *entry["top_logprobs"]]:
            assert item["processed_logprob"] == pytest.approx(expected[item["id"]], abs=bound)
        history.append(entry["id"])


def test_the_default_path_computes_no_logprobs(monkeypatch):
    import sampler.generation.loop as loop

    def refuse(*_args, **_kwargs):
        raise AssertionError("log-probabilities computed without being asked for")

    monkeypatch.setattr(loop, "record_step", refuse)
    source = parse_synthetic(MARKOV)
    rows = [GenerationRow(PROMPT, SamplingParams(temperature=0.8, seed=1))]
    (completion,) = generate(source, rows, max_new_tokens=4)
    assert completion.logprobs is None and completion.steps
