"""`sampler.interop.hf_processor.logits_processor`: our chain inside transformers' `generate()`."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sampler import InvalidInputError, SamplingParams, distribution  # noqa: E402
from sampler.interop.hf_processor import SamplerLogitsProcessor, logits_processor  # noqa: E402

VOCAB = 128


def _batch(seed: int = 0, rows: int = 4, vocab: int = 300, length: int = 12):
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.normal(0, 3, (rows, vocab)).astype(np.float32))
    scores[1, ::4] = -float("inf")  # already masked tokens stay masked
    scores[2, [5, 17, 40]] = 20.0  # tied maxima: greedy must pick token 5
    input_ids = torch.from_numpy(rng.integers(0, vocab, (rows, length)))
    input_ids[:, :4] = torch.topk(scores, 4).indices  # the penalties hit the head of each row
    return input_ids, scores


PARAMS = {
    "default": SamplingParams(),
    "temperature": SamplingParams(temperature=0.6),
    "top_k": SamplingParams(top_k=7),
    "top_p": SamplingParams(temperature=1.3, top_p=0.8),
    "min_p": SamplingParams(min_p=0.05),
    "repetition_penalty": SamplingParams(repetition_penalty=1.4, top_k=20),
    "frequency_presence": SamplingParams(frequency_penalty=0.5, presence_penalty=0.3),
    "llama.cpp_order": SamplingParams(temperature=0.8, top_p=0.9, order="llama.cpp"),
    "greedy": SamplingParams(temperature=0),
    "hardmax": SamplingParams(mode="hardmax"),
    "per_row": [
        SamplingParams(top_k=3),
        SamplingParams(temperature=0.5, min_p=0.1, order="vllm"),
        SamplingParams(mode="greedy", repetition_penalty=1.2),
        SamplingParams(top_p=0.5, repetition_penalty=1.5),
    ],
}


# Each preset's stage order as docs/engine.md's "Chain order and the peers" table gives it (only the
# stages these cases use), written here so the oracle does not read our stage table.
REFERENCE_ORDERS = {
    "hf": ("penalties", "temperature", "top_k", "top_p", "min_p"),
    "llama.cpp": ("penalties", "top_k", "top_p", "min_p", "temperature"),
    "vllm": ("penalties", "temperature", "min_p", "top_k", "top_p"),
}
# SamplingParams stores its order as the full stage tuple: find which preset a case chose.
PRESET_NAMES = {SamplingParams(order=name).order: name for name in REFERENCE_ORDERS}


def transformers_scores(params: SamplingParams, input_ids, scores):
    """One row's scores through transformers' own processors, in the preset's order.

    transformers has no frequency/presence penalty, no hardmax and no greedy warper; those are
    closed forms here: ``x - count·f - (count > 0)·p`` (OpenAI's definition, after the
    repetition penalty), uniform over the tied maxima, and a one-hot on ``torch.argmax`` (the
    first maximum, as ``generate(do_sample=False)`` picks).
    """
    stages = {
        "temperature": (
            [transformers.TemperatureLogitsWarper(params.temperature)]
            if params.temperature not in (0.0, 1.0) and params.mode == "sample"
            else []
        ),
        "top_k": [transformers.TopKLogitsWarper(params.top_k)] if params.top_k > 0 else [],
        "top_p": [transformers.TopPLogitsWarper(params.top_p)] if params.top_p < 1 else [],
        "min_p": [transformers.MinPLogitsWarper(params.min_p)] if params.min_p > 0 else [],
        "penalties": [],
    }
    if params.repetition_penalty != 1:
        stages["penalties"].append(
            transformers.RepetitionPenaltyLogitsProcessor(params.repetition_penalty)
        )
    if params.frequency_penalty or params.presence_penalty:

        def frequency_presence(ids, x):
            counts = torch.bincount(ids[0], minlength=x.shape[1])[None, :].to(x.dtype)
            return x - counts * params.frequency_penalty - (counts > 0) * params.presence_penalty

        stages["penalties"].append(frequency_presence)
    order = REFERENCE_ORDERS[PRESET_NAMES[params.order]]
    processors = transformers.LogitsProcessorList([p for name in order for p in stages[name]])
    x = processors(input_ids, scores.clone())
    if params.mode == "hardmax":
        return torch.where(x == x.max(), 0.0, -torch.inf)
    if params.mode == "greedy" or params.temperature == 0:
        return torch.where(torch.arange(x.shape[1]) == x.argmax(), 0.0, -torch.inf)[None, :]
    return x


@pytest.mark.parametrize("name", PARAMS)
def test_softmax_of_output_is_transformers_warpers_softmax(name):
    input_ids, scores = _batch()
    before = scores.clone()
    out = logits_processor(PARAMS[name])(input_ids, scores)
    assert torch.equal(scores, before), "scores was modified in place"
    assert out.data_ptr() != scores.data_ptr()
    assert out.dtype == scores.dtype and out.device == scores.device and out.shape == scores.shape
    per_row = PARAMS[name] if isinstance(PARAMS[name], list) else [PARAMS[name]] * len(scores)
    theirs = torch.cat(
        [
            transformers_scores(params, input_ids[row : row + 1], scores[row : row + 1])
            for row, params in enumerate(per_row)
        ]
    )
    got = torch.softmax(out, dim=-1).numpy()
    # both float32 softmaxes of the same float32 scores: the hf parity tolerance
    # (test_parity_hf.py: 1e-6)
    np.testing.assert_allclose(got, torch.softmax(theirs, dim=-1).numpy(), rtol=0, atol=1e-6)
    # Exactly the tokens transformers keeps are finite; the rest are -inf.
    np.testing.assert_array_equal(torch.isfinite(out).numpy(), torch.isfinite(theirs).numpy())
    # And the output is what a draw uses: softmax(out) is our distribution().
    ours = distribution(scores.numpy(), PARAMS[name], history=list(input_ids.numpy()))
    np.testing.assert_allclose(got, ours, rtol=0, atol=1e-6)


def test_transformers_reference_splits_hardmax_and_greedy_on_the_tied_row():
    """Row 2 has three tied maxima (tokens 5, 17, 40): the oracle's closed forms, by hand."""
    input_ids, scores = _batch()
    hardmax = torch.softmax(transformers_scores(PARAMS["hardmax"], input_ids, scores[2:3]), -1)
    # a float32 softmax of three equal logits: 1/3 to float32's rounding (a few 6e-8)
    assert hardmax[0, [5, 17, 40]].tolist() == [pytest.approx(1 / 3, rel=4 * 2.0**-24)] * 3
    greedy = torch.softmax(transformers_scores(PARAMS["greedy"], input_ids, scores[2:3]), -1)
    assert greedy[0, 5] == 1.0 and greedy.sum() == 1.0


