"""The one command table: every action a person or the district can ask of the kiosk.

Each entry says what the command is called, what its arguments are (name, type, whether
required, the allowed values), which argument a one-argument command card carries
(``SWABCMD:<name>:<arg>``), who may issue it (the handheld scanner's laminated card, the
screen, MQTT from the district, the CLI — the camera, which faces the public, never), whether
the screen asks for a confirm first, whether it is printed on the command card, and what it
does in zh-CN and English (its title and description are the catalogue's ``command.<name>``,
the card's captions ``command.card.<...>``). The station dispatches through it, the screen server and the MQTT
validator check arguments with it, the card printer prints from it, and docs/commands.md
is generated from it (``python -m firmware_app.commands > docs/commands.md``; a test checks
the file is current). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field
from typing import Any

from firmware_app.catalogue import both
from firmware_app.model import Words, words

SOURCES = ("scanner", "ui", "mqtt", "cli")
CARD = "scanner"  # a command card is scanned with the handheld scanner only


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # "str" | "int" | "list" | "object" | "bool"
    required: bool = False
    choices: tuple[str, ...] = ()
    max_len: int = 200
    en: str = ""


@dataclass(frozen=True)
class Spec:
    name: str
    zh: str
    en: str
    args: tuple[Arg, ...] = ()
    card_arg: str | None = None  # the argument SWABCMD:<name>:<arg> carries
    sources: tuple[str, ...] = ("scanner", "ui", "mqtt", "cli")
    confirm: bool = False  # the screen asks "are you sure?" first (destructive)
    cards: tuple[tuple[str, str, str], ...] = ()  # printed on the card: (zh, en, arg or "")
    handler: str = "station"  # "station"; "shell" (the daemon answers it: files); "uplink" (from the archive)
    args_by_name: dict[str, Arg] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "args_by_name", {a.name: a for a in self.args})


MODES = ("1", "10", "20", "household")
# the documents a person may show (named by the catalogue's person.id_type.<id_type>); none: a child, ...
ID_TYPES = ("resident_id", "passport", "hk_macau_permit", "taiwan_permit", "foreign_permanent", "none")
COLOURS = ("green", "yellow", "red")



def _spec(name: str, args: tuple[Arg, ...] = (), **rest: Any) -> Spec:
    """A command whose title and description are the catalogue's ``command.<name>``."""
    return Spec(name, *both(f"command.{name}"), args, **rest)


def _card(caption: str, arg: str = "") -> tuple[str, str, str]:
    """A code on the printed card: its captions (``command.card.<caption>``) and argument."""
    zh, en = both(f"command.card.{caption}")
    return zh, en, arg


