"""Phrase bans beside a grammar, on SmolLM2 (llama.cpp): a rewind rolls the row's matcher back.

The oracle of a rolled-back matcher is a fresh matcher walked over the kept tokens (never
rolled back); the oracle of a generation is the KoboldCpp transcription of
tests/test_phrase_bans.py with that mask (a fresh prefill and a fresh matcher at every step).
"""

import re

import numpy as np
import pytest
from test_phrase_bans import fresh_walk, kobold_reference

from sampler.engine.constraints.matcher import RowConstraint, constraint_vocabulary
from sampler.engine.params import SamplingParams
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate

pytest.importorskip("llguidance")

SEA = "Write one sentence about the sea."
# Rows rewound in one llama.cpp batch may draw otherwise than alone: a rewind of one row can
# change another's logits (bans alone too, without a grammar; a known failure, see the last
# test). The rows are compared with the transcription one at a time.
PROMPTS = [SEA, "Write one sentence about a river.", "Describe the moon in one sentence.",
           "List three colours.", "Say something about rain."]
SENTENCE = r"[A-Za-z ,]{1,90}\."
# SmolLM2's <|im_start|> is spelled by 7 plain tokens; these characters allow its text
SPECIAL_TEXT = r"[a-z<|>_ ]{1,60}"
GRAMMARS = [
    ("regex", SPECIAL_TEXT),
    ("regex", "(yes|no)"),  # stops after a few tokens: the later steps consume nothing
    ("json_schema", '{"type": "object", "properties": {"a": {"type": "string"}}}'),
    # llguidance refuses to roll back a max_tokens lexeme: walked again from its start
    ("lark", 'start: word " " word\nword[max_tokens=3]: /[a-z]+/'),
]


@pytest.mark.parametrize(("syntax", "text"), GRAMMARS)
def test_a_rolled_back_matcher_masks_as_a_fresh_walk_over_the_kept_tokens(gguf, syntax, text):
    vocabulary = constraint_vocabulary(gguf)
    params = SamplingParams(grammar=text, grammar_syntax=syntax)
    rng = np.random.default_rng(len(text))
    walk, tokens = RowConstraint(vocabulary, syntax, text), []
    for _ in range(14):  # legal tokens, the spelled special one whenever it is legal
        allowed = walk.allowed()
        token = 1 if allowed[1] else int(rng.choice(np.flatnonzero(allowed)))
        walk.advance(token)
        tokens.append(token)
    assert walk.steps == len(tokens)
    if syntax == "regex" and text == SPECIAL_TEXT:
        assert tokens.count(1) >= 2  # the special token was taken, 7 llguidance tokens each
    for back in range(len(tokens) + 1):
        twin = walk.copy()
        twin.rollback(back)
        kept = tokens[: len(tokens) - back]
        assert twin.steps == len(kept) and not twin.matcher.is_error()
        fresh = fresh_walk(gguf, params, kept)
        np.testing.assert_array_equal(twin.allowed(), fresh.allowed(), err_msg=f"back {back}")
        if back:  # and it walks on as the fresh one does
            twin.advance(tokens[len(kept)])
            np.testing.assert_array_equal(
                twin.allowed(), fresh_walk(gguf, params, tokens[: len(kept) + 1]).allowed()
            )
    assert walk.steps == len(tokens)  # the copies were rolled back, not the walk
    with pytest.raises(ValueError, match="cannot roll back 15 of 14 steps"):
        walk.rollback(15)


def sentence_params(temperature, seed=0):
    return SamplingParams(temperature=temperature, seed=seed, grammar=SENTENCE,
                          grammar_syntax="regex")


def phrases_of(source):
    """Common English the rows write whatever the build (greedy's text depends on the llama.cpp
    build): a word, and two pieces that end inside the next token, so a rewind drops two."""
    return ["the", "of ", ", a"]