def test_penalties_use_input_ids():
    input_ids, scores = _batch()
    params = SamplingParams(repetition_penalty=2.0)
    with_history = torch.softmax(logits_processor(params)(input_ids, scores), dim=-1)
    no_repeat = torch.full_like(input_ids, 299)  # a token outside every row's head
    plain = torch.softmax(logits_processor(params)(no_repeat, scores), dim=-1)
    top = torch.topk(scores, 1).indices[:, 0]
    rows = torch.arange(len(top))
    assert (with_history[rows, top] < plain[rows, top]).all()


def test_greedy_is_one_hot_on_first_maximum():
    input_ids, scores = _batch()
    out = logits_processor(SamplingParams(mode="greedy"))(input_ids, scores)
    probs = torch.softmax(out, dim=-1)
    assert torch.equal(probs.argmax(dim=-1), scores.argmax(dim=-1))
    assert probs[2, 5] == 1.0 and probs[2, 17] == 0.0 and probs[2, 40] == 0.0
    assert torch.equal((probs > 0).sum(dim=-1), torch.ones(4, dtype=torch.long))


def test_half_precision_keeps_dtype():
    input_ids, scores = _batch()
    half = scores.to(torch.bfloat16)
    out = logits_processor(SamplingParams(top_k=5))(input_ids, half)
    assert out.dtype == torch.bfloat16
    assert torch.equal(torch.isfinite(out).sum(dim=-1), torch.full((4,), 5))


def test_params_list_length_must_match_batch():
    input_ids, scores = _batch()
    processor = logits_processor([SamplingParams(), SamplingParams()])
    with pytest.raises(InvalidInputError, match="2 SamplingParams for a batch of 4 rows") as err:
        processor(input_ids, scores)
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidInputError, match="is not a SamplingParams"):
        SamplerLogitsProcessor([SamplingParams(), {"top_k": 3}])


@pytest.mark.parametrize(
    "stateful",
    [
        {"mirostat": 2},
        {"xtc_probability": 0.5, "order": "llama.cpp"},
        {"adaptive_target": 0.3, "order": "llama.cpp"},
    ],
    ids=["mirostat", "xtc", "adaptive_p"],
)
def test_stateful_stages_are_refused(stateful):
    """A logits processor keeps no state between calls: adaptive-p's running average (like
    mirostat's mu) would restart at every step, so the processor refuses, in one line."""
    input_ids, scores = _batch()
    with pytest.raises(InvalidInputError, match=r"use sampler\.Sampler") as err:
        logits_processor(SamplingParams(**stateful))(input_ids, scores)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=None,  # no early stop: every row generates all its tokens
        pad_token_id=0,
        initializer_range=0.5,  # spread-out logits, so the top 3 are well separated
    )
    return transformers.LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def prompt():
    return torch.randint(3, VOCAB, (3, 5), generator=torch.Generator().manual_seed(1))


def _generate(model, prompt, params, **kwargs):
    processors = transformers.LogitsProcessorList([logits_processor(params)])
    return model.generate(
        prompt,
        do_sample=True,
        logits_processor=processors,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=8,
        **kwargs,
    )


def test_generate_samples_only_from_kept_tokens(model, prompt):
    torch.manual_seed(123)
    out = _generate(
        model,
        prompt,
        SamplingParams(top_k=3),
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    sequences, steps = out.sequences, len(out.scores)
    assert sequences.shape == (3, prompt.shape[1] + 8) and steps == 8
    off_argmax = 0
    with torch.no_grad():
        for step in range(steps):
            context = sequences[:, : prompt.shape[1] + step]
            logits = model(context).logits[:, -1]  # recomputed without the cache
            torch.testing.assert_close(logits, out.logits[step], rtol=1e-4, atol=1e-4)
            token = sequences[:, prompt.shape[1] + step]
            top3 = torch.topk(logits, 3).indices
            assert (top3 == token[:, None]).any(dim=1).all(), f"step {step}: {token} not in top 3"
            assert torch.equal(torch.isfinite(out.scores[step]).sum(dim=1), torch.full((3,), 3))
            off_argmax += int((token != logits.argmax(dim=-1)).sum())
    assert off_argmax > 0, "top_k=3 sampling never left the argmax: is it really sampling?"


@pytest.mark.parametrize("penalty", [1.0, 1.5])
def test_greedy_params_reproduce_hf_greedy(model, prompt, penalty):
    reference = model.generate(
        prompt, do_sample=False, max_new_tokens=8, repetition_penalty=penalty
    )
    torch.manual_seed(7)  # irrelevant: the processor leaves one token per row
    ours = _generate(model, prompt, SamplingParams(temperature=0, repetition_penalty=penalty))
    assert torch.equal(ours, reference)
