"""The laminated command card: codes a gloved volunteer scans instead of
touching the screen. Each code is the text the station classifies
(``SWABCMD:<name>`` or ``SWABCMD:<name>:<arg>``); the printer prints the card
from ``command_card()``.
"""

from __future__ import annotations

from firmware_app.model import Label

# (label zh-CN, label English, scanned text), in the order printed on the card
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("封管（本管结束）", "close tube", "SWABCMD:close_tube"),
    ("撤销上一人", "void last entry", "SWABCMD:void_last"),
    ("确认重复采样", "confirm duplicate", "SWABCMD:confirm_duplicate"),
    ("补打标签", "reprint label", "SWABCMD:reprint_label"),
    ("队列结束", "end of queue", "SWABCMD:end_of_queue"),
    ("切换单采单检", "switch to 1 per tube", "SWABCMD:switch_mode:1"),
    ("切换10混1", "switch to 10 per tube", "SWABCMD:switch_mode:10"),
    ("切换20混1", "switch to 20 per tube", "SWABCMD:switch_mode:20"),
    ("切换一户一管", "switch to household", "SWABCMD:switch_mode:household"),
    ("签退", "sign out", "SWABCMD:sign_out"),
)


def command_labels() -> list[Label]:
    """One label per command: a QR of the command text, captioned zh/en."""
    return [Label(kind="command_card", barcode="", lines=(zh, en), qr=text) for zh, en, text in COMMANDS]


def command_card() -> Label:
    """The whole card as one label: the first command's QR, every command's caption.

    A label carries one code, so the printer prints ``command_labels()`` for a
    scannable card; this single label is the card's title and index."""
    lines = ("采样台指令卡 / command card",) + tuple(f"{zh} / {en}: {text}" for zh, en, text in COMMANDS)
    return Label(kind="command_card", barcode="", lines=lines, qr="")
