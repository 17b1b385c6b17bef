"""Phrase bans on real backends, whose rewinds drop KV-cache positions: llama.cpp (SmolLM2,
``llama_memory_seq_rm``) and torch (a tiny random Llama, masked cache cells).

The llama.cpp test needs llama-cpp-python and the cached SmolLM2 GGUF (README's first command
installs and fetches both); locally it skips without llama-cpp-python, as
tests/test_llamacpp_source.py does.
"""

from test_phrase_bans import kobold_reference

from sampler.engine.params import SamplingParams
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate

SEA = "Write one sentence about the sea."


def where_a_phrase_begins(source, token_ids, phrase):
    """Independently of the guard: the first prefix of ``token_ids`` whose text holds
    ``phrase`` (any case), and the start of the shortest run of its last tokens that does."""
    lowered = phrase.lower()
    end = next(n for n in range(1, len(token_ids) + 1)
               if lowered in source.decode(token_ids[:n]).lower())
    return max(s for s in range(end) if lowered in source.decode(token_ids[s:end]).lower())


def test_smollm2_greedy_leaves_its_path_exactly_where_the_banned_phrase_began():
    from conftest import import_llama_cpp_or_skip

    import_llama_cpp_or_skip()
    from sampler.sources import load_source

    source = load_source("smollm2-135m-gguf")
    row = GenerationRow(SEA, SamplingParams(temperature=0.0))
    (free,) = generate(source, [row], max_new_tokens=40)
    # greedy's text depends on the llama.cpp build (its kernels differ by CPU): ban three of
    # the words this build's greedy wrote, from a third of the way in
    text = free.text
    start = text.index(" ", len(text) // 3) + 1
    end = text.index(" ", text.index(" ", text.index(" ", start) + 1) + 1)
    phrase = text[start:end].upper()  # matched in any case
    assert phrase.lower() in free.text.lower()
    begins = where_a_phrase_begins(source, free.token_ids, phrase)
    (banned,) = generate(source, [row], max_new_tokens=40, ban_phrases=[phrase])
    assert banned.token_ids[:begins] == free.token_ids[:begins]
    assert banned.token_ids[begins] != free.token_ids[begins]
    assert phrase.lower() not in banned.text.lower()
    first = banned.rewinds[0]
    assert (first["position"], first["token"]) == (begins, free.token_ids[begins])

    # a rewound row draws the same alone and in a batch (its cache cells dropped in a shared
    # unified cache); llama.cpp's rows are bit-identical to the row alone
    rows = [GenerationRow(SEA, SamplingParams(temperature=tau, seed=1)) for tau in (0.0, 0.5)]
    rows.append(GenerationRow("List three colours.", SamplingParams(temperature=1.0, seed=2)))
    phrases = [phrase, "teeming", "vast"]
    batch = generate(source, rows, max_new_tokens=40, ban_phrases=phrases)
    assert batch[0].rewinds  # the greedy row writes the phrase; the others may too
    for row, together in zip(rows, batch, strict=True):
        (alone,) = generate(source, [row], max_new_tokens=40, ban_phrases=phrases)
        assert (alone.token_ids, alone.rewinds) == (together.token_ids, together.rewinds)
        assert not any(p.lower() in together.text.lower() for p in phrases)


def test_torch_rows_rewind_to_what_a_fresh_prefill_gives(tiny_model_dir):
    from sampler.sources.torch_model import HFSource

    source = HFSource(tiny_model_dir, "tiny-llama", "test")
    # prompts of different lengths: the batch is left-padded, and rewinds mask more cells
    prompts = ["w1 w2 w3", "w7", "w9 w10 w11 w12 w13"]
    phrases = ["w16", "w107 w101", "W105"]  # words and a bigram its greedy rows produce
    rows = [GenerationRow(p, SamplingParams(temperature=0.0, seed=0)) for p in prompts]
    batch = generate(source, rows, max_new_tokens=30, chat=False, ban_phrases=phrases)
    assert sum(len(c.rewinds) for c in batch) >= 3
    for row, completion in zip(rows, batch, strict=True):
        # the oracle prefills the whole context at every step: no cache to rewind
        tokens, rewinds, finish = kobold_reference(source, row.prompt, row.params, phrases, 30)
        assert (completion.token_ids, completion.rewinds) == (tokens, rewinds)
        assert completion.finish_reason == finish


def test_smollm2_rows_sharing_a_prompt_rewind_into_it():
    """A phrase at the first generated token: the rewound rows drop the prompt's last cell,
    which they share with each other (llama_memory_seq_cp), and decode it again."""
    from conftest import import_llama_cpp_or_skip

    import_llama_cpp_or_skip()
    from sampler.sources import load_source

    source = load_source("smollm2-135m-gguf")
    rows = [GenerationRow(SEA, SamplingParams(temperature=tau, seed=4)) for tau in (0.0, 0.3)]
    free = generate(source, rows, max_new_tokens=8)
    # the first two words greedy writes on this build (its text depends on the llama.cpp build)
    phrase = " ".join(free[0].text.split()[:2]).lower()
    batch = generate(source, rows, max_new_tokens=8, ban_phrases=[phrase])
    starts = [c.text.lower().startswith(phrase) for c in free]
    assert starts[0]
    for row, together, started in zip(rows, batch, starts, strict=True):
        if started:  # the phrase begins at the first generated token
            assert together.rewinds[0]["position"] == 0
        assert phrase not in together.text.lower()
        (alone,) = generate(source, [row], max_new_tokens=8, ban_phrases=[phrase])
        assert (alone.token_ids, alone.rewinds) == (together.token_ids, together.rewinds)
