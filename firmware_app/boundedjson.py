"""JSON from outside (pushed files, the screen's command bodies) with its size and nesting
bounded *before* the parser recurses: ``json.loads`` of 5,000 nested ``[`` raises
RecursionError (not ValueError), which escapes every ``except ValueError``.

``loads`` raises ``JsonRefused`` (a ValueError) for anything too big, too deep, not JSON,
or holding NaN/Infinity (Python's json takes them; JSON does not).
"""

from __future__ import annotations

import json
import re
from typing import Any

from firmware_app.catalogue import both

MAX_DEPTH = 32
# The characters that matter for nesting; a backslash takes the next character with it (an
# escaped quote does not end a string). One linear pass: brackets inside strings do not count.
_TOKENS = re.compile(r'[\[\]{}"]|\\.', re.DOTALL)


class JsonRefused(ValueError):
    """Not usable JSON; str() says why in plain English, ``message`` in zh-CN (runtime.json_*)."""

    def __init__(self, key: str, /, **values: Any) -> None:
        self.message, self.message_en = both(key, **values)
        super().__init__(self.message_en)


def depth(text: str) -> int:
    """Deepest [ / { nesting of a JSON text (outside strings; unbalanced text counts too)."""
    level = deepest = 0
    in_string = False
    for m in _TOKENS.finditer(text):
        ch = m.group(0)
        if ch == '"':
            in_string = not in_string
        elif in_string or len(ch) > 1:
            continue
        elif ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise JsonRefused("runtime.json_not_number", name=name)


def loads(data: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """Decode JSON text no longer than max_bytes and nested no deeper than max_depth."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > max_bytes:
            raise JsonRefused("runtime.json_too_many_bytes", n=len(data), most=max_bytes)
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("runtime.json_not_utf8") from None
    if not isinstance(data, str):
        raise JsonRefused("runtime.json_not_text")
    if len(data) > max_bytes:
        raise JsonRefused("runtime.json_too_many_chars", n=len(data), most=max_bytes)
    if depth(data) > max_depth:
        raise JsonRefused("runtime.json_too_deep", n=max_depth)
    try:
        return json.loads(data, parse_constant=_no_constant)
    except JsonRefused:
        raise
    except (ValueError, RecursionError) as exc:  # RecursionError: cannot happen after depth(), kept as a net
        raise JsonRefused("runtime.json_bad", reason=exc) from None