def test_banned_and_constrained_rows_match_the_kobold_transcription_with_a_mask(gguf):
    phrases = phrases_of(gguf)
    rows = [GenerationRow(PROMPTS[0], sentence_params(0.0))]
    rows += [GenerationRow(prompt, sentence_params(tau, seed))
             for prompt, tau, seed in ((PROMPTS[1], 0.8, 1), (PROMPTS[2], 1.2, 2))]
    batch = [generate(gguf, [row], 30, chat=True, ban_phrases=phrases)[0] for row in rows]
    dropped = [r["dropped"] for c in batch for r in c.rewinds]
    assert len(dropped) >= 3 and max(dropped) >= 2
    for row, completion in zip(rows, batch, strict=True):
        tokens, rewinds, finish = kobold_reference(
            gguf, row.prompt, row.params, phrases, 30, chat=True, cached=True, sample=row.sample
        )
        assert (completion.token_ids, completion.rewinds) == (tokens, rewinds)
        assert completion.finish_reason == finish
        assert not any(p.lower() in completion.text.lower() for p in phrases)
        prefix = SENTENCE[:-2] + r"(\.)?"  # the text so far is a prefix of a legal sentence
        assert re.fullmatch(prefix, completion.text), completion.text
        # the telemetry of each kept step is the grammar's at that point of the kept tokens
        ended = completion.finish_reason == "eos"
        assert len(completion.steps) == len(completion.token_ids) + ended
        fresh = fresh_walk(gguf, row.params, [])
        for token, step in zip([*completion.token_ids, None], completion.steps, strict=False):
            assert step["grammar_allowed"] == fresh.allowed().sum()
            if token is not None:
                fresh.advance(token)


def test_a_position_whose_every_legal_token_is_banned_draws_from_the_grammar_alone(gguf):
    # "yes" and "no" banned where the grammar allows only them: once y, ye, yes, n and no are
    # all banned at position 0 the bans are not applied there, and the budget runs out
    params = SamplingParams(temperature=1.0, seed=3, grammar="(yes|no)", grammar_syntax="regex")
    row = GenerationRow("Is the sea blue?", params)
    bans = ["yes", "no"]
    (completion,) = generate(gguf, [row], max_new_tokens=24, chat=True, ban_phrases=bans)
    first = np.flatnonzero(fresh_walk(gguf, params, []).allowed())
    at_start = [r["token"] for r in completion.rewinds if r["position"] == 0]
    assert set(at_start) == set(first.tolist())  # every legal first token got banned there...
    assert len(at_start) > len(first)  # ...and the row went on drawing them
    assert completion.finish_reason == "length" and "yes" not in completion.text
    assert (completion.token_ids, completion.rewinds) == kobold_reference(
        gguf, row.prompt, params, bans, 24, chat=True, cached=True
    )[:2]


def test_a_constrained_row_draws_the_same_alone_twice_and_in_batches_of_one(gguf):
    phrases = phrases_of(gguf)
    rows = [GenerationRow(prompt, sentence_params(tau, 5), sample)
            for prompt, tau, sample in zip(PROMPTS[:3], (0.0, 0.9, 1.2), (0, 1, 2), strict=True)]
    split = generate(gguf, rows, max_new_tokens=30, chat=True, ban_phrases=phrases,
                     cache_budget_mb=0.01)  # one row per batch, one after another
    assert sum(len(c.rewinds) for c in split) >= 3
    for row, apart in zip(rows, split, strict=True):
        (alone,) = generate(gguf, [row], max_new_tokens=30, chat=True, ban_phrases=phrases)
        assert (alone.token_ids, alone.rewinds, alone.steps) == (
            apart.token_ids, apart.rewinds, apart.steps
        )


def test_rows_rewound_in_one_batch_draw_as_alone(gguf):
    # phrase bans alone, no grammar. Before the session kept a rewound row's dropped cells
    # (LlamaCppSession.rewind), row 1 drew otherwise from the step after row 0 rewound two
    # tokens: its next cell took the freed one, before its own earlier cells
    rows = [GenerationRow(prompt, SamplingParams(temperature=tau, seed=5), sample)
            for prompt, tau, sample in zip(PROMPTS, (0.0, 0.9, 0.9, 1.0, 1.2), (0, 0, 1, 0, 2),
                                           strict=True)]
    batch = generate(gguf, rows, max_new_tokens=30, chat=True, ban_phrases=phrases_of(gguf))
    # the case this test is for: rows rewound in the middle of a batch that goes on
    assert sum(len(c.rewinds or ()) for c in batch) >= 2
    for row, together in zip(rows, batch, strict=True):
        (alone,) = generate(gguf, [row], max_new_tokens=30, chat=True,
                            ban_phrases=phrases_of(gguf))
        assert (alone.token_ids, alone.steps) == (together.token_ids, together.steps)
