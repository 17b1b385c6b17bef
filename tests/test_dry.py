"""DRY against llama.cpp's own sampler on SmolLM2's vocabulary, and webui's rules by hand.

The peer runs through llama-cpp-python: ``llama_sampler_init_dry`` on the GGUF file's
vocabulary (loaded with ``vocab_only``), every history token given to ``llama_sampler_accept``,
then applied to a ``llama_token_data_array``; the logits it leaves are the oracle. Our side
reads the same vocabulary through the llama.cpp source's own detokenizer.
"""

import ctypes
import json

import numpy as np
import pytest

from sampler import Sampler, SamplingParams, distribution
from sampler.engine.filters.dry import TokenTexts, dry_penalties, repeat_lengths
from sampler.errors import InvalidInputError
from sampler.sources.base import token_texts
from tests.conftest import import_llama_cpp_or_skip, resume_after_losing

U32 = 2.0**-24  # float32's unit roundoff


@pytest.fixture(scope="module")
def peer(gguf):
    """(llama_cpp, the vocabulary pointer of the cached GGUF file, our TokenTexts of it)."""
    from sampler.sources.model_cache import GGUF_NAME, cache_root, model_folder

    lib = import_llama_cpp_or_skip()
    params = lib.llama_model_default_params()
    params.vocab_only = True
    path = model_folder("smollm2-135m", cache_root()) / GGUF_NAME
    model = lib.llama_model_load_from_file(str(path).encode(), params)
    assert model, "llama.cpp cannot load the cached GGUF file"
    yield lib, lib.llama_model_get_vocab(model), token_texts(gguf)
    lib.llama_model_free(model)


def peer_dry(lib, vocab, x, history, multiplier, base, allowed, last_n, breakers):
    encoded = [b.encode() for b in breakers]
    array_c = (ctypes.c_char_p * max(1, len(encoded)))(*encoded)
    sampler = lib.llama_sampler_init_dry(
        vocab, multiplier, base, allowed, last_n, array_c, len(encoded)
    )
    for token in history:
        lib.llama_sampler_accept(sampler, int(token))
    data = (lib.llama_token_data * len(x))()
    for i, value in enumerate(x):
        data[i].id, data[i].logit, data[i].p = i, float(value), 0.0
    array = lib.llama_token_data_array(data=data, size=len(x), selected=-1, sorted=False)
    lib.llama_sampler_apply(sampler, ctypes.byref(array))
    out = np.empty(len(x), dtype=np.float32)
    for i in range(array.size):
        out[array.data[i].id] = array.data[i].logit
    lib.llama_sampler_free(sampler)
    return out


def _histories(vocab_size: int):
    rng = np.random.default_rng(26)
    newline, colon, quote = 198, 42, 18  # SmolLM2's "\n", ":" and '"'
    alphabet = rng.choice(np.arange(1000, 5000), 6, replace=False)
    cases = {
        "repeat": list(alphabet[:3]) * 4 + list(alphabet[:2]),
        "random": list(rng.choice(alphabet, 80)),
        "breaker last": list(alphabet[:4]) * 3 + [newline],
        "breaker inside": list(alphabet[:3]) + [colon] + list(alphabet[:3]) * 3,
        "quote run": [quote] + list(alphabet[:2]) * 6,
        "long period": list(rng.choice(alphabet, 60)) * 3,
        "multi-token breaker": [3757] + list(alphabet[:3]) * 3,  # "###"
    }
    return cases


