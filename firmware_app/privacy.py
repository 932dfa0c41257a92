"""The "never show a full ID number" rule, applied where effects leave the station.

``mask_effect`` masks, in every string of a Show, Say or CommandResult (message texts, the
detail/data dicts and lists at any depth, keys included), anything that looks like a
resident ID number, the way ``model.mask_id`` does (first 6 and last 4 kept):

* 18 characters ``[0-9]{17}[0-9X]`` whose check character is right (ISO 7064 MOD 11-2) and
  whose characters 7-14 are a real date: found anywhere, even inside a longer run of digits;
* 15 digits standing alone (the old first-generation number: 6 region, YYMMDD, 3 sequence)
  whose YYMMDD is a real date.

Digits of other scripts (full-width ``１``, Arabic-Indic ``٤``) and a lower-case or full-width
x count as their ASCII twins for finding a number: they show the same number to a reader.
Nothing else of the text changes. Persist and PrintLabel effects pass through unchanged
(records are data, not display; labels carry tube ids).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from typing import Any

from firmware_app.idnumber import CHECK_CHARS, WEIGHTS
from firmware_app.model import CommandResult, Say, Show

MAX_DEPTH = 32  # detail dicts deeper than this are replaced, not walked


def _ascii(ch: str) -> str:
    """One character as the ID-number alphabet sees it ("" if it is not in it)."""
    if "0" <= ch <= "9" or ch == "X":
        return ch
    if ch in "xＸｘ":
        return "X"
    if ch.isascii():
        return ""
    digit = unicodedata.decimal(ch, None)
    return str(digit) if digit is not None else ""


def _real_date(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def _is_id18(d: str) -> bool:
    if "X" in d[:17]:
        return False
    if CHECK_CHARS[sum(int(c) * w for c, w in zip(d[:17], WEIGHTS)) % 11] != d[17]:
        return False
    return _real_date(int(d[6:10]), int(d[10:12]), int(d[12:14]))


def _is_id15(d: str) -> bool:
    return "X" not in d and _real_date(1900 + int(d[6:8]), int(d[8:10]), int(d[10:12]))


def mask_ids(text: str) -> str:
    """text with every ID number in it masked (first 6 and last 4 characters kept)."""
    if not isinstance(text, str) or len(text) < 15:
        return text
    # Masking splits a run of digits: a piece may be a 15-digit number standing alone; again
    # until nothing changes (each pass only adds stars, so this ends).
    while (masked := _mask_once(text)) != text:
        text = masked
    return text


def _mask_once(text: str) -> str:
    norm = [_ascii(ch) for ch in text]
    if sum(1 for c in norm if c) < 15:
        return text
    hide: set[int] = set()
    n = len(text)
    # runs of ID-alphabet characters
    i = 0
    while i < n:
        if not norm[i]:
            i += 1
            continue
        j = i
        while j < n and norm[j]:
            j += 1
        run = "".join(norm[i:j])
        for k in range(len(run) - 17):
            if _is_id18(run[k : k + 18]):
                hide.update(range(i + k + 6, i + k + 14))
        if len(run) == 15 and _is_id15(run):
            hide.update(range(i + 6, i + 11))
        i = j
    if not hide:
        return text
    return "".join("*" if k in hide else ch for k, ch in enumerate(text))


def mask_value(value: Any, depth: int = 0) -> Any:
    """Strings masked inside dicts, lists and tuples (keys too); other values as they are."""
    if isinstance(value, str):
        return mask_ids(value)
    if depth >= MAX_DEPTH:
        return "…" if isinstance(value, (dict, list, tuple)) else value
    if isinstance(value, dict):
        return {mask_value(k, depth + 1): mask_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_value(v, depth + 1) for v in value)
    return value


def mask_effect(effect: Any) -> Any:
    """A Show/Say/CommandResult with every ID number masked in every string; others unchanged."""
    if isinstance(effect, (Show, Say, CommandResult)):
        changes = {f.name: mask_value(getattr(effect, f.name)) for f in dataclasses.fields(effect)
                   if isinstance(getattr(effect, f.name), (str, dict, list, tuple))}
        return dataclasses.replace(effect, **changes)
    return effect
