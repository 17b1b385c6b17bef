"""The constraint's mask against llama.cpp's own grammar sampler, and JSON-schema runs against
a JSON-schema validator.

Parity: for five GBNF grammars (tests/fixtures/grammars: JSON and arithmetic as llama.cpp's
grammars/ folder writes them, a list of choices, a date, nested lists), real generations of
SmolLM2 (llama.cpp backend) under the grammar at three temperatures are replayed token by
token through ``llama_sampler_init_grammar`` (llama-cpp-python, the same GGUF vocabulary),
and at every step the set of tokens it allows must equal the stage's. One difference is
named, not hidden: where the grammar may end, llama.cpp allows every end-of-generation token
of its vocabulary (SmolLM2: ids 0, 2 and 4, ``<reponame>``), and the stage the source's EOS
tokens (0 and 2), on which a row ends; the check asserts exactly that.

Needs llama-cpp-python, llguidance and the cached SmolLM2 (skips locally without them, as
tests/test_llamacpp_source.py does).
"""

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import import_llama_cpp_or_skip
from test_llamacpp_samplers import TOKEN_DATA

from sampler import SamplingParams
from sampler.engine.constraints.matcher import RowConstraint, constraint_vocabulary
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate

llama = import_llama_cpp_or_skip()
pytest.importorskip("llguidance")

GRAMMARS = Path(__file__).parent / "fixtures" / "grammars"
PROMPTS = {
    "json": "Describe a cat as a JSON object.",
    "choices": "Is the sea blue?",
    "arithmetic": "Write two equations.",
    "date": "When did the Berlin wall fall?",
    "nested": "Write a nested list.",
}
TEMPERATURES = (0.0, 0.8, 1.5)


def llama_grammar_allows(grammar, vocab_size: int) -> np.ndarray:
    """``[V]`` bool: the tokens llama.cpp's grammar sampler leaves finite on a flat row."""
    data = np.zeros(vocab_size, dtype=TOKEN_DATA)
    data["id"] = np.arange(vocab_size)
    candidates = llama.llama_token_data_array(
        data.ctypes.data_as(ctypes.POINTER(llama.llama_token_data)), vocab_size, -1, False
    )
    llama.llama_sampler_apply(grammar, ctypes.byref(candidates))
    return np.isfinite(data["logit"])


@pytest.fixture(scope="module")
def end_tokens(gguf):
    """llama.cpp's end-of-generation tokens of the vocabulary, and the source's EOS tokens."""
    vocab = llama.llama_model_get_vocab(gguf.model)
    eog = {t for t in range(gguf.vocab_size) if llama.llama_vocab_is_eog(vocab, t)}
    assert gguf.eos_token_ids < eog  # SmolLM2: {0, 2} within {0, 2, 4}
    return eog, set(gguf.eos_token_ids)


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_the_mask_is_llama_cpp_s_grammar_sampler_along_real_generations(gguf, end_tokens, name):
    text = (GRAMMARS / f"{name}.gbnf").read_text(encoding="utf-8")
    rows = [
        GenerationRow(PROMPTS[name], SamplingParams(temperature=t, seed=3, grammar=text))
        for t in TEMPERATURES
    ]
    completions = generate(gguf, rows, max_new_tokens=24)
    eog, eos = end_tokens
    vocab = llama.llama_model_get_vocab(gguf.model)
    vocabulary = constraint_vocabulary(gguf)
    steps = 0
    for completion in completions:
        tokens = [step["token"] for step in completion.steps]
        ours = RowConstraint(vocabulary, "gbnf", text)
        theirs = llama.llama_sampler_init_grammar(vocab, text.encode(), b"root")
        try:
            for index, token in enumerate(tokens):
                expected = llama_grammar_allows(theirs, gguf.vocab_size)
                mask = ours.allowed()
                where = (name, completion.row.params.temperature, index)
                # llama.cpp's other end tokens exactly where the grammar may end, never ours
                ends_here = bool(mask[sorted(eos)].any())
                assert all(expected[t] == ends_here for t in eog), where
                assert not mask[sorted(eog - eos)].any(), where
                expected[sorted(eog - eos)] = False
                assert np.array_equal(mask, expected), (
                    where,
                    np.flatnonzero(mask != expected)[:10].tolist(),
                )
                ours.advance(token)
                if token not in eog:
                    llama.llama_sampler_accept(theirs, token)
                steps += 1
        finally:
            llama.llama_sampler_free(theirs)
    assert steps >= 3 * len(TEMPERATURES)


def test_json_schema_runs_give_valid_json_in_every_sample_at_every_temperature(gguf):
    jsonschema = pytest.importorskip("jsonschema")
    text = (GRAMMARS / "person.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    params = [
        SamplingParams(temperature=t, seed=5, grammar=text, grammar_syntax="json_schema")
        for t in (0.0, 0.7, 1.0, 1.5)
    ]
    rows = [
        GenerationRow("Describe a person as JSON.", p, sample=s) for p in params for s in range(3)
    ]
    completions = generate(gguf, rows, max_new_tokens=96)
    for completion in completions:
        where = (completion.row.params.temperature, completion.row.sample, completion.text)
        assert completion.finish_reason == "eos", where  # the grammar ended the row
        jsonschema.validate(json.loads(completion.text), schema)
