"""The constraint stage on its own: its mask, its telemetry against scipy, the matcher's walk
(forced steps, the grammar's end), the sampler's state, and the one-line errors of a bad
grammar.

The telemetry's oracle is an independent computation: KL(constrained || received) by its
definition Σ q log(q / p) with scipy's logsumexp, not the stage's ``-log(allowed mass)``.
"""

import subprocess
import sys

import numpy as np
import pytest
from scipy.special import logsumexp

from sampler import Sampler, SamplingParams, distribution
from sampler.engine.constraints.compile import compiled, grammar_syntax_of
from sampler.engine.state import matcher_array
from sampler.errors import InvalidInputError

pytest.importorskip("llguidance")


class MaskOf:
    """A matcher that allows a fixed set of tokens and records what it is given."""

    def __init__(self, allowed, size):
        self.mask = np.zeros(size, dtype=bool)
        self.mask[list(allowed)] = True
        self.taken = []

    def allowed(self):
        return self.mask

    def advance(self, token):
        self.taken.append(token)

    def copy(self):
        twin = MaskOf([], len(self.mask))
        twin.mask, twin.taken = self.mask.copy(), list(self.taken)
        return twin


GRAMMAR = 'root ::= "a"'  # any valid grammar switches the stage on; MaskOf decides the mask


def _state(*matchers):
    return {"grammar_matcher": matcher_array(list(matchers))}


def test_the_mask_keeps_the_allowed_tokens_renormalised_and_reports_what_it_removed():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, 500)
    allowed = [3, 17, 250, 499]
    params = SamplingParams(grammar=GRAMMAR, order="vllm", seed=0)
    probs = distribution(logits, params, state=_state(MaskOf(allowed, 500)))
    p = np.exp(logits - logsumexp(logits))
    q = np.zeros(500)
    q[allowed] = p[allowed] / p[allowed].sum()
    np.testing.assert_allclose(probs, q, rtol=1e-6, atol=1e-12)
    _, stats = Sampler([params], state=_state(MaskOf(allowed, 500))).step(logits[None])
    row = stats.row(0)
    kl = sum(q[t] * (np.log(q[t]) - np.log(p[t])) for t in allowed)
    assert row["grammar_kl"] == pytest.approx(kl, rel=1e-9)
    assert row["grammar_removed_mass"] == pytest.approx(1 - p[allowed].sum(), rel=1e-9)
    assert row["grammar_allowed"] == 4
    assert row["grammar_top1_illegal"] == float(int(np.argmax(logits)) not in allowed)
    assert row["grammar_forced"] == 0


def test_kl_stays_exact_when_the_allowed_mass_underflows_float64():
    logits = np.array([0.0, -800.0, -801.0])  # allowed mass ~ e^-800: 0 in float64
    params = SamplingParams(grammar=GRAMMAR, order="vllm", seed=0)
    _, stats = Sampler([params], state=_state(MaskOf([1, 2], 3))).step(logits[None])
    expected = logsumexp(logits) - logsumexp(logits[1:])
    assert stats.row(0)["grammar_kl"] == pytest.approx(expected, rel=1e-12)
    assert stats.row(0)["grammar_top1_illegal"] == 1.0


def test_a_forced_step_draws_its_one_token_and_says_so():
    logits = np.array([[5.0, 1.0, 0.0, -1.0]])
    params = SamplingParams(grammar=GRAMMAR, temperature=1.5, order="llama.cpp", seed=1)
    matcher = MaskOf([2], 4)
    sampler = Sampler([params], state=_state(matcher))
    tokens, stats = sampler.step(logits)
    assert tokens.tolist() == [2] and stats.row(0)["grammar_forced"] == 1.0
    assert matcher.taken == [2]  # the sampler hands the drawn token to the row's matcher
    assert sampler.state["grammar_matcher"][0] is not matcher  # the state is a copy


def test_the_place_in_the_chain_matters_and_follows_the_order():
    # top-k = 1 before the mask leaves nothing when the top token is illegal: named error;
    # the mask first (vLLM, llama.cpp's presets) keeps the best legal token
    logits = np.array([3.0, 2.0, 1.0])
    first = SamplingParams(grammar=GRAMMAR, top_k=1, order="vllm")
    probs = distribution(logits, first, state=_state(MaskOf([1, 2], 3)))
    np.testing.assert_allclose(probs, [0, 1, 0])
    last = SamplingParams(grammar=GRAMMAR, top_k=1, order=["top_k", "temperature", "grammar"])
    with pytest.raises(InvalidInputError, match="grammar stage left row 0 no token"):
        distribution(logits, last, state=_state(MaskOf([1, 2], 3)))


