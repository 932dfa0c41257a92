"""Why a signed code or a key is refused (firmware_app/qr.py raises these; ``qr.QrError`` and the
rest are the names callers use). ``reason`` is the zh-CN text, ``reason_en`` the English, both
from firmware_app/catalogue/codes.py; ``raw`` (codes only) is the failed check for the technician.
"""

from __future__ import annotations


class Refused(ValueError):
    """``reason`` (zh-CN) and ``reason_en`` for a person; ``str()`` is the English."""

    def __init__(self, reason: str, reason_en: str):
        super().__init__(reason_en)
        self.reason = reason
        self.reason_en = reason_en


class QrError(Refused):
    """A code that must not be accepted; ``reason`` (zh) / ``reason_en`` for the screen."""

    code = "invalid"

    def __init__(self, reason: str, reason_en: str, raw: str = ""):
        super().__init__(reason, reason_en)
        self.raw = raw  # for the technician: which check failed, the key id


class QrOversized(QrError):
    code = "oversized"


class QrMalformed(QrError):
    """Truncated, garbage, or not an SWB1 code at all."""

    code = "malformed"


class QrUnknownKey(QrError):
    code = "unknown_key"


class QrForged(QrError):
    code = "forged"


class QrExpired(QrError):
    code = "expired"


class QrNotYetValid(QrError):
    code = "not_yet_valid"


class QrBadIdNumber(QrError):
    code = "bad_id_number"


class KeyTextError(Refused):
    """A key that is not an Ed25519 key (not a QrError: a station file's fault, not a code's)."""
