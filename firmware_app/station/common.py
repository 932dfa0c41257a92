"""What every rule module shares: refusals, the step being built, command cards and small texts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from firmware_app import commands
from firmware_app.model import Command, PrintLabel, Show, mask_id, mask_name

COMMAND_PREFIX = "SWABCMD:"
ID_TYPES = commands.ID_TYPES
COLOUR_ZH = {"green": "绿码", "yellow": "黄码", "red": "红码", None: "未出示健康码"}
SINGLE_ZH = {"red_code": "红码", "yellow_code": "黄码", "key_person": "重点人群"}
DEVICE_ZH = {"idcard": "身份证读卡器", "scanner": "扫码枪", "camera": "摄像头", "printer": "打印机", "broker": "区平台", "store": "存储"}
CONFIRMS = ("confirm", "confirm_duplicate", "confirm_single")


class Refused(Exception):
    """A step that cannot happen; raised before the step emits any record."""

    def __init__(self, message: str, message_en: str, **detail: Any):
        super().__init__(message_en)
        self.message = message
        self.message_en = message_en
        self.detail = detail


class MissingFacts(RuntimeError):
    """The shell handed an event without the facts ``lookups`` asked for (a shell bug)."""


@dataclass
class _Step:
    records: list[dict] = field(default_factory=list)
    prints: list[PrintLabel] = field(default_factory=list)
    show: Show | None = None
    says: list[str] = field(default_factory=list)
    result: dict | None = None  # data for a CommandResult


def _who(record: dict | None) -> str:
    """A stored sample's person, masked; "?" when the store no longer has the record."""
    if record is None:
        return "?"
    number = record["id_number"] if record.get("id_type") != "none" else ""
    return f"{mask_name(record['name'])} {mask_id(number)}"


def spoken_reason(message: str) -> str:
    """A refusal as a short spoken sentence: its first clause or two, no brackets, so the
    volunteer hears *why* (“二维码无效：签名无效”), not only “错误”."""
    text = re.sub(r"（[^）]*）|\([^)]*\)", "", message)
    parts = [p.strip() for p in re.split(r"[，；。,;]", text) if p.strip()]
    if not parts:
        return "错误"
    said = parts[0]
    if len(parts) > 1 and len(said) + len(parts[1]) <= 22:
        said += "，" + parts[1]
    return said[:40]


def _mode_zh(mode: str) -> str:
    return {"1": "单采单检", "10": "10混1", "20": "20混1", "household": "一户一管"}[mode]


def _parse_card(text: str, source: str, keys: Any = (), where: tuple[str, str] = ("", "")) -> Command:
    """SWABCMD:<name>[:<arg>].<signature> -> the Command a scanned card means (the argument
    goes in the key the command table names). Only the handheld scanner may issue one: the
    camera faces the public, and anyone can hold up a printed code. The card must be signed
    for this site by an operator or district key (firmware_app.commands.verify_card)."""
    if source != commands.CARD:
        raise Refused("操作卡只能用扫码枪扫描（摄像头不接受操作卡）", "command cards are accepted from the handheld scanner only, never the camera")
    try:
        text = commands.verify_card(text, keys, *where)
    except commands.CommandError as exc:
        raise Refused(exc.message, exc.message_en) from None
    name, _, arg = text[len(COMMAND_PREFIX) :].partition(":")
    name = name.strip()
    if not re.fullmatch(r"[a-z_]{1,40}", name) or name not in commands.COMMANDS:
        raise Refused("操作卡无法识别", "command card not recognised")
    card_arg = commands.COMMANDS[name].card_arg
    args = {card_arg: arg.strip()} if arg and card_arg else {}
    return Command(name, args, "scanner")
