"""Phrase bans with backtracking, against an independent transcription of KoboldCpp's loop.

The source is a sharp synthetic Markov chain, whose rows fall into loops, so a phrase taken
from its own greedy output is completed again and again. The oracle below is written from
KoboldCpp's ``gpttype_adapter.cpp`` (its delayed-token window, its shortest-suffix search,
its per-position ban map, its token budget), recomputes the logits from the whole context at
every step (no session, no cache) and draws from the engine's exact law with the row's own
stream, by its own inverse CDF.
"""

import numpy as np
import pytest

from sampler.engine.constraints.matcher import RowConstraint, constraint_vocabulary
from sampler.engine.params import SamplingParams
from sampler.engine.sampling import distribution
from sampler.engine.state import matcher_array
from sampler.errors import InvalidInputError
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate
from sampler.generation.phrase_bans import MAX_PHRASE_CHARS, MAX_PHRASES, check_phrases
from sampler.sources.synthetic_spec import parse_synthetic

SHARP = "synthetic:markov?vocab=30&sharpness=3&seed=1"
# A uniform this close to a boundary of the CDF could fall on either side of it depending on
# the order the sums are taken in (float32 weights summed in float64 differ by ~1e-12): the
# oracle refuses such a draw rather than guess, and none occurs with these seeds.
BOUNDARY = 1e-9


def kobold_reference(
    source, prompt, params, phrases, max_new_tokens, chat=False, cached=False, sample=0
):
    """One row as KoboldCpp runs it: ``(tokens, rewinds, finish_reason)``.

    The logits of each step are a fresh prefill of the whole context (no cache to rewind), or,
    with ``cached``, those of the row's own session rewound as KoboldCpp's ``ContextRewind``
    does (the cache cut after the kept tokens, the last kept token fed again): llama.cpp's
    prefill and its one-token decode differ in the last bits, enough to move a sampled draw
    that falls near a boundary of the CDF.

    With a grammar (``params.grammar``), each step's law is the engine's under the mask of a
    matcher made afresh and walked over the kept tokens after each rewind (never rolled back),
    and a position's bans apply only while some token the grammar allows there is not banned.
    """
    prompt_ids = source.encode(prompt, chat=chat)
    key = GenerationRow(prompt, params, sample).stream_key()
    stream = np.random.Generator(np.random.PCG64(np.random.SeedSequence([params.seed, *key])))
    # tokens of the longest phrase alone, lower-cased, plus 3 (KoboldCpp's extra buffer)
    window = 3 + max(len(_tokenized(source, p.lower())) for p in phrases)
    tokens, bans, rewinds, matcher = [], {}, [], None
    if cached:
        cached_logits, session = source.start([prompt_ids])
    for step in range(max_new_tokens):  # remaining_tokens: one per sampled token, never back
        if not cached:
            cached_logits = source.start([prompt_ids + tokens])[0]
        logits = cached_logits[0].astype(np.float64)
        state, legal = None, np.isfinite(logits)
        if params.grammar:
            matcher = matcher or fresh_walk(source, params, tokens)
            state = {"grammar_matcher": matcher_array([matcher.copy()])}
            legal &= matcher.allowed()
        banned = bans.get(len(tokens), [])
        if banned and np.delete(legal, banned).any():
            logits[banned] = -np.inf
        law = distribution(logits, params, state=state).astype(np.float64)
        u = stream.random()
        if params.temperature == 0:
            token = int(np.argmax(law))
        else:
            cdf = np.cumsum(law)
            target = u * cdf[-1]
            assert np.min(np.abs(cdf - target)) > BOUNDARY
            token = int(np.searchsorted(cdf, target, side="right"))
        if token in source.eos_token_ids:
            return tokens, rewinds, "eos"
        tokens.append(token)
        feed = token
        if matcher is not None:
            matcher.advance(token)
        delayed = [_piece(source, t).lower() for t in tokens[-window:]]
        for phrase in phrases:
            if phrase.lower() not in "".join(delayed):
                continue
            taken = 1
            while phrase.lower() not in "".join(delayed[-taken:]):
                taken += 1
            start = len(tokens) - taken
            bans.setdefault(start, []).append(tokens[start])
            rewinds.append(
                {"step": step, "phrase": phrase, "position": start, "token": tokens[start],
                 "dropped": taken}
            )
            del tokens[start:]
            matcher = None
            if cached:
                context = prompt_ids + tokens
                session.rewind(0, len(context) - 1)
                feed = context[-1]
            break
        if cached and step < max_new_tokens - 1:
            cached_logits = session.advance(np.array([feed]))
    return tokens, rewinds, "length"


