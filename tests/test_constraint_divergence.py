"""`divergence` between a constrained and a free side: KL(constrained || free) at each forced
token is -log of the free law's mass on the tokens the grammar allows there, the grammar's
mask taken from llama.cpp's own grammar sampler (the oracle, not the stage); a text that
leaves the grammar is a one-line error."""

from pathlib import Path

import numpy as np
import pytest
from conftest import import_llama_cpp_or_skip
from scipy.special import logsumexp
from test_constraint_parity import llama_grammar_allows

from sampler import SamplingParams
from sampler.analysis.divergence import Side, divergences
from sampler.errors import InvalidInputError

llama = import_llama_cpp_or_skip()
pytest.importorskip("llguidance")

DATE = (Path(__file__).parent / "fixtures" / "grammars" / "date.gbnf").read_text(encoding="utf-8")


def test_kl_constrained_to_free_is_minus_log_the_allowed_mass(gguf):
    context = tuple(gguf.encode("When did the Berlin wall fall?", chat=True))
    targets = gguf.text.tokenize("1989-11-09", add_special=False)
    sides = [
        Side(gguf, SamplingParams(grammar=DATE, order="llama.cpp"), context, "grammar"),
        Side(gguf, SamplingParams(order="llama.cpp"), context, "free"),
    ]
    (result,) = divergences(sides, targets, [(0, 1)])
    vocab = llama.llama_model_get_vocab(gguf.model)
    grammar = llama.llama_sampler_init_grammar(vocab, DATE.encode(), b"root")
    logits, session = gguf.start([list(context)])
    try:
        for position, token in enumerate(targets):
            free = logits[0].astype(np.float64)
            allowed = llama_grammar_allows(grammar, gguf.vocab_size)
            expected = logsumexp(free) - logsumexp(free[allowed])
            assert result.kl_ab[position] == pytest.approx(expected, rel=1e-6), position
            assert np.isinf(result.kl_ba[position])  # the free law keeps what the mask drops
            llama.llama_sampler_accept(grammar, int(token))
            logits = session.advance(np.array([token]))
    finally:
        llama.llama_sampler_free(grammar)


def test_a_text_that_leaves_the_grammar_is_a_one_line_error(gguf):
    context = tuple(gguf.encode("When did the Berlin wall fall?", chat=True))
    targets = gguf.text.tokenize("1989 was the year", add_special=False)
    sides = [
        Side(gguf, SamplingParams(grammar=DATE), context, "grammar"),
        Side(gguf, SamplingParams(), context, "free"),
    ]
    # SmolLM2 writes digits one token each: " was" is token 4
    with pytest.raises(InvalidInputError, match=r"leaves side .* grammar at token 4 \(' was'\)"):
        divergences(sides, targets, [(0, 1)])
