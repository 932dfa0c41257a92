"""Device drivers: sans-I/O codecs and the thin shells around them.

``status`` and ``error`` build the events every shell reports, from a catalogue
pair (``catalogue.both(key, ...)``, texts in ``firmware_app/catalogue/devices.py``):
the volunteer's words in both languages (``zh``, ``en``), apart from them the raw reason
for the technician panel (``raw``), and ``reason``, the technician's one line of both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from firmware_app.model import DeviceError, DeviceName, DeviceStatus

S = TypeVar("S")


def said(words: tuple[str, str]) -> str:
    """``(zh, en)`` as one line, zh-CN first: logs, ``status``, probe output."""
    return " / ".join(w for w in words if w)


def line(words: tuple[str, str], raw: str = "") -> str:
    """The technician's one line (logs, ``status``): the words, then the raw reason."""
    return said(words) + (f" ({raw})" if raw and any(words) else raw)


def status(device: DeviceName, ok: bool, words: tuple[str, str] = ("", ""), raw: str = "") -> DeviceStatus:
    return DeviceStatus(device, ok, line(words, raw), zh=words[0], en=words[1], raw=raw)


def error(device: str, words: tuple[str, str], raw: str = "") -> DeviceError:
    return DeviceError(device, line(words, raw), zh=words[0], en=words[1], raw=raw)


def why(exc: BaseException, limit: int = 120) -> str:
    """An exception as the technician panel shows it: its text (or type), bounded."""
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def settings_of(cls: type[S], given: S | Mapping[str, Any]) -> S:
    """A shell's settings as given, or built from its station-file table (``[devices.<name>]``;
    keys the settings do not have are ignored)."""
    if not isinstance(given, Mapping):
        return given
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]  # S: a settings dataclass
    return cls(**{k: v for k, v in given.items() if k in known})
