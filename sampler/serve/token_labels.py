"""Token labels as the page shows them: a token that is part of a character shows its bytes.

A byte-level tokenizer splits some characters over several tokens (``—`` is ``E2 80 94`` in
UTF-8); decoded alone, such a token is the replacement character ``�``, which says nothing
about which bytes it holds. A source that gives a token's bytes (the llama.cpp one, through
``source.text.token_bytes``) has those bytes shown instead, as ``<0xE2>``, the way
SentencePiece names its byte tokens; the valid text around them stays text. The page makes
whitespace visible itself (``␣ ⏎ →``); model text is never parsed as HTML there.

Examples
--------
>>> bytes_label(b"\\xe2\\x80")
'<0xE2><0x80>'
>>> bytes_label(" caf\\u00e9 \\u2014".encode()[:-1])
' café <0xE2><0x80>'
"""

from __future__ import annotations

from typing import Any

__all__ = ["bytes_label", "run_labels", "shown_label"]

_REPLACEMENT = "\ufffd"


def bytes_label(data: bytes) -> str:
    """``data`` as UTF-8 text, each byte that is not part of a whole character as ``<0xNN>``."""
    out: list[str] = []
    while data:
        try:
            out.append(data.decode("utf-8"))
            break
        except UnicodeDecodeError as error:
            out.append(data[: error.start].decode("utf-8"))
            out.extend(f"<0x{byte:02X}>" for byte in data[error.start : error.end])
            data = data[error.end :]
    return "".join(out)


def shown_label(source: Any, token: int) -> str:
    """The label of ``token`` in the page: :meth:`token_label`, with the bytes of a split
    character shown (:func:`bytes_label`) when the source can give them."""
    label = source.token_label(token)
    token_bytes = getattr(getattr(source, "text", None), "token_bytes", None)
    if _REPLACEMENT not in label or token_bytes is None:
        return label
    return bytes_label(token_bytes(int(token)))


def run_labels(source: Any, run: dict[str, Any], completions: list[dict]) -> dict[str, str]:
    """Labels of the tokens of a page of a run (``{id: label}``) when the served model is the
    run's (same fingerprint), else ``{}``: another model's ids name other tokens."""
    if not run.get("fingerprint") or run["fingerprint"] != getattr(source, "fingerprint", None):
        return {}
    tokens = {s["token"] for c in completions for s in c["steps"] if s.get("token") is not None}
    return {str(t): shown_label(source, int(t)) for t in sorted(tokens)}