_TABLE: tuple[Spec, ...] = (
    _spec("close_tube", (Arg("reason", "str", choices=("manual", "end_of_queue"), en="why (default manual)"),),
          card_arg="reason", cards=(_card("close_tube"),)),
    _spec("end_of_queue", cards=(_card("end_of_queue"),)),
    _spec("void_last", (Arg("reason", "str", en="why"),), sources=("scanner", "ui", "cli"), confirm=True,
          cards=(_card("void_last"),)),
    _spec("void", (Arg("record_id", "str", required=True, max_len=80, en="the sample's record id"), Arg("reason", "str", en="why")),
          card_arg="record_id", confirm=True),
    _spec("confirm", cards=(_card("confirm"),), sources=("scanner", "ui", "cli")),
    _spec("confirm_duplicate", sources=("scanner", "ui", "cli"),
          cards=(_card("confirm_duplicate"),)),
    _spec("confirm_single", sources=("scanner", "ui", "cli"), cards=(_card("confirm_single"),)),
    _spec("reject", cards=(_card("reject"),), sources=("scanner", "ui", "cli")),
    _spec("reject_duplicate", sources=("scanner", "ui", "cli")),
    _spec("cancel", sources=("scanner", "ui", "cli")),
    _spec("switch_mode", (Arg("mode", "str", required=True, choices=MODES, en="1, 10, 20 or household"),),
          card_arg="mode", confirm=True,
          cards=(_card("switch_mode_1", "1"), _card("switch_mode_10", "10"),
                 _card("switch_mode_20", "20"), _card("switch_mode_household", "household")), sources=("scanner", "ui", "cli")),
    _spec("sign_out", sources=("scanner", "ui", "cli"), confirm=True, cards=(_card("sign_out"),)),
    _spec("reprint_label", (Arg("ref", "str", max_len=40, en="tube or box id (default: the open tube, else the last used)"),
           Arg("tube_id", "str", max_len=40), Arg("box_id", "str", max_len=40)),
          card_arg="ref", cards=(_card("reprint_label"),)),
    _spec("replace_tube", (Arg("tube_id", "str", max_len=40, en="the broken tube (default: the open one, else the last used)"),
           Arg("new_tube_id", "str", max_len=40, en="the new tube (pre-labelled tubes: else scan it)"),
           Arg("reason", "str", en="why (default broken)")),
          card_arg="tube_id", confirm=True, cards=(_card("replace_tube"),)),
    _spec("open_box", sources=("scanner", "ui", "cli")),
    _spec("box_count", (Arg("count", "int", required=True, en="tubes counted"),), card_arg="count", sources=("scanner", "ui", "cli")),
    _spec("close_box", (Arg("box_id", "str", max_len=40),), cards=(_card("close_box"),), sources=("scanner", "ui", "cli")),
    _spec("handover_box", (Arg("courier", "str", required=True, max_len=40, en="courier name or id"), Arg("box_id", "str", max_len=40)),
          card_arg="courier", confirm=True, sources=("scanner", "ui", "cli")),
    _spec("manual_entry", (Arg("name", "str", required=True, max_len=40), Arg("id_type", "str", choices=ID_TYPES),
           Arg("id_number", "str", max_len=40), Arg("phone", "str", max_len=20), Arg("colour", "str", choices=COLOURS),
           Arg("key_person", "bool")),
          sources=("ui", "cli")),  # a person is swabbed at the table: never registered from afar
    _spec("open_view", (Arg("view", "str", required=True, choices=("manual", "box", "people"), en="manual, box or people"),),
          card_arg="view", sources=("scanner", "ui", "cli"),
          cards=(_card("open_view_manual", "manual"), _card("open_view_box", "box"),
                 _card("open_view_people", "people"))),
    _spec("push_volunteers", (Arg("volunteers", "list", required=True),), sources=("mqtt",)),
    _spec("resend", (Arg("from_seq", "int", required=True, en="first seq"), Arg("to_seq", "int", required=True, en="last seq")),
          sources=("mqtt",), handler="uplink"),
    _spec("push_config", (Arg("config", "str", required=True, max_len=64 * 1024),), sources=("mqtt",), handler="shell"),
)

COMMANDS: dict[str, Spec] = {spec.name: spec for spec in _TABLE}


class CommandError(ValueError):
    """Why the table refuses a command: ``key`` (``command.error.<...>``) and its texts."""

    def __init__(self, key: str, /, **values: Any) -> None:
        self.key = key
        self.message, self.message_en = words(key, **values)
        super().__init__(self.message_en)


def _ok_type(arg: Arg, value: Any) -> bool:
    if arg.kind == "str":
        return isinstance(value, str) and len(value) <= arg.max_len and (not arg.choices or value in arg.choices)
    if arg.kind == "int":  # a card carries text: ASCII digits only, never other scripts' digits
        if isinstance(value, str):
            return bool(re.fullmatch(r"[0-9]{1,6}", value))
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 999_999
    if arg.kind == "bool":
        return isinstance(value, bool) or value in (0, 1, "0", "1", "true", "false", "yes", "no")
    if arg.kind == "list":
        return isinstance(value, list)
    if arg.kind == "object":
        return isinstance(value, dict)
    return False


def check(name: Any, args: Any, source: str) -> Spec:
    """The spec of a command ``source`` may issue with these arguments; CommandError says why not."""
    if not isinstance(name, str) or name not in COMMANDS:
        shown = name if isinstance(name, str) and re.fullmatch(r"[a-z_]{1,40}", name) else "?"
        raise CommandError("command.error.unknown", name=shown)
    spec = COMMANDS[name]
    if source not in spec.sources:
        where = words(f"command.source.{source}") if source in SOURCES else Words(source, source)
        raise CommandError("command.error.source", title=Words(spec.zh, name), source=where)
    if not isinstance(args, dict):
        raise CommandError("command.error.args_not_object")
    for key, value in args.items():
        arg = spec.args_by_name.get(key)
        if arg is None:
            # a key of other scripts is not echoed on the screen (it may be anything)
            shown_key = key if isinstance(key, str) and key.isascii() else ""
            raise CommandError("command.error.unknown_arg", key=Words(shown_key and f"：{shown_key}", repr(key)), name=name)
        if isinstance(value, float) and not math.isfinite(value) or not _ok_type(arg, value):
            choices = f" ({', '.join(arg.choices)})" if arg.choices else ""
            raise CommandError("command.error.bad_arg", key=key, name=Words(spec.zh, name),
                               kind=words(f"command.kind.{arg.kind}"), choices=choices)
    for arg in spec.args:
        if arg.required and arg.name not in args:
            raise CommandError("command.error.missing_arg", arg=arg.name, name=name)
    return spec


