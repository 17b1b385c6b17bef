"""Generation over a Hugging Face model: parity with `generate`, batch independence, errors.

Uses a tiny random Llama built in the test (no download). The same checks on SmolLM2 live in
test_generation_smollm2.py, which needs the cached default model.
"""

import numpy as np
import pytest
import scipy.special

torch = pytest.importorskip("torch")

from conftest import hf_greedy  # noqa: E402
from test_step_stats import U32, float32_nats  # noqa: E402

from sampler import SamplingParams  # noqa: E402
from sampler.errors import InvalidInputError  # noqa: E402
from sampler.generation.generation_row import GenerationRow  # noqa: E402
from sampler.generation.loop import generate  # noqa: E402
from sampler.sources import load_source  # noqa: E402

PROMPTS = ["w5 w9 w3", "w17", "w40 w41 w42 w43 w44 w45 w46", "w8 w8 w8 w8"]


def replayed_logits(source, prompts, token_rows, filler: int) -> list[np.ndarray]:
    """The logits ``[B, V]`` at each step of rows fed their own tokens (``filler`` once a
    row has none left, as the generation loop feeds a finished row)."""
    logits, session = source.start(prompts)
    seen = [logits]
    for step in range(max(map(len, token_rows)) - 1):
        feed = [row[step] if step < len(row) else filler for row in token_rows]
        seen.append(session.advance(np.array(feed)))
    return seen


def assert_batch_changes_statistics_only_through_logits(source, together, alone, keys):
    """Each row of a batch against itself alone: the tokens are the same, and each step's
    statistics differ by no more than the two runs' logits explain.

    A batch of another shape may sum in another order (float32 kernels), so the logits can
    differ by a gap g = max|Δx|, measured here by replaying both runs. Through softmax(x / τ)
    a log-probability moves by ≤ 2g/τ, so an entropy by ≤ 2(g/τ)(1 + max|log p|) and a
    surprisal by ≤ 2g/τ; each side's own float32 rounding adds float32_nats (entropies) or
    4u(1 + |log p|) (a surprisal).
    """
    filler = min(source.eos_token_ids) if source.eos_token_ids else 0
    tokens = [[step["token"] for step in c.steps] for c in together]
    batch = replayed_logits(source, [c.prompt_ids for c in together], tokens, filler)
    for j, (mine, theirs) in enumerate(zip(together, alone, strict=True)):
        assert mine.token_ids == theirs.token_ids
        solo = replayed_logits(source, [theirs.prompt_ids], [tokens[j]], filler)
        tau = mine.row.params.temperature
        for step, (a, b) in enumerate(zip(mine.steps, theirs.steps, strict=True)):
            x = batch[step][j].astype(np.float64)
            gap = float(np.abs(x - solo[step][0].astype(np.float64)).max())
            for key in keys:
                scale = 1.0 if key == "entropy_base" else tau
                if scale == 0:  # greedy: one-hot on the same token on both sides
                    assert a[key] == b[key] == 0.0, key
                    continue
                law = scipy.special.softmax(x / scale)
                if key == "surprisal":
                    own = 4 * U32 * (1 - np.log(law[a["token"]]))
                    bound = 2 * gap / scale + 2 * own
                else:
                    spread = float(np.abs(np.log(law[law > 0])).max())
                    bound = 2 * (gap / scale) * (1 + spread) + 2 * float32_nats(law)
                assert a[key] == pytest.approx(b[key], abs=bound), (j, step, key)


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
    alone = [generate(source, [row], max_new_tokens=12, chat=False)[0] for row in rows]
    assert_batch_changes_statistics_only_through_logits(
        source, together, alone, ("entropy_base", "entropy_temp", "entropy_final", "surprisal")
    )


def test_step_statistics_are_recorded_and_temperature_moves_entropy(tiny_model_dir):
    source = load_source(str(tiny_model_dir))
    rows = [
        GenerationRow(PROMPTS[0], SamplingParams(temperature=tau, seed=3))
        for tau in (0.3, 1.0, 3.0)
    ]
    done = generate(source, rows, max_new_tokens=8, chat=False)
    first = [c.steps[0] for c in done]
    # one prefill for the shared prompt: the same logits, so the same numbers to the bit
    assert first[0]["entropy_base"] == first[2]["entropy_base"]
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
