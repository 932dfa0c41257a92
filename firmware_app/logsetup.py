"""Logging to stdout (the journal under systemd) with ID numbers masked.

Every module already logs masked values; the filter here is the safety net: any
18-character resident ID number that slips into a message, an argument or a
traceback is masked (first 6 and last 4 kept) before it is written.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from firmware_app.model import mask_id

# 17 digits + digit/X, not part of a longer run of digits (record ids, timestamps).
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{16}[\dXx](?![0-9A-Za-z])")


def mask_ids(text: str) -> str:
    return ID_NUMBER.sub(lambda m: mask_id(m.group(0)), text)


class IdMaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string still gets logged, masked
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = mask_ids(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_ids(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_ids(record.stack_info)
        return True


def setup(level: int = logging.INFO, stream=None) -> logging.Handler:
    """Root logging to stdout; the journal adds its own timestamps."""
    handler = logging.StreamHandler(stream or sys.stdout)
    under_journal = bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journal else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    handler.addFilter(IdMaskFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
