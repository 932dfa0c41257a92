"""Chinese resident ID numbers (GB 11643, 18 characters): check before anyone is registered.

6-digit region code, 8-digit birth date, 3-digit sequence, 1 check character
(ISO 7064 MOD 11-2). Pure: the caller passes today's date (the core has no clock).
"""

from __future__ import annotations

import datetime as dt

from firmware_app.catalogue import both

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"  # indexed by sum mod 11

# First two digits: province-level codes in use (GB/T 2260) plus 71 Taiwan, 81/82 HK/Macau
# (residence permits) and 91 (reserved for foreign permanent residents' old series).
PROVINCES = frozenset(
    [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46]
    + [50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 91]
)


class IdNumberError(ValueError):
    """An ID number that must not be registered; ``reason`` (zh) and ``reason_en`` say why."""

    def __init__(self, reason: str, reason_en: str):
        super().__init__(reason_en)
        self.reason = reason
        self.reason_en = reason_en


def check_char(first17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits."""
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def validate(number: str, today: dt.date) -> str:
    """Return the normalised number (upper-case X) or raise IdNumberError."""
    number = number.strip().upper()
    if len(number) != 18:
        raise IdNumberError(*both("idnumber.length", length=len(number)))
    if not (number[:17].isascii() and number[:17].isdigit()) or number[17] not in "0123456789X":
        raise IdNumberError(*both("idnumber.characters"))
    if int(number[:2]) not in PROVINCES:
        raise IdNumberError(*both("idnumber.region", region=number[:2]))
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberError(*both("idnumber.no_such_date", date=number[6:14])) from None
    if birth.year < 1900 or birth > today:
        raise IdNumberError(*both("idnumber.implausible_date", date=number[6:14]))
    if check_char(number[:17]) != number[17]:
        raise IdNumberError(*both("idnumber.check_char"))
    return number


def is_valid(number: str, today: dt.date) -> bool:
    try:
        validate(number, today)
    except IdNumberError:
        return False
    return True
