"""JSON that arrives from outside (REST bodies, Stripe webhooks): the limits every endpoint shares.

Python's `json` recurses once per nesting level, so a body nested about 1,000 deep raised RecursionError (a 500)
while parsing, and a value a little shallower parsed but raised it again when a JSONField encoded it for saving.
orjson parses iteratively up to 1,024 levels and refuses NaN, invalid UTF-8 and lone surrogates, none of which
PostgreSQL can store; on top of that a body may nest at most `MAX_JSON_DEPTH` levels (segment conditions, the
deepest legitimate input, need under 20) and may hold no NUL character in a key or string, since PostgreSQL's
text and jsonb cannot store U+0000.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_JSON_DEPTH = 64
TOO_DEEP = f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels."
ORJSON_DEPTH_ERROR = "depth limit exceeded"  # what orjson says past its own 1,024 levels


class JSONRejected(ValueError):
    """JSON that cannot be accepted; the message says why, in words a client can act on."""


def json_value_problem(value: Any) -> str | None:
    """Why an already parsed JSON value cannot be accepted — nested too deep, or a NUL in a key or string — or
    None. Walks the value without recursion, so any depth orjson accepts is safe to check."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "The JSON contains a NUL character (\\u0000), which cannot be stored."
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return TOO_DEEP
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
    return None


def json_load(data: bytes | str) -> Any:
    """Parse JSON from outside, raising JSONRejected when it is malformed or breaks the limits above."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if error.msg == ORJSON_DEPTH_ERROR:
            raise JSONRejected(TOO_DEEP) from error
        raise JSONRejected(f"JSON parse error - {error}") from error
    problem = json_value_problem(value)
    if problem is not None:
        raise JSONRejected(problem)
    return value