def for_source(source: str) -> list[dict[str, Any]]:
    """The commands one source may issue, as JSON for the screen (name, texts, args, confirm)."""
    return [{"name": s.name, "zh": s.zh, "en": s.en, "confirm": s.confirm,
             "args": [{"name": a.name, "kind": a.kind, "required": a.required, "choices": list(a.choices)} for a in s.args]}
            for s in _TABLE if source in s.sources]


def card_text(spec: Spec, arg: str = "") -> str:
    return f"SWABCMD:{spec.name}" + (f":{arg}" if arg else "")


# A printed card is signed and bound to a site: ``SWABCMD:<name>[:<arg>].<base64url Ed25519
# signature>`` over ``SWABCMD:<name>[:<arg>]\n<district>/<site>``, by an operator key or a
# district key of the station file ([authority] operator_keys / district_keys). A code
# anyone can print (or show to the camera) does nothing; a card of another site neither.
CARD_SIG_LEN = 86  # base64url characters of a 64-byte signature


def card_message(text: str, district: str, site: str) -> bytes:
    return f"{text}\n{district}/{site}".encode("utf-8")


def sign_card(private_key: Any, text: str, district: str, site: str) -> str:
    """The scanned text of a signed card (``private_key``: an Ed25519PrivateKey)."""
    sig = private_key.sign(card_message(text, district, site))
    return f"{text}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode('ascii')}"


def verify_card(scanned: str, public_keys: Any, district: str, site: str) -> str:
    """The card's text without its signature, or CommandError: unsigned, or signed by no key
    this station trusts for this site. ``public_keys``: Ed25519PublicKey objects."""
    text, dot, sig = scanned.rpartition(".")
    if not dot or len(sig) != CARD_SIG_LEN or not re.fullmatch(r"[A-Za-z0-9_-]+", sig):
        raise CommandError("command.error.card_unsigned")
    try:
        raw = base64.urlsafe_b64decode(sig + "==")
    except (binascii.Error, ValueError):
        raise CommandError("command.error.card_unreadable") from None
    message = card_message(text, district, site)
    for key in public_keys:
        try:
            key.verify(raw, message)
            return text
        except Exception:  # InvalidSignature: try the next key
            continue
    raise CommandError("command.error.card_forged")


def printed_cards(private_key: Any = None, district: str = "", site: str = "") -> list[tuple[str, str, str]]:
    """(zh, en, scanned text) of every command printed on the laminated card, in table order;
    signed for ``district/site`` when a private key is given."""
    cards = [(zh, en, card_text(spec, arg)) for spec in _TABLE for zh, en, arg in spec.cards]
    if private_key is None:
        return cards
    return [(zh, en, sign_card(private_key, text, district, site)) for zh, en, text in cards]


def markdown() -> str:
    """docs/commands.md, generated from the table."""
    lines = ["# Commands", "", "Generated from `firmware_app/commands.py` (`python -m firmware_app.commands > docs/commands.md`).",
             "The camera never issues a command: it faces the public. A command card is scanned with the handheld scanner.",
             "", "| command | what it does | arguments | card | from | confirm |", "|---|---|---|---|---|---|"]
    for s in _TABLE:
        args = ", ".join(f"`{a.name}`" + ("*" if a.required else "") + (f" ({'/'.join(a.choices)})" if a.choices else "")
                         for a in s.args) or "—"
        card = f"`SWABCMD:{s.name}" + (f":<{s.card_arg}>`" if s.card_arg else "`") if "scanner" in s.sources else "—"
        lines.append(f"| `{s.name}` | {s.zh} / {s.en} | {args} | {card} | {', '.join(s.sources)} | {'yes' if s.confirm else ''} |")
    lines += ["", "`*` required. Printed on the command card: " + ", ".join(f"{zh} (`{t}`)" for zh, _, t in printed_cards()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