@pytest.mark.parametrize(
    ("multiplier", "base", "allowed", "last_n", "breakers"),
    [
        (0.8, 1.75, 2, 1000, ["\n", ":", '"', "*"]),
        (0.8, 1.75, 2, 16, ["\n", ":", '"', "*"]),
        (1.5, 1.2, 1, 1000, ["\n"]),
        (0.5, 2.5, 0, 1000, ["\n", ":"]),
        (3.0, 3.0, 3, 1000, ["### Response", "\n"]),
        (0.8, 1.75, 4, 1000, []),
    ],
)
def test_penalised_logits_match_llama_cpp(peer, multiplier, base, allowed, last_n, breakers):
    lib, vocab, texts = peer
    size = len(texts.texts)
    x = np.random.default_rng(3).normal(0, 2, size).astype(np.float32)
    params = SamplingParams(
        dry_multiplier=multiplier, dry_base=base, dry_allowed_length=allowed,
        dry_penalty_last_n=last_n, dry_sequence_breakers=breakers, order=["dry", "temperature"]
    )
    for name, history in _histories(size).items():
        expected = peer_dry(lib, vocab, x, history, multiplier, base, allowed, last_n, breakers)
        ours = distribution(x, params, history=[history], vocabulary=texts).astype(np.float64)
        # compare logits: the log of our law is the penalised logits up to a constant
        with np.errstate(divide="ignore"):
            got = np.log(ours) - np.log(ours[np.argmax(expected)]) + float(expected.max())
        penalised = expected != x
        visible = penalised & (expected > expected.max() - 80)  # not underflowed to p = 0
        # our law is float32 weights (≤ 2u|y| relative, |y| ≤ 80 where visible) summed in
        # float64 and divided once: log p is off by ≤ 2u (80 + 2); llama.cpp's float32
        # penalty m · powf(b, k) and x - penalty round by ≤ 4u relative besides
        log_bound = 2 * U32 * (80 + 2)
        assert (np.abs(got - x)[~penalised] < log_bound).all(), name
        assert (got[penalised] < x[penalised]).all(), name
        np.testing.assert_allclose(got[visible], expected[visible], rtol=4 * U32,
                                   atol=log_bound + 4 * U32 * float(np.abs(x).max()),
                                   err_msg=name)


def test_breakers_are_found_in_the_vocabulary_by_text(peer):
    _, _, texts = peer
    restarts = texts.restart_sequences(("\n", ":", '"', "*"))
    singles = [token for token, tails in restarts.items() if () in tails]
    assert len(singles) == 401  # llama.cpp's count for SmolLM2 (measured through its sampler)
    assert {198, 42, 18, 26} <= set(singles)
    heads = texts.restart_sequences(("### Response",))
    assert (14212,) in heads[3757]  # "###" then " Response"


def test_repeat_lengths_are_the_naive_suffix_matches():
    rng = np.random.default_rng(5)
    for _ in range(50):
        window = list(rng.integers(0, 3, rng.integers(2, 40)))
        limit = int(rng.integers(0, 40))
        size = len(window)
        expected = np.zeros(size, dtype=int)
        for k in range(1, size):
            n = 0
            while n + k < size and window[size - 1 - n] == window[size - 1 - n - k]:
                n += 1
            expected[size - 1 - k] = min(n, limit)
        np.testing.assert_array_equal(repeat_lengths(window, limit), expected)


def test_the_penalty_and_its_exponent_clamp():
    # "a b c a b" then c would extend a repeat of 2: multiplier · base^(2 - allowed)
    vocab = TokenTexts([b"a", b"b", b"c", b"\n"], lambda data: [b"abc\n".index(data)])
    restarts = vocab.restart_sequences(("\n",))
    penalties, match = dry_penalties([0, 1, 2, 0, 1], restarts, 0.8, 1.75, 2, -1)
    # float64 closed forms (a product and a power): approx's default 1e-6 only absorbs ulps
    assert penalties == {2: pytest.approx(0.8)} and match == 2
    penalties, _ = dry_penalties([0, 1, 2, 0, 1], restarts, 0.8, 1.75, 1, -1)
    assert penalties[2] == pytest.approx(0.8 * 1.75)
    long = [0, 1, 2] * 120
    penalties, match = dry_penalties(long, restarts, 1.0, 3.0, 2, -1)
    # 3^80 as a float64 power: within an ulp or two; approx's 1e-6 absorbs it
    assert match == len(long) - 3 and penalties[0] == pytest.approx(3.0**80, rel=1e-6)
    assert dry_penalties([0, 1, 3, 0, 1], restarts, 0.8, 1.75, 2, -1)[0] == {}  # breaker


def test_dry_without_a_vocabulary_is_one_clear_error():
    params = SamplingParams(dry_multiplier=0.8, order="llama.cpp")
    with pytest.raises(InvalidInputError, match="DRY's sequence breakers"):
        distribution(np.zeros(5), params, history=[[1, 2, 1, 2]])
    plain = SamplingParams(dry_multiplier=0.8, dry_sequence_breakers=[], order="llama.cpp")
    assert distribution(np.zeros(5), plain, history=[[1, 2, 1, 2, 1]])[2] < 0.2


