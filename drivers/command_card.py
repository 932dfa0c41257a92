"""The laminated command card: codes a gloved volunteer scans instead of
touching the screen. Each code is the text the station classifies
(``SWABCMD:<name>`` or ``SWABCMD:<name>:<arg>``) followed by its signature
(``.<base64url Ed25519>``) over the text and ``<district>/<site>``: a card works only at
the site it was made for, and only when signed by an operator or district key of the
station file (firmware_app.commands.verify_card). The printer prints the card from
``command_card()`` and ``command_labels(key, district, site)``.

Making cards (district): ``swabkiosk probe printer TARGET --command-card --key operator.pem
--site dongguan/guancheng`` with the operator key whose public half is in the station
files' ``[authority] operator_keys``. See docs/security.md.
"""

from __future__ import annotations

from typing import Any

from drivers import said
from firmware_app.catalogue import both
from firmware_app.commands import printed_cards
from firmware_app.model import Label


# (label zh-CN, label English, scanned text) of each code on the card, in order: from the
# one command table (firmware_app/commands.py), which says which commands a card carries.
def commands(key: Any = None, district: str = "", site: str = "") -> list[tuple[str, str, str]]:
    return printed_cards(key, district, site)


def command_labels(key: Any = None, district: str = "", site: str = "") -> list[Label]:
    """One label per command: a QR of the signed command text, captioned zh/en (and the site)."""
    where = (f"{district}/{site}",) if key is not None else ()
    return [Label(kind="command_card", barcode="", lines=(zh, en, *where), qr=text)
            for zh, en, text in commands(key, district, site)]


def command_card(district: str = "", site: str = "") -> Label:
    """The whole card as one label: every command's caption (unsigned texts: not scannable).

    A label carries one code, so the printer prints ``command_labels()`` for a
    scannable card; this single label is the card's title and index."""
    title = said(both("printer.command_card_title")) + (f" — {district}/{site}" if district else "")
    lines = (title,) + tuple(f"{zh} / {en}: {text}" for zh, en, text in commands())
    return Label(kind="command_card", barcode="", lines=lines, qr="")
