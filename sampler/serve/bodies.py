"""What a request carries, read and bounded before anything uses it: its JSON body and its
query integers.

A body is at most :data:`MAX_BODY_BYTES`, JSON (sent as ``application/json``) and nested at
most :data:`MAX_DEPTH` levels: the deepest body the API takes is 6 levels (a save's rows'
``logit_bias``), and a deeper one would only reach Python's recursion limit somewhere later (a
500). A query integer is ASCII digits (``str.isdigit`` also takes ``"²"``, which ``int``
refuses), at most 19 of them (int64; ``int`` of 5,000 digits raises).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from sampler.errors import InvalidInputError
from sampler.messages import shown

__all__ = ["MAX_BODY_BYTES", "MAX_DEPTH", "BodyTooLargeError", "query_int", "read_json"]

# the longest prompt (20,000 characters) beside the longest grammar (100,000,
# compile.MAX_GRAMMAR_CHARS) of plain text, with room for the settings: a grammar a line too
# long then gets the library's one-line error, not the body's
MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 32


class BodyTooLargeError(Exception):
    """A request body over :data:`MAX_BODY_BYTES`."""


async def read_json(request: Request) -> Any:
    """The request's JSON body, or :class:`InvalidInputError` / :class:`BodyTooLargeError`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        # a form or text/plain POST needs no CORS preflight: another site's page could
        # send one; a JSON one is preflighted, and this server answers no preflight
        raise InvalidInputError(
            f"Content-Type {kind or 'none'!r}: send the body as application/json"
        )
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLargeError
    too_deep = f"the request body is nested more than {MAX_DEPTH} levels deep"
    try:
        value = json.loads(body or b"null")
    except RecursionError:
        raise InvalidInputError(too_deep) from None
    except ValueError as error:
        raise InvalidInputError(f"the request body is not valid JSON: {error}") from None
    level, depth = [value], 0
    while level:  # breadth first, without recursion
        depth += 1
        if depth > MAX_DEPTH:
            raise InvalidInputError(too_deep)
        level = [
            child
            for item in level
            if isinstance(item, list | dict)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return value


def query_int(request: Request, name: str, default: int) -> int:
    """The query parameter ``name`` as an integer (``default`` when absent), ASCII digits only."""
    text = request.query_params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise InvalidInputError(
            f"{name} must be an integer of at most 19 digits 0-9, got {shown(text)}"
        )
    return int(text)
