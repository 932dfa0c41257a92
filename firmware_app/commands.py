"""The one command table: every action a person or the district can ask of the kiosk.

Each entry says what the command is called, what its arguments are (name, type, whether
required, the allowed values), which argument a one-argument command card carries
(``SWABCMD:<name>:<arg>``), who may issue it (the handheld scanner's laminated card, the
screen, MQTT from the district, the CLI — the camera, which faces the public, never), whether
the screen asks for a confirm first, whether it is printed on the command card, and what it
does in zh-CN and English. The station dispatches through it, the screen server and the MQTT
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
# resident ID, passport, 港澳居民来往内地通行证, 台湾居民来往大陆通行证, 外国人永久居留身份证, none (a child, ...)
ID_TYPES = ("resident_id", "passport", "hk_macau_permit", "taiwan_permit", "foreign_permanent", "none")
COLOURS = ("green", "yellow", "red")

_TABLE: tuple[Spec, ...] = (
    Spec("close_tube", "封管（本管结束）", "close the open tube early",
         (Arg("reason", "str", choices=("manual", "end_of_queue"), en="why (default manual)"),),
         card_arg="reason", cards=(("封管（本管结束）", "close tube", ""),)),
    Spec("end_of_queue", "队列结束", "close the open tube: the queue has ended", cards=(("队列结束", "end of queue", ""),)),
    Spec("void_last", "撤销上一人", "void the latest registration (a void is a record; the slot stays used)",
         (Arg("reason", "str", en="why"),), sources=("scanner", "ui", "cli"), confirm=True,
         cards=(("撤销上一人", "void last entry", ""),)),
    Spec("void", "作废指定登记", "void one sample by its record id (today's, before its box leaves)",
         (Arg("record_id", "str", required=True, max_len=80, en="the sample's record id"), Arg("reason", "str", en="why")),
         card_arg="record_id", confirm=True),
    Spec("confirm", "确认", "confirm what is pending (a duplicate, a single tube, a tube replacement)",
         cards=(("确认", "confirm", ""),), sources=("scanner", "ui", "cli")),
    Spec("confirm_duplicate", "确认重复采样", "confirm a same-day duplicate", sources=("scanner", "ui", "cli"),
         cards=(("确认重复采样", "confirm duplicate", ""),)),
    Spec("confirm_single", "确认单管", "confirm a separate single tube (yellow/red code, key person)",
         sources=("scanner", "ui", "cli"), cards=(("确认单管", "confirm single tube", ""),)),
    Spec("reject", "取消", "drop the pending person: nothing registered", cards=(("取消（不登记）", "reject", ""),), sources=("scanner", "ui", "cli")),
    Spec("reject_duplicate", "取消重复", "drop a pending duplicate", sources=("scanner", "ui", "cli")),
    Spec("cancel", "取消", "drop whatever is pending", sources=("scanner", "ui", "cli")),
    Spec("switch_mode", "切换混采模式", "switch the pooling mode (closes the open tube)",
         (Arg("mode", "str", required=True, choices=MODES, en="1, 10, 20 or household"),),
         card_arg="mode", confirm=True,
         cards=(("切换单采单检", "switch to 1 per tube", "1"), ("切换10混1", "switch to 10 per tube", "10"),
                ("切换20混1", "switch to 20 per tube", "20"), ("切换一户一管", "switch to household", "household")), sources=("scanner", "ui", "cli")),
    Spec("sign_out", "签退", "sign the volunteer out (closes the open tube, records the service time)",
         sources=("scanner", "ui", "cli"), confirm=True, cards=(("签退", "sign out", ""),)),
    Spec("reprint_label", "补打标签", "print a tube's or a closed box's label again, marked 补打",
         (Arg("ref", "str", max_len=40, en="tube or box id (default: the open tube, else the last used)"),
          Arg("tube_id", "str", max_len=40), Arg("box_id", "str", max_len=40)),
         card_arg="ref", cards=(("补打标签", "reprint label", ""),)),
    Spec("replace_tube", "更换试管", "a broken or spilled tube: its people move to a new tube in one step",
         (Arg("tube_id", "str", max_len=40, en="the broken tube (default: the open one, else the last used)"),
          Arg("new_tube_id", "str", max_len=40, en="the new tube (pre-labelled tubes: else scan it)"),
          Arg("reason", "str", en="why (default broken)")),
         card_arg="tube_id", confirm=True, cards=(("更换试管（破损/洒漏）", "replace broken tube", ""),)),
    Spec("open_box", "开箱", "open a transport box (boxes also open by themselves)", sources=("scanner", "ui", "cli")),
    Spec("box_count", "清点", "the packer's count of the tubes in hand",
         (Arg("count", "int", required=True, en="tubes counted"),), card_arg="count", sources=("scanner", "ui", "cli")),
    Spec("close_box", "封箱", "close the box (the count must match); prints its label and manifest",
         (Arg("box_id", "str", max_len=40),), cards=(("封箱", "close box", ""),), sources=("scanner", "ui", "cli")),
    Spec("handover_box", "交接转运", "hand the oldest closed box to a courier",
         (Arg("courier", "str", required=True, max_len=40, en="courier name or id"), Arg("box_id", "str", max_len=40)),
         card_arg="courier", confirm=True, sources=("scanner", "ui", "cli")),
    Spec("manual_entry", "手工登记", "register a person with neither ID card nor code (marked manual)",
         (Arg("name", "str", required=True, max_len=40), Arg("id_type", "str", choices=ID_TYPES),
          Arg("id_number", "str", max_len=40), Arg("phone", "str", max_len=20), Arg("colour", "str", choices=COLOURS),
          Arg("key_person", "bool")),
         sources=("ui", "cli")),  # a person is swabbed at the table: never registered from afar
    Spec("open_view", "打开屏幕页面", "open a page on the screen: the manual-entry form, the box view, the tube's people",
         (Arg("view", "str", required=True, choices=("manual", "box", "people"), en="manual, box or people"),),
         card_arg="view", sources=("scanner", "ui", "cli"),
         cards=(("手工登记（打开表单）", "manual entry (opens the form)", "manual"), ("转运箱（清点/封箱/交接）", "box view", "box"),
                ("本管人员（作废）", "tube people (void)", "people"))),
    Spec("push_volunteers", "推送志愿者名单", "replace the certified volunteer list",
         (Arg("volunteers", "list", required=True),), sources=("mqtt",)),
    Spec("resend", "重发记录", "republish stored records by seq range from the archive, whatever their ack state",
         (Arg("from_seq", "int", required=True, en="first seq"), Arg("to_seq", "int", required=True, en="last seq")),
         sources=("mqtt",), handler="uplink"),
    Spec("push_config", "推送站点配置", "replace the station file (applied by the daemon, then it restarts)",
         (Arg("config", "str", required=True, max_len=64 * 1024),), sources=("mqtt",), handler="shell"),
)

COMMANDS: dict[str, Spec] = {spec.name: spec for spec in _TABLE}


class CommandError(ValueError):
    def __init__(self, message: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message, self.message_en = message, message_en


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
        raise CommandError(f"未知操作：{shown}", f"unknown command {shown!r}")
    spec = COMMANDS[name]
    if source not in spec.sources:
        raise CommandError(f"“{spec.zh}”不能从这里发出", f"{name} cannot be issued from the {source}")
    if not isinstance(args, dict):
        raise CommandError("参数必须是对象", "args must be an object")
    for key, value in args.items():
        arg = spec.args_by_name.get(key)
        if arg is None:
            raise CommandError(f"未知参数：{key}" if isinstance(key, str) and key.isascii() else "未知参数",
                               f"unknown argument {key!r} for {name}")
        if isinstance(value, float) and not math.isfinite(value) or not _ok_type(arg, value):
            choices = f" ({', '.join(arg.choices)})" if arg.choices else ""
            raise CommandError(f"参数 {key} 无效{choices}", f"argument {key!r} of {name} is not a valid {arg.kind}{choices}")
    for arg in spec.args:
        if arg.required and arg.name not in args:
            raise CommandError(f"缺少参数：{arg.name}", f"{name} needs argument {arg.name!r}")
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
        raise CommandError("操作卡未签名（请使用本站点签发的操作卡）", "unsigned command card: use a card signed for this site")
    try:
        raw = base64.urlsafe_b64decode(sig + "==")
    except (binascii.Error, ValueError):
        raise CommandError("操作卡签名无效", "command card signature unreadable") from None
    message = card_message(text, district, site)
    for key in public_keys:
        try:
            key.verify(raw, message)
            return text
        except Exception:  # InvalidSignature: try the next key
            continue
    raise CommandError("操作卡签名无效（伪造或非本站点的卡）", "command card not signed for this site (forged or another site's)")


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