def test_a_grammar_on_bare_logits_is_a_one_line_error():
    with pytest.raises(InvalidInputError, match="needs the model's vocabulary"):
        distribution([1.0, 2.0], SamplingParams(grammar=GRAMMAR))


def test_the_presets_place_the_mask_where_their_peer_does():
    from sampler.engine.presets import PRESETS

    assert PRESETS["vllm"][0] == "grammar" and PRESETS["llama.cpp"][0] == "grammar"
    hf = PRESETS["hf"]
    assert hf.index("penalties") < hf.index("grammar") < hf.index("temperature")
    # (llama.cpp's mirostat moves μ in both of its resampling passes: mask first, said so)
    mirostat = SamplingParams(grammar=GRAMMAR, mirostat=2, order="llama.cpp", grammar_mode="mask")
    assert mirostat.stages[0] == "grammar"


@pytest.mark.parametrize(
    ("syntax", "text", "message"),
    [
        ("gbnf", 'root ::= "a" | nope', "Rule 'nope' not found"),
        ("gbnf", 'start: "a"', "Expected ::="),  # Lark given as GBNF: strict
        ("lark", 'start: "a" | nope', "unknown name"),
        ("regex", "[0-9", "invalid regex"),
        ("json_schema", "{", "not JSON"),
        ("json_schema", '{"type": 3}', "type must be"),
        ("xml", "<a/>", "grammar_syntax='xml' is unknown"),
    ],
)
def test_a_bad_grammar_is_one_line_naming_what_is_wrong(syntax, text, message):
    with pytest.raises(InvalidInputError, match=message) as error:
        compiled(syntax, text)
    assert "\n" not in str(error.value)


def test_a_bad_grammar_fails_when_the_params_are_made():
    with pytest.raises(InvalidInputError, match="the gbnf grammar is invalid"):
        SamplingParams(grammar="root ::= \"a\" | nope")


@pytest.mark.parametrize(
    ("path", "text", "syntax"),
    [
        ("a.gbnf", 'start: "x"', "gbnf"),  # the extension decides
        ("a.lark", 'root ::= "x"', "lark"),
        ("a.txt", 'root ::= "x"', "gbnf"),  # else a ::= rule means GBNF
        ("grammar", 'start: "x"', "lark"),
    ],
)
def test_a_grammar_file_s_syntax_by_extension_then_content(path, text, syntax):
    assert grammar_syntax_of(path, text) == syntax


def test_the_matcher_walks_a_grammar_to_its_end_on_the_model_s_vocabulary(gguf):
    from sampler.engine.constraints.matcher import RowConstraint, constraint_vocabulary

    vocabulary = constraint_vocabulary(gguf)
    walk = RowConstraint(vocabulary, "regex", "(yes|no)")
    allowed = walk.allowed()
    labels = {gguf.token_label(int(t)) for t in np.flatnonzero(allowed)}
    assert labels == {"y", "ye", "yes", "n", "no"}
    for token in gguf.text.tokenize("ye", add_special=False):
        walk.advance(token)
    # "s" is forced: the one token that spells it (a forced step), then only the end
    assert [gguf.token_label(int(t)) for t in np.flatnonzero(walk.allowed())] == ["s"]
    walk.advance(gguf.text.tokenize("s", add_special=False)[0])
    assert set(np.flatnonzero(walk.allowed())) == set(gguf.eos_token_ids)


def test_import_sampler_does_not_import_llguidance():
    code = "import sys, sampler, sampler.cli; print('llguidance' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_state_after_written_tokens_is_the_grammar_s_point_there(gguf):
    import re

    from sampler.engine.constraints.matcher import constraint_state

    params = SamplingParams(grammar="[0-9]{4}-[0-9]{2}", grammar_syntax="regex")
    written = gguf.text.tokenize("2024", add_special=False)
    matcher = constraint_state(gguf, params, written)["grammar_matcher"][0]
    # the oracle: Python's own regex on the written text plus each allowed token's text
    pattern = re.compile(r"[0-9]{4}-[0-9]{2}")
    for token in np.flatnonzero(matcher.allowed()):
        text = "2024" + gguf.token_label(int(token))
        assert any(pattern.fullmatch(text + tail) for tail in ("", "0", "00")), text
    assert matcher.allowed()[gguf.text.tokenize("-", add_special=False)[0]]
    illegal = gguf.text.tokenize("x", add_special=False)
    with pytest.raises(InvalidInputError, match=r"at position 4 of the written tokens"):
        constraint_state(gguf, params, [*written, *illegal])