def fresh_walk(source, params, tokens):
    """A matcher for ``params``' grammar made afresh and given ``tokens``."""
    matcher = RowConstraint(constraint_vocabulary(source), params.grammar_syntax, params.grammar)
    for token in tokens:
        matcher.advance(token)
    return matcher


def _piece(source, token):
    """A token's text as KoboldCpp's window holds it: llama.cpp's piece; a word and its space
    for the word-level sources (synthetic, the tiny torch model)."""
    gguf = getattr(source, "text", None)
    if hasattr(gguf, "token_bytes"):
        return gguf.token_bytes(token).decode("utf-8", "replace")
    return " " + source.token_label(token)


def _tokenized(source, text):
    gguf = getattr(source, "text", None)
    if hasattr(gguf, "tokenize"):
        return gguf.tokenize(text, add_special=False)
    return text.split()


def greedy_text(source, prompt, max_new_tokens=30):
    row = GenerationRow(prompt, SamplingParams(temperature=0.0))
    return generate(source, [row], max_new_tokens=max_new_tokens)[0].text


def loop_phrases(source):
    """Two bigrams and a word the unbanned greedy row produces (its loop)."""
    words = greedy_text(source, "kalo").split()
    return [" ".join(words[3:5]), " ".join(words[6:8]).upper(), words[2]]


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0, 1.5])
def test_rows_match_the_kobold_transcription(temperature):
    source = parse_synthetic(SHARP)
    phrases = loop_phrases(source)
    rows = [
        GenerationRow(prompt, SamplingParams(temperature=temperature, seed=seed))
        for prompt in ("kalo", "mesu puzo")
        for seed in range(6)
    ]
    completions = generate(source, rows, max_new_tokens=40, ban_phrases=phrases)
    rewound = 0
    for row, completion in zip(rows, completions, strict=True):
        tokens, rewinds, finish = kobold_reference(source, row.prompt, row.params, phrases, 40)
        assert completion.token_ids == tokens
        assert completion.rewinds == rewinds
        assert completion.finish_reason == finish
        rewound += len(rewinds)
    assert rewound >= 5  # the phrases are likely: the test exercises rewinds


def test_no_phrase_in_output_and_each_rewound_position_avoids_its_bans():
    source = parse_synthetic(SHARP)
    phrases = loop_phrases(source)
    rows = [GenerationRow("kalo", SamplingParams(temperature=1.0, seed=s)) for s in range(40)]
    for completion in generate(source, rows, max_new_tokens=60, ban_phrases=phrases):
        text = completion.text.lower()
        assert not any(p.lower() in text for p in phrases)
        banned: dict[int, set[int]] = {}
        for rewind in completion.rewinds:
            banned.setdefault(rewind["position"], set()).add(rewind["token"])
        for position, tokens in banned.items():
            if position < len(completion.token_ids):
                assert completion.token_ids[position] not in tokens


