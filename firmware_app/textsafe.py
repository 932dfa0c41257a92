"""Text from the table (names typed in, fields of a scanned code) made safe for spreadsheets.

* ``strip_controls``: control characters (C0, DEL, C1) and the Unicode bidirectional
  overrides are removed: a name cannot carry a line break into a CSV row, reorder what
  the district reads, or break an XLSX file (which forbids most of them).
* ``csv_cell``: then a leading ``= + - @`` (and TAB, CR, LF, should any survive) is
  escaped with a ``'`` so Excel, LibreOffice and Sheets show the text instead of running
  it as a formula (CSV injection, OWASP).
"""

from __future__ import annotations

import re

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r", "\n")


def strip_controls(text: str) -> str:
    return _CONTROLS.sub("", text)


def csv_cell(value) -> str:
    if value is None:
        return ""
    text = value if type(value) is str else str(value)
    if not text or (text[0] not in FORMULA_LEAD and text.isprintable()):
        return text  # the common case, checked in C: no control or format character anywhere
    if text[:1] in FORMULA_LEAD:
        text = "'" + text
    text = strip_controls(text)
    return "'" + text if text[:1] in FORMULA_LEAD else text
