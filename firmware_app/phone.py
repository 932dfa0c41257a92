"""Phone numbers a sampling code or a manual entry may carry (issue 13, finding 8). Pure.

Accepted, spaces and hyphens between digits allowed and removed:
* China mainland mobile: 11 digits ``1[3-9]xxxxxxxxx``, optionally ``+86``/``0086``/``86`` before;
* China mainland landline: area code ``0`` + 2-3 digits, then a 7-8 digit number
  (``010-12345678``, ``0769 2222 3333``), optionally with ``+86`` (the 0 then dropped);
* international (E.164): ``+`` (or ``00``) then a country code and number, 8-15 digits in all.
Anything else (letters, control characters, formula text, 40 digits) is refused.
"""

from __future__ import annotations

import re

MAX_LEN = 20
_MOBILE = re.compile(r"(?:\+86|0086|86)?(1[3-9][0-9]{9})")
_LANDLINE = re.compile(r"(?:(?:\+86|0086)(?=[1-9])|(?=0))0?([1-9][0-9]{1,2})([2-9][0-9]{6,7})")
_INTERNATIONAL = re.compile(r"(?:\+|00)([1-9][0-9]{7,14})")


def normalise(text: str) -> str | None:
    """The number without separators, or None when it is not a phone number ("" stays "")."""
    if not isinstance(text, str) or len(text) > MAX_LEN:
        return None
    text = text.strip()
    if text == "":
        return ""
    if not re.fullmatch(r"\+?[0-9][0-9 -]*[0-9]", text) or "  " in text or "--" in text:
        return None
    digits = text.replace(" ", "").replace("-", "")
    for pattern in (_MOBILE, _LANDLINE, _INTERNATIONAL):
        if pattern.fullmatch(digits):
            return digits
    return None


def valid(text: str) -> bool:
    return normalise(text) is not None
