"""`sampler chain --prompt P [--model M] [--written TEXT]`: the chain on a model's next-token
row. The oracles: transformers' own forward pass (the row), the presence penalty's closed form
over the prompt and written tokens (the history), the source's own logits with Python's `re`
and scipy's logsumexp (the grammar's mask and its five numbers), and hand-made traces (which
tokens are shown)."""

import json
import re

import numpy as np
import pytest
import scipy.special
from test_bad_input import run_cli

from sampler.analysis.model_step import before_after, shown_tokens
from sampler.engine.trace import StageTrace

PROMPT, WRITTEN = "w3 w4 w5", "w6 w7 w8 w9"


def _chain_json(*args: str) -> dict:
    result = run_cli("chain", *args, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def test_the_row_is_the_model_s_own_after_the_prompt_and_the_written_text(tiny_model_dir):
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, LlamaForCausalLM

    out = _chain_json(
        "--model", str(tiny_model_dir), "--prompt", PROMPT, "--written", WRITTEN, "--raw",
        "--top", "128",
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer(PROMPT)["input_ids"] + tokenizer(WRITTEN, add_special_tokens=False)["input_ids"]
    assert out["prompt_tokens"] + len(out["written_ids"]) == len(ids) == 7
    with torch.no_grad():  # the peer itself: one forward pass, no cache, no padding
        theirs = LlamaForCausalLM.from_pretrained(tiny_model_dir)(torch.tensor([ids])).logits
    expected = theirs[0, -1].double().numpy()
    shown = [item["id"] for item in out["tokens"]]
    (trace,) = [chain["trace"] for chain in out["chains"].values()]
    assert trace[0]["stage"] == "input"
    # float32 weights on both sides; the sampler's session runs the same model through its KV
    # cache and attention mask, which may round differently (the 1e-4 of test_hf_interop)
    np.testing.assert_allclose(trace[0]["logits"], expected[shown], rtol=1e-4, atol=1e-4)
    # every token shown, in the model's order (up to the same 1e-4 between near-ties)
    assert sorted(shown) == list(range(128))
    assert (np.diff(expected[shown]) <= 2e-4).all()


def test_the_penalties_see_the_prompt_then_the_written_tokens(tiny_model_dir):
    out = _chain_json(
        "--model", str(tiny_model_dir), "--prompt", PROMPT, "--written", WRITTEN, "--raw",
        "--top", "128", "--presence-penalty", "1.5",
    )
    steps = {step["stage"]: step for step in next(iter(out["chains"].values()))["trace"]}
    shift = np.subtract(steps["penalties"]["logits"], steps["input"]["logits"])
    ids = [item["id"] for item in out["tokens"]]
    # the word-level vocabulary: w<i> is token i + 3 (build_tiny_llama)
    seen = {int(word[1:]) + 3 for word in (PROMPT + " " + WRITTEN).split()}
    # OpenAI's presence penalty: 1.5 off each token seen once or more (float32 arithmetic)
    np.testing.assert_allclose(shift, [-1.5 if t in seen else 0.0 for t in ids], atol=1e-5)


@pytest.mark.parametrize("written", ["2024", "2024-1"])
def test_the_grammar_s_numbers_are_the_mask_s_over_the_model_s_row(gguf, written):
    """A regex grammar's mask, rebuilt with Python's `re` over the model's token texts, and
    its telemetry from scipy over the source's own row after the prompt and written text."""
    pytest.importorskip("llguidance")
    prompt = "When did the Berlin wall fall? Answer as YYYY-MM."
    out = _chain_json(
        "--prompt", prompt, "--written", written, "--regex", "[0-9]{4}-[0-9]{2}", "--top", "10"
    )
    ids = gguf.encode(prompt, chat=True) + gguf.text.tokenize(written, add_special=False)
    assert out["prompt_tokens"] + len(out["written_ids"]) == len(ids)
    logits, _ = gguf.start([ids])
    row = np.asarray(logits[0], dtype=np.float64)
    # what may follow the written text: the rest of "-" two digits, any non-empty prefix of it
    rest = re.compile(r"-[0-9]{0,2}" if written == "2024" else r"[0-9]")
    labels = [gguf.token_label(t) for t in range(gguf.vocab_size)]
    mask = np.array([bool(label) and rest.fullmatch(label) is not None for label in labels])
    log_total = scipy.special.logsumexp(row)
    log_allowed = scipy.special.logsumexp(row[mask])
    steps = {step["stage"]: step for step in next(iter(out["chains"].values()))["trace"]}
    notes = steps["grammar"]["notes"]
    assert notes["grammar_allowed"] == mask.sum()
    # float64 on both sides, summed in different orders: ~1e-15 relative, 1e-9 is ample
    assert notes["grammar_kl"] == pytest.approx(log_total - log_allowed, rel=1e-9, abs=1e-12)
    assert notes["grammar_removed_mass"] == pytest.approx(
        -np.expm1(log_allowed - log_total), rel=1e-9, abs=1e-12
    )
    assert notes["grammar_top1_illegal"] == float(not mask[int(np.argmax(row))])
    assert notes["grammar_forced"] == float(mask.sum() == 1)
    # the shown tokens' logits are the source's own row; the mask drops exactly the illegal
    shown = [item["id"] for item in out["tokens"]]
    np.testing.assert_allclose(steps["input"]["logits"], row[shown], rtol=0, atol=1e-6)
    assert [value is not None for value in steps["grammar"]["logits"]] == list(mask[shown])


def _trace(stage: str, probs: list[float]) -> StageTrace:
    logits = [None if p == 0 else float(np.log(p)) for p in probs]
    kept = sum(p > 0 for p in probs)
    return StageTrace(stage, logits, probs, 0.0, kept, 1.0)


def test_the_shown_tokens_are_the_model_s_top_then_where_the_mask_moved_the_mass():
    model = _trace("input", [0.05, 0.4, 0.3, 0.15, 0.06, 0.04])
    masked = _trace("grammar", [0.0, 0.0, 0.0, 0.0, 0.4, 0.6])
    steps = [model, masked, _trace("final", [0.0, 0.0, 0.0, 0.0, 0.4, 0.6])]
    assert before_after(steps) == (model, masked)
    # the model's top 3 (1, 2, 3), then the after-law's top ceil(3 / 4) = 1 (token 5), all in
    # the model's order
    assert shown_tokens(steps, 3) == [1, 2, 3, 5]
    # top 5: the model's 1, 2, 3, 4, 0 and the after-law's top 2 (5, 4): 5 joins
    assert shown_tokens(steps, 5) == [1, 2, 3, 4, 0, 5]
    # no grammar: the model's own law against the final one
    cut = [0.0, 0.5, 0.5, 0.0, 0.0, 0.0]
    plain = [model, _trace("top_k", cut), _trace("final", cut)]
    assert before_after(plain) == (plain[0], plain[2])
