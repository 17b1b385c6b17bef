"""Token labels as the page shows them (sampler/serve/token_labels.py): a token that holds
part of a character shows its bytes (``<0xE2>``); the run-log tab's labels only for the served
model's runs. The oracle is Python's own UTF-8 codec and, on SmolLM2, the text's bytes."""

from __future__ import annotations

import re

import pytest

from sampler.serve.token_labels import bytes_label, run_labels, shown_label


def _bytes_of(label: str) -> bytes:
    """A shown label back to bytes: each ``<0xNN>`` one byte, the rest its UTF-8."""
    parts = re.split(r"<0x([0-9A-F]{2})>", label)
    return b"".join(
        bytes([int(part, 16)]) if i % 2 else part.encode("utf-8") for i, part in enumerate(parts)
    )


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"\xe2\x80", "<0xE2><0x80>"),  # the first two bytes of an em dash
        ("—".encode(), "—"),  # a whole character is text
        (b" caf\xc3\xa9", " café"),
        (b"ab\xff", "ab<0xFF>"),  # never valid in UTF-8
        (b"\x94 x", "<0x94> x"),  # a continuation byte with no start, then text
        (b"\xf0\x9f\x99x", "<0xF0><0x9F><0x99>x"),
        (b"", ""),
    ],
)
def test_bytes_label(data, shown):
    assert bytes_label(data) == shown
    assert _bytes_of(shown) == data


class _Source:
    fingerprint = "f00d"

    class text:  # noqa: N801 - llama.cpp's source.text
        @staticmethod
        def token_bytes(token):
            return {1: b"\xe2\x80", 2: b" ok"}[token]

    def token_label(self, token):
        return {1: "\ufffd", 2: " ok", 3: "\ufffd"}[token]


def test_shown_label_uses_bytes_only_for_a_replacement_character():
    source = _Source()
    assert shown_label(source, 1) == "<0xE2><0x80>"
    assert shown_label(source, 2) == " ok"
    no_bytes = type("NoBytes", (), {"token_label": lambda self, t: "\ufffd"})()
    assert shown_label(no_bytes, 3) == "\ufffd"  # nothing better to show


def test_run_labels_only_for_the_served_model():
    completions = [{"steps": [{"token": 2}, {"token": 1}, {"token": None}]}]
    assert run_labels(_Source(), {"fingerprint": "f00d"}, completions) == {
        "1": "<0xE2><0x80>",
        "2": " ok",
    }
    assert run_labels(_Source(), {"fingerprint": "beef"}, completions) == {}  # other ids
    assert run_labels(_Source(), {"fingerprint": ""}, completions) == {}


@pytest.mark.parametrize("text", ["𝄞", "日本語", "naïve 🙂"])
def test_smollm2_split_characters_show_their_bytes(gguf, text):
    ids = gguf.encode(text, chat=False)
    labels = [shown_label(gguf, t) for t in ids]
    assert "\ufffd" not in "".join(labels)
    assert b"".join(_bytes_of(label) for label in labels) == text.encode("utf-8")
