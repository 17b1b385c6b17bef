"""A step's grammar for the page: the matcher at the step a user opened, and its mask, sent
compactly so that the page's twin of the ``grammar`` stage recomputes every slider move.

The mask goes as whichever of two encodings is shorter: the allowed token ids (a list, short
when the grammar allows few tokens: a JSON schema's punctuation, a regex's digits) or the whole
vocabulary as a bitmask (bit ``t % 8`` of byte ``t // 8`` is token ``t``, as llguidance's
``compute_bitmask``), base64: 8,192 characters at SmolLM2's 49,152 tokens, whatever the mask.
A list of ``n`` ids costs about ``6 n`` characters, so the list is shorter up to ~1,300 allowed
tokens (docs/page.md has the measured sizes).

Examples
--------
>>> import numpy as np
>>> mask = np.zeros(40, dtype=bool); mask[[3, 7]] = True
>>> mask_json(mask)
{'allowed': 2, 'ids': [3, 7]}
>>> bool((mask_from_json(mask_json(~mask), 40) == ~mask).all())
True
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from sampler.engine.constraints.matcher import constraint_state
from sampler.errors import InvalidInputError

__all__ = ["check_written", "grammar_step", "mask_from_json", "mask_json"]


def grammar_step(
    source: Any, params: Any, written: Sequence[int]
) -> tuple[dict[str, np.ndarray] | None, dict[str, Any] | None]:
    """The sampler state of the step after ``written`` (the tokens after the prompt) under
    ``params``' grammar, and its mask for the page; ``(None, None)`` without a grammar. A
    written token the grammar forbids is a one-line error naming it and its position."""
    if not params.grammar or "grammar" not in params.stages:
        return None, None
    state = constraint_state(source, params, written=written)
    assert state is not None
    return state, mask_json(state["grammar_matcher"][0].allowed())


def check_written(source: Any, rows: Sequence[Any], written: Sequence[int]) -> None:
    """A one-line error (``rows[i]: ...``) when a row's grammar forbids a token of ``written``
    where it stands (the forced tokens of a branch, written under the row's grammar)."""
    for index, params in enumerate(rows):
        try:
            grammar_step(source, params, written)
        except InvalidInputError as error:
            raise InvalidInputError(f"rows[{index}]: {error}") from None


def mask_json(mask: np.ndarray) -> dict[str, Any]:
    """``mask`` (``[V]`` bool) as the shorter of its allowed ids and its base64 bitmask."""
    ids = np.flatnonzero(mask).tolist()
    bits = base64.b64encode(np.packbits(mask, bitorder="little").tobytes()).decode("ascii")
    listed = len(json.dumps(ids, separators=(",", ":")))
    if listed <= len(bits):
        return {"allowed": len(ids), "ids": ids}
    return {"allowed": len(ids), "bits_b64": bits}


def mask_from_json(answer: dict[str, Any], vocab_size: int) -> np.ndarray:
    """The ``[V]`` bool mask of :func:`mask_json`'s answer (what the page decodes)."""
    if "ids" in answer:
        mask = np.zeros(vocab_size, dtype=bool)
        mask[np.asarray(answer["ids"], dtype=np.int64)] = True
        return mask
    packed = np.frombuffer(base64.b64decode(answer["bits_b64"]), dtype=np.uint8)
    return np.unpackbits(packed, bitorder="little")[:vocab_size].astype(bool)
