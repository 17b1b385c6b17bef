"""Generation over a Hugging Face model: parity with `generate`, batch independence, errors.

Uses a tiny random Llama built in the test (no download). The same checks on SmolLM2 live in
test_generation_smollm2.py, which needs the cached default model.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import hf_greedy  # noqa: E402

from sampler import SamplingParams  # noqa: E402
from sampler.errors import InvalidInputError  # noqa: E402
from sampler.generation.generation_row import GenerationRow  # noqa: E402
from sampler.generation.loop import generate  # noqa: E402
from sampler.sources import load_source  # noqa: E402

PROMPTS = ["w5 w9 w3", "w17", "w40 w41 w42 w43 w44 w45 w46", "w8 w8 w8 w8"]


@pytest.mark.parametrize("prompts", [PROMPTS[:1], PROMPTS[1:2], PROMPTS])
def test_greedy_matches_generate_token_for_token(tiny_model_dir, prompts):
    source = load_source(str(tiny_model_dir))
    rows = [GenerationRow(p, SamplingParams(temperature=0)) for p in prompts]
    ours = generate(source, rows, max_new_tokens=16, chat=False)
    theirs = hf_greedy(source, [c.prompt_ids for c in ours], 16)
    assert [c.token_ids for c in ours] == theirs
    assert any(len(t) > 3 for t in theirs)


def test_rows_in_a_batch_see_the_distribution_they_would_see_alone(tiny_model_dir):
    source = load_source(str(tiny_model_dir))
    rows = [
        GenerationRow(prompt, SamplingParams(temperature=tau, seed=11), sample)
        for prompt, tau, sample in [
            (PROMPTS[0], 0.5, 0),
            (PROMPTS[2], 1.0, 0),
            (PROMPTS[0], 1.5, 1),
            (PROMPTS[3], 0.0, 0),
        ]
    ]
    together = generate(source, rows, max_new_tokens=12, chat=False)
    for row, batched in zip(rows, together, strict=True):
        (alone,) = generate(source, [row], max_new_tokens=12, chat=False)
        assert batched.token_ids == alone.token_ids
        for mine, theirs in zip(batched.steps, alone.steps, strict=True):
            for key in ("entropy_base", "entropy_temp", "entropy_final", "surprisal"):
                assert mine[key] == pytest.approx(theirs[key], abs=1e-4)


def test_step_statistics_are_recorded_and_temperature_moves_entropy(tiny_model_dir):
    source = load_source(str(tiny_model_dir))
    rows = [
        GenerationRow(PROMPTS[0], SamplingParams(temperature=tau, seed=3))
        for tau in (0.3, 1.0, 3.0)
    ]
    done = generate(source, rows, max_new_tokens=8, chat=False)
    first = [c.steps[0] for c in done]
    assert first[0]["entropy_base"] == pytest.approx(first[2]["entropy_base"], abs=1e-5)
    assert first[0]["entropy_temp"] < first[1]["entropy_temp"] < first[2]["entropy_temp"]
    assert all(len(c.steps) == len(c.token_ids) + (c.finish_reason == "eos") for c in done)


def test_stop_strings_and_eos_end_rows(tiny_model_dir):
    source = load_source(str(tiny_model_dir))
    (greedy,) = generate(
        source,
        [GenerationRow(PROMPTS[2], SamplingParams(temperature=0))],
        max_new_tokens=10,
        chat=False,
    )
    stop_word = greedy.text.split()[2]
    (stopped,) = generate(
        source,
        [GenerationRow(PROMPTS[2], SamplingParams(temperature=0))],
        max_new_tokens=10,
        chat=False,
        stop=[stop_word],
    )
    assert stopped.finish_reason == "stop"
    assert stop_word not in stopped.text and greedy.text.startswith(stopped.text)


def test_streaming_callback_sees_the_whole_text(tiny_model_dir):
    source = load_source(str(tiny_model_dir))
    pieces: list[str] = []
    (done,) = generate(
        source,
        [GenerationRow(PROMPTS[1], SamplingParams(seed=1))],
        max_new_tokens=8,
        chat=False,
        on_text=lambda _i, text: pieces.append(text),
    )
    assert "".join(pieces) == done.text


def test_chat_template_is_used_by_default(tiny_model_dir):
    source = load_source(str(tiny_model_dir))
    assert source.is_chat
    (chat,) = generate(source, [GenerationRow("w5", SamplingParams(temperature=0))], 1)
    (raw,) = generate(source, [GenerationRow("w5", SamplingParams(temperature=0))], 1, chat=False)
    assert len(chat.prompt_ids) > len(raw.prompt_ids)


@pytest.mark.parametrize(
    ("prompt", "chat", "max_new", "message"),
    [
        ("w1 " * 130, False, 4, "exceeds the model's context of 128 tokens"),
        ("w1 " * 120, False, 20, "exceeds the model's context"),
        ("   ", True, 4, "the prompt is empty"),
        ("", False, 4, "the prompt is empty"),
        ("w1", False, 0, "max_new_tokens=0 is invalid"),
    ],
)
def test_bad_generation_input(tiny_model_dir, prompt, chat, max_new, message):
    source = load_source(str(tiny_model_dir))
    with pytest.raises(InvalidInputError, match=message):
        generate(source, [GenerationRow(prompt, SamplingParams())], max_new, chat=chat)


def test_outputs_are_numpy_float32(tiny_model_dir):
    source = load_source(str(tiny_model_dir))
    logits, session = source.start([[3, 4, 5], [6]])
    assert logits.dtype == np.float32 and logits.shape == (2, source.vocab_size)
    assert session.advance(np.array([7, 8])).shape == (2, source.vocab_size)


def test_a_small_cache_budget_splits_the_batch_without_changing_tokens(tiny_model_dir):
    from sampler.generation.loop import batch_rows

    source = load_source(str(tiny_model_dir))
    rows = [GenerationRow(p, SamplingParams(temperature=1.0, seed=4), s)
            for p in PROMPTS for s in range(2)]
    budget = source.cache_bytes_per_token * 3 * (7 + 10) / 2**20  # room for three rows
    assert batch_rows(source, [[0] * 7] * len(rows), 10, budget) == 3
    finished: list[int] = []
    split = generate(source, rows, 10, chat=False, cache_budget_mb=budget,
                     on_finish=lambda index, _c: finished.append(index))
    whole = generate(source, rows, 10, chat=False, cache_budget_mb=None)
    assert [c.token_ids for c in split] == [c.token_ids for c in whole]
    assert sorted(finished) == list(range(len(rows)))