def test_a_sampler_reports_what_dry_did():
    vocab = TokenTexts([b"a", b"b", b"c", b"\n"], lambda data: [b"abc\n".index(data)])
    params = [SamplingParams(dry_multiplier=0.8, order="llama.cpp", seed=1),
              SamplingParams(seed=2)]
    sampler = Sampler(params, vocabulary=vocab)
    _, stats = sampler.step(np.zeros((2, 4)), history=[[0, 1, 2, 0, 1], [0, 1, 2, 0, 1]])
    # 0.8 · 1.75^0 from float64 settings: approx's default 1e-6 absorbs float rounding
    assert stats.dry_match[0] == 2 and stats.dry_penalty[0] == pytest.approx(0.8)
    assert np.isnan(stats.dry_match[1])


def test_a_sweep_with_dry_and_xtc_resumes_token_for_token(tmp_path):
    from click.testing import CliRunner

    from sampler.cli import cli
    from sampler.runlog.store import RunStore

    db = str(tmp_path / "runs.db")
    args = ["sweep", "--model", "synthetic:markov?vocab=300&sharpness=3.0&seed=2",
            "--prompt", "kalo mesu", "--prompt", "puzo", "--temperatures", "0.7,1.2",
            "--samples", "2", "--max-new-tokens", "16", "--order", "llama.cpp",
            "--dry-multiplier", "0.8", "--dry-allowed-length", "1",
            "--dry-sequence-breakers", '["."]', "--xtc-probability", "0.5", "--db", db]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    with RunStore(db) as store:
        run = store.get_run("latest")
        original = store.completions(run["id"])
    steps = [step for completion in original for step in completion["steps"]]
    assert any(step["dry_penalty"] > 0 for step in steps)  # DRY acted somewhere
    assert {step["xtc_fired"] for step in steps} == {0.0, 1.0}
    again = resume_after_losing(db, run["id"], (0, 5))
    assert [c["token_ids"] for c in again] == [c["token_ids"] for c in original]
    assert [c["steps"] for c in again] == [c["steps"] for c in original]


def webui_dry(history, multiplier, base, allowed, breaker_ids):
    """text-generation-webui's DRYLogitsProcessor (modules/sampler_hijack.py, dceb23c7),
    transcribed: {token: penalty}."""
    last = history[-1]
    if last in breaker_ids:
        return {}
    lengths = {}
    for i, value in enumerate(history[:-1]):
        if value != last:
            continue
        following = history[i + 1]
        if following in breaker_ids:
            continue
        length = 1
        while length < 50:
            j = i - length
            if j < 0:
                break
            previous = history[-(length + 1)]
            if history[j] != previous or previous in breaker_ids:
                break
            length += 1
        lengths[following] = max(lengths.get(following, 0), length)
    return {t: multiplier * base ** (n - allowed) for t, n in lengths.items() if n >= allowed}


def test_where_webui_and_llama_cpp_agree_so_do_we_and_where_they_differ_we_follow_llama_cpp():
    # a toy vocabulary whose only breaker is the newline token 3 (no token merely contains it)
    vocab = TokenTexts([b"a", b"b", b"c", b"\n", b"d"], lambda data: [b"abc\nd".index(data)])
    restarts = vocab.restart_sequences(("\n",))
    rng = np.random.default_rng(8)
    for _ in range(200):
        history = list(rng.choice([0, 1, 2, 3, 4], rng.integers(3, 40), p=[.3, .3, .2, .1, .1]))
        allowed = int(rng.integers(1, 4))
        ours, _ = dry_penalties(history, restarts, 0.8, 1.75, allowed, -1)
        theirs = webui_dry(history, 0.8, 1.75, allowed, {3})
        assert ours.keys() == theirs.keys(), history
        for token, penalty in theirs.items():  # both float64 m · b^k: a few ulps apart
            assert ours[token] == pytest.approx(penalty, rel=1e-6)
    # a 120-token periodic history (a match of 116): webui caps the match at 50, llama.cpp does not
    long = [0, 1, 2, 4] * 30
    ours, match = dry_penalties(long, restarts, 0.8, 1.75, 2, -1)
    theirs = webui_dry(long, 0.8, 1.75, 2, {3})
    assert match == len(long) - 4 and ours[0] > theirs[0] * 1e10


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("\\n", "is not a JSON list"), ('["", ":"]', "must be a non-empty string")],
)
def test_a_bad_breaker_list_on_the_command_line_is_one_error_line(tmp_path, text, fragment):
    from click.testing import CliRunner

    from sampler.cli import cli
    from tests.test_bad_input import one_error_line

    db = tmp_path / "runs.db"
    args = ["generate", "--model", "synthetic:markov?vocab=300&seed=1", "--prompt", "kalo",
            "--order", "llama.cpp", "--dry-multiplier", "0.8", "--dry-sequence-breakers", text,
            "--db", str(db)]
    one_error_line(CliRunner().invoke(cli, args), "dry_sequence_breakers" if "non-empty"
                   in fragment else "--dry-sequence-breakers", fragment)
    assert not db.exists()  # refused before anything was written


