"""Streaming text: decoded incrementally (linear cost), multi-byte characters never garbled."""

import numpy as np
import pytest

from sampler import SamplingParams
from sampler.generation.generation_row import GenerationRow
from sampler.generation.loop import generate
from sampler.sources.synthetic_spec import parse_synthetic


class ByteSource:
    """A byte-level "model" that writes a fixed text, one UTF-8 byte per token, then EOS."""

    name = fingerprint = "bytes"
    vocab_size = 257
    eos_token_ids = frozenset({256})
    context_limit = None
    is_chat = False

    def __init__(self, text: str) -> None:
        self.script = [*text.encode("utf-8"), 256]
        self.decoded_tokens = 0

    def encode(self, prompt, chat):
        return list(prompt.encode("utf-8")) or [32]

    def decode(self, token_ids):
        self.decoded_tokens += len(token_ids)
        return bytes(t for t in token_ids if t < 256).decode("utf-8", errors="replace")

    def token_label(self, token_id):
        return repr(bytes([token_id]))

    def _logits(self, position, rows):
        logits = np.full((rows, self.vocab_size), -np.inf, dtype=np.float32)
        logits[:, self.script[min(position, len(self.script) - 1)]] = 0.0
        return logits

    def start(self, prompts):
        source, position = self, [0]

        class Session:
            def advance(self, tokens):
                position[0] += 1
                return source._logits(position[0], len(tokens))

        return self._logits(0, len(prompts)), Session()


TEXT = "héllo wörld € 😀 ok — done"


def _stream(source, max_new_tokens=200, stop=()):
    pieces: list[str] = []
    (completion,) = generate(
        source,
        [GenerationRow("hi", SamplingParams(temperature=0))],
        max_new_tokens=max_new_tokens,
        stop=stop,
        on_text=lambda _row, text: pieces.append(text),
    )
    return pieces, completion


def test_multibyte_characters_split_across_tokens_stream_whole():
    pieces, completion = _stream(ByteSource(TEXT))
    assert "".join(pieces) == completion.text == TEXT
    assert not any("\ufffd" in piece for piece in pieces)


def test_a_row_cut_inside_a_character_streams_what_its_text_holds():
    cut = len("héllo wörld €".encode()) - 1  # the last byte of € never comes
    pieces, completion = _stream(ByteSource(TEXT), max_new_tokens=cut)
    assert "".join(pieces) == completion.text
    assert completion.text.startswith("héllo wörld ")


def test_a_stop_string_across_tokens_and_characters():
    pieces, completion = _stream(ByteSource(TEXT), stop=("€ 😀",))
    assert completion.finish_reason == "stop"
    assert "".join(pieces) == completion.text == "héllo wörld "


@pytest.mark.parametrize("tokens", [1000, 3000])
def test_streaming_decodes_each_token_a_bounded_number_of_times(tokens):
    """Re-decoding the whole text each step costs tokens²/2; incremental decoding is linear."""
    source = parse_synthetic("synthetic:zipf?vocab=500")
    decoded = []
    decode = source.decode
    source.decode = lambda ids: decoded.append(len(ids)) or decode(ids)
    pieces, completion = _stream(source, max_new_tokens=tokens)
    assert len(completion.token_ids) == tokens
    assert "".join(pieces) == completion.text == decode(completion.token_ids)
    assert sum(decoded) <= 8 * tokens