def test_the_budget_counts_rewound_draws_and_no_rewind_leaves_the_window():
    source = parse_synthetic(SHARP)
    phrases = loop_phrases(source)
    window = 3 + max(len(p.split()) for p in phrases)
    rows = [GenerationRow("kalo", SamplingParams(temperature=1.0, seed=s)) for s in range(40)]
    for completion in generate(source, rows, max_new_tokens=50, ban_phrases=phrases):
        dropped = sum(r["dropped"] for r in completion.rewinds)
        draws = len(completion.token_ids) + dropped + (completion.finish_reason == "eos")
        assert draws <= 50
        assert (draws == 50) == (completion.finish_reason == "length")
        assert all(1 <= r["dropped"] <= window for r in completion.rewinds)
        assert len(completion.steps) == len(completion.token_ids) + (
            completion.finish_reason == "eos"
        )


def test_matching_ignores_case():
    source = parse_synthetic(SHARP)
    phrases = loop_phrases(source)
    row = [GenerationRow("kalo", SamplingParams(temperature=0.0))]
    lower = generate(source, row, max_new_tokens=30, ban_phrases=[p.lower() for p in phrases])
    upper = generate(source, row, max_new_tokens=30, ban_phrases=[p.upper() for p in phrases])
    assert lower[0].token_ids == upper[0].token_ids and lower[0].rewinds


def test_a_position_whose_every_token_is_banned_draws_unbanned_until_the_budget_ends():
    source = parse_synthetic("synthetic:fixed")  # tokens A, B, C
    row = [GenerationRow("", SamplingParams(temperature=1.0, seed=0))]
    (completion,) = generate(source, row, max_new_tokens=12, ban_phrases=["a", "b", "c"])
    assert completion.token_ids == [] and completion.finish_reason == "length"
    assert len(completion.rewinds) == 12
    assert {r["token"] for r in completion.rewinds[:3]} == {0, 1, 2}


def test_a_row_draws_the_same_alone_in_a_batch_and_in_small_batches():
    source = parse_synthetic(SHARP)
    phrases = loop_phrases(source)
    rows = [
        GenerationRow(prompt, SamplingParams(temperature=tau, seed=3), sample)
        for prompt in ("kalo", "mesu")
        for tau in (0.0, 0.8, 1.3)
        for sample in range(3)
    ]
    batch = generate(source, rows, max_new_tokens=40, ban_phrases=phrases)
    assert sum(len(c.rewinds) for c in batch) > 0
    for row, together in zip(rows, batch, strict=True):
        (alone,) = generate(source, [row], max_new_tokens=40, ban_phrases=phrases)
        assert (alone.token_ids, alone.rewinds) == (together.token_ids, together.rewinds)


def test_streamed_text_is_the_final_text_never_taken_back():
    source = parse_synthetic(SHARP)
    phrases = loop_phrases(source)
    rows = [GenerationRow("kalo", SamplingParams(temperature=1.0, seed=s)) for s in range(12)]
    streamed = [""] * len(rows)

    def on_text(index, text):
        streamed[index] += text

    completions = generate(
        source, rows, max_new_tokens=40, ban_phrases=phrases, on_text=on_text, stop=["zzzz"]
    )
    assert sum(len(c.rewinds) for c in completions) > 0
    assert streamed == [c.text for c in completions]


def test_no_phrase_costs_nothing(monkeypatch):
    import sampler.generation.loop as loop

    def refuse(*args, **kwargs):
        raise AssertionError("no phrase is banned: no guard may be made")

    monkeypatch.setattr(loop, "PhraseGuard", refuse)
    source = parse_synthetic(SHARP)
    (completion,) = generate(source, [GenerationRow("kalo", SamplingParams())], 10)
    assert completion.rewinds is None and "rewinds" not in completion.to_dict()


@pytest.mark.parametrize(
    ("phrases", "message"),
    [
        ([""], "ban phrase 1 is empty"),
        (["ok", "x" * (MAX_PHRASE_CHARS + 1)], f"give at most {MAX_PHRASE_CHARS}"),
        (["p"] * (MAX_PHRASES + 1), f"give at most {MAX_PHRASES}"),
        (["kalo \ud800"], "lone surrogate"),
        ([3], "give a string"),
    ],
)
def test_bad_phrases_are_refused(phrases, message):
    with pytest.raises(InvalidInputError, match=message):
        check_phrases(phrases)