# --- the breakers' bounds and their lookup's cost (issue 18) --------------------------------

def llama_cpp_lookup(texts, tokenize, breakers):
    """llama.cpp's get_overlapping_token_sequences over every token for every breaker (cut to
    40 bytes, tails to 20 tokens), transcribed: ``{token: {tail, ...}}``."""
    heads = {}
    for breaker in breakers:
        text = breaker.encode()[:40]
        for token, word in enumerate(texts):
            if text in word:
                heads.setdefault(token, set()).add(())
                continue
            for start in range(len(word)):
                rest = word[start:]
                if text.startswith(rest):
                    heads.setdefault(token, set()).add(tuple(tokenize(text[len(rest):])[:20]))
    return heads


def test_the_breaker_lookup_follows_llama_cpp_s_rule_on_random_vocabularies():
    rng = np.random.default_rng(18)
    pieces = [b"a", b"b", b":", "\u00e9".encode(), b"\xff", b"\n", b"ab"]  # \xff: a byte token

    def tokenize(data: bytes) -> list[int]:
        return [len(data), *data[:30]]  # any fixed function: the tails must agree

    for _ in range(40):
        texts = [b"".join(rng.choice(pieces, rng.integers(1, 6))) for _ in range(60)]
        breakers = ["".join(rng.choice(list("ab:\u00e9\n"), rng.integers(1, 7)))
                    for _ in range(rng.integers(1, 6))]
        breakers += ["ab" * 25, "a" + "\u00e9" * 25]  # cut to 40 bytes (the second mid-letter)
        ours = TokenTexts(texts, tokenize).restart_sequences(tuple(breakers))
        assert {t: set(tails) for t, tails in ours.items()} == llama_cpp_lookup(
            texts, tokenize, breakers), (texts, breakers)


class CountedTexts(list):
    """A vocabulary's texts that count how often they are read through."""

    passes = 0

    def __iter__(self):
        CountedTexts.passes += 1
        return super().__iter__()


def test_the_vocabulary_is_read_once_however_many_breakers():
    # llama.cpp (and this module before) read every token's text once per breaker: 4,500
    # breakers held a server for minutes; now the texts are joined once per vocabulary
    texts = CountedTexts([f"w{i}:".encode() for i in range(500)])
    vocab = TokenTexts(texts, lambda data: list(data))
    CountedTexts.passes = 0
    restarts = vocab.restart_sequences(tuple(f"w{i}" for i in range(64)))
    vocab.restart_sequences(("\n", ":"))
    assert CountedTexts.passes == 1
    assert restarts[7] == [()] and 70 in restarts  # "w7:" contains "w7"; "w70:" too


def test_a_row_has_at_most_64_breakers_each_valid_unicode():
    assert len(SamplingParams(dry_sequence_breakers=[f"b{i}" for i in range(64)])
               .dry_sequence_breakers) == 64
    with pytest.raises(InvalidInputError, match="dry_sequence_breakers has 65 strings: allowed "
                       "a list of at most 64 non-empty strings"):
        SamplingParams(dry_sequence_breakers=[f"b{i}" for i in range(65)])
    with pytest.raises(InvalidInputError, match="has a lone surrogate '\\\\ud800' at character 5"):
        SamplingParams(dry_sequence_breakers=["kalo \ud800"])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [(json.dumps([f"b{i}" for i in range(65)]), "dry_sequence_breakers has 65 strings"),
     ('["\\ud800"]', "dry_sequence_breakers item '\\ud800' has a lone surrogate")],
)
def test_too_many_or_broken_breakers_on_the_command_line_are_one_error_line(tmp_path, text,
                                                                          fragment):
    from click.testing import CliRunner

    from sampler.cli import cli
    from tests.test_bad_input import one_error_line

    db = tmp_path / "runs.db"
    args = ["generate", "--model", "synthetic:markov?vocab=300&seed=1", "--prompt", "kalo",
            "--order", "llama.cpp", "--dry-multiplier", "0.8", "--dry-sequence-breakers", text,
            "--db", str(db)]
    one_error_line(CliRunner().invoke(cli, args), fragment)
    assert not db.exists()
