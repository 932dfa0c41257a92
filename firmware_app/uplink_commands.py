"""District commands as they arrive (cmd/<name>): bounded, parsed and checked against the one
command table (firmware_app/commands.py, its "mqtt" source) before they reach the station,
which validates their meaning. Pure: bytes in, a Command or a refusal (zh, en) out."""

from __future__ import annotations

import json
import re

from firmware_app import commands
from firmware_app.catalogue import both
from firmware_app.model import Command

MAX_COMMAND_BYTES = 256 * 1024
MAX_COMMAND_DEPTH = 32  # JSON nesting, checked on the raw bytes before json.loads (no RecursionError)
_TXN = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # fullmatch: "abc\n" is not a txn

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = bytes.maketrans(b"", b"")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(payload: bytes, limit: int = MAX_COMMAND_DEPTH) -> int:
    """The nesting depth of a JSON text, from its bytes (strings skipped), without parsing it;
    stops counting past ``limit`` (returns limit + 1). Malformed text gets a depth too: json.loads
    refuses it afterwards."""
    depth = top = 0
    for b in _STRING.sub(b'""', payload).translate(_BRACKETS, _NOT_BRACKETS):
        if b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > top:
                top = depth
                if top > limit:
                    return top
        elif depth:
            depth -= 1
    return top


def validate_command(name: str, payload: object) -> tuple[Command | None, str | None, tuple[str, str]]:
    """Check a cmd/<name> message. Returns (command, txn, ("", "")) or (None, txn, (zh, en)).
    Size and nesting depth are bounded before anything is parsed."""
    txn = None
    if not isinstance(payload, (bytes, bytearray)):
        return None, None, both("uplink.cmd_not_bytes")
    if len(payload) > MAX_COMMAND_BYTES:
        return None, None, both("uplink.cmd_too_large", limit=MAX_COMMAND_BYTES)
    if json_depth(bytes(payload)) > MAX_COMMAND_DEPTH:
        return None, None, both("uplink.cmd_too_deep", limit=MAX_COMMAND_DEPTH)
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None, both("uplink.cmd_not_json")
    if not isinstance(body, dict):
        return None, None, both("uplink.cmd_not_object")
    raw_txn = body.get("txn")
    if isinstance(raw_txn, str) and _TXN.fullmatch(raw_txn):
        txn = raw_txn
    else:
        return None, None, both("uplink.cmd_bad_txn")
    args = body.get("args", {})
    try:
        spec = commands.check(name, args, "mqtt")
    except commands.CommandError as exc:
        return None, txn, (exc.message, exc.message_en)
    # integers come as JSON numbers over MQTT (a card's text digits are the scanner's form)
    args = {k: int(v) if spec.args_by_name[k].kind == "int" else v for k, v in args.items()}
    return Command(name=name, args=args, source="mqtt", txn=txn), txn, ("", "")
