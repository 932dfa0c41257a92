"""The laminated command card: codes a gloved volunteer scans instead of
touching the screen. Each code is the text the station classifies
(``SWABCMD:<name>`` or ``SWABCMD:<name>:<arg>``); the printer prints the card
from ``command_card()``.
"""

from __future__ import annotations

from firmware_app.commands import printed_cards
from firmware_app.model import Label

# (label zh-CN, label English, scanned text) of each code on the card, in order: from the
# one command table (firmware_app/commands.py), which says which commands a card carries.
def commands() -> list[tuple[str, str, str]]:
    return printed_cards()


def command_labels() -> list[Label]:
    """One label per command: a QR of the command text, captioned zh/en."""
    return [Label(kind="command_card", barcode="", lines=(zh, en), qr=text) for zh, en, text in commands()]


def command_card() -> Label:
    """The whole card as one label: the first command's QR, every command's caption.

    A label carries one code, so the printer prints ``command_labels()`` for a
    scannable card; this single label is the card's title and index."""
    lines = ("采样台指令卡 / command card",) + tuple(f"{zh} / {en}: {text}" for zh, en, text in commands())
    return Label(kind="command_card", barcode="", lines=lines, qr="")
