"""What every rule module shares: the facade's attributes and helpers (``Rules``), refusals,
the step being built, texts from the catalogue (``model.words``, re-exported) and command cards."""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from firmware_app import commands
from firmware_app.catalogue import zh as _zh
from firmware_app.model import (
    RECORD_KINDS,
    RECORD_SCHEMA,
    Command,
    Facts,
    Now,
    PrintLabel,
    Show,
    Words,
    mask_id,
    mask_name,
    record_id,
    words,
)
from firmware_app.station.state import TableState

if TYPE_CHECKING:
    from firmware_app import qr
    from firmware_app import volunteers as vol
    from firmware_app.config import Config

COMMAND_PREFIX = "SWABCMD:"
ID_TYPES = commands.ID_TYPES
CONFIRMS = ("confirm", "confirm_duplicate", "confirm_single")
Level = Literal["ok", "confirm", "error", "info"]


def joined(*parts: Words) -> Words:
    """Catalogue pieces one after the other (each piece carries its own punctuation)."""
    return Words("".join(p.zh for p in parts), "".join(p.en for p in parts))


def listed(parts: list[Words]) -> Words:
    """Catalogue clauses as one list, with each language's separator."""
    zh_sep, en_sep = words("station.list_separator")
    return Words(zh_sep.join(p.zh for p in parts), en_sep.join(p.en for p in parts))


def colour_words(colour: str | None) -> Words:
    return words(f"person.colour.{colour or 'none'}")


def single_words(reason: str) -> Words:
    return words(f"person.single.{reason}")


def mode_words(mode: str) -> Words:
    return words(f"tube.mode.{mode}")


def device_words(device: str) -> Words:
    try:
        return words(f"device.{device}")
    except KeyError:  # a device the catalogue does not name: its own name, in both
        return Words(device, device)


class Refused(Exception):
    """A step that cannot happen; raised before the step emits any record. ``said`` is the
    catalogue's text of the reason (``words(key, ...)``), ``detail`` goes to the Show."""

    def __init__(self, said: Words, **detail: Any):
        super().__init__(said.en)
        self.message, self.message_en = said
        self.detail = detail


class MissingFacts(RuntimeError):
    """The shell handed an event without the facts ``lookups`` asked for (a shell bug)."""


@dataclass
class _Step:
    records: list[dict[str, Any]] = field(default_factory=list)
    prints: list[PrintLabel] = field(default_factory=list)
    show: Show | None = None
    says: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None  # data for a CommandResult


class Rules(ABC):
    """What the facade (``core.Station``) holds and what every rule module may call: the
    attributes, the helpers that build a step (emit a record, show, say), and the rules one
    concern asks of another (declared here, written in their own module)."""

    cfg: Config
    state: TableState
    _device_id: str
    _where: dict[str, str]
    _site_name: str
    _tz: dt.tzinfo
    _keys: qr.Keys
    _card_keys: tuple[Any, ...]
    _card_where: tuple[str, str]
    _max_code_age_s: float
    _source: str
    _prefix: str
    _tube_re: re.Pattern[str]
    _box_capacity: int
    _default_mode: str
    _volunteers: dict[str, vol.Volunteer]
    _pending: dict[str, Any] | None  # not a record: lost on restart, nothing registered
    _show: Show
    _devices: dict[str, dict[str, Any]]
    _now: Now
    _step: _Step
    _facts: Facts
    _person_cache: tuple[Any, Any]  # (event, person or Refused) of lookups()
    _cert: qr.OperatorCert | None  # the certificate the cached event carried

    # ------------------------------------------------------------- helpers
    def _fact(self, table: Mapping[Any, Any], key: Any) -> Any:
        if key not in table:
            raise MissingFacts(f"the shell gave no facts for {key!r} (call lookups() and store.facts() first)")
        return table[key]

    def _local(self, at: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(at, self._tz)

    def _today(self) -> dt.date:
        return self._local(self._now.at).date()

    def _emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        assert kind in RECORD_KINDS, kind
        seq = int(self.state.table["seq"]) + 1
        op = self.state.table["operator"]
        record = {
            "schema": RECORD_SCHEMA,
            "record_id": record_id(self._device_id, seq),
            "seq": seq,
            "kind": kind,
            "device_id": self._device_id,
            **self._where,
            "at": self._local(self._now.at).isoformat(timespec="milliseconds"),
            "clock_synced": self._now.synced,
            "operator": op["cert_id"] if op else None,
            **fields,
        }
        self.state.apply(record)
        self._step.records.append(record)
        return record

    def _next_id(self, prefix: str, width: int) -> str:
        # never from an earlier day's stem than the records have reached: a clock set back
        # (a Pi has no RTC) must not hand out that day's tube numbers again
        day = self._local(self._now.at).strftime("%y%m%d")
        latest = self.state.table["day"]
        if latest and latest[2:4] + latest[5:7] + latest[8:10] > day:
            day = latest[2:4] + latest[5:7] + latest[8:10]
        return self.state.next_id(prefix, day, width)

    def _show_(self, level: Level, message: str, message_en: str, **detail: Any) -> None:
        """What the screen shows after this step: ``self._show_(level, *words(key, ...), **detail)``."""
        self._step.show = Show(level, message, message_en, detail)

    def _say(self, text: str) -> None:
        self._step.says.append(text)

    def _speak(self, key: str, /, **values: Any) -> None:
        """Say the zh-CN text of ``key`` (a ``*_spoken`` key of the catalogue)."""
        self._say(words(key, **values).zh)

    # ------------------------------------------------------------- one concern asks another
    @abstractmethod
    def _on_command(self, command: Command) -> None: ...  # core

    @abstractmethod
    def _require_operator(self) -> dict[str, Any]: ...  # shifts

    @abstractmethod
    def _next_step(self) -> Words: ...  # shifts

    @abstractmethod
    def _pending_view(self) -> dict[str, Any] | None: ...  # people

    @abstractmethod
    def _register(self, person: dict[str, Any], source: str, duplicate_of: str | None,
                  single_tube: str | None) -> None: ...  # people

    @abstractmethod
    def _open_tube(self, tube_id: str, single_reason: str | None) -> str: ...  # tubes

    @abstractmethod
    def _close_tube(self, reason: str, tube_id: str | None = None) -> None: ...  # tubes

    @abstractmethod
    def _check_replaceable(self, old_id: str) -> None: ...  # tubes

    @abstractmethod
    def _replace(self, old_id: str, new_id: str, reason: str) -> None: ...  # tubes

    @abstractmethod
    def _box_tube(self, tube_id: str) -> None: ...  # boxes

    @abstractmethod
    def _box_label(self, box: dict[str, Any], reprint: bool) -> None: ...  # boxes


def _who(record: Mapping[str, Any] | None) -> str:
    """A stored sample's person, masked; "?" when the store no longer has the record."""
    if record is None:
        return "?"
    number = record["id_number"] if record.get("id_type") != "none" else ""
    return f"{mask_name(record['name'])} {mask_id(number)}"


def spoken_reason(message: str) -> str:
    """A refusal as a short spoken sentence: its first clause or two, no brackets, so the
    volunteer hears *why* (the code refused, and why), not only ``station.error_spoken``."""
    text = re.sub(r"（[^）]*）|\([^)]*\)", "", message)
    parts = [p.strip() for p in re.split(r"[，；。,;]", text) if p.strip()]
    if not parts:
        return _zh("station.error_spoken")
    said = parts[0]
    if len(parts) > 1 and len(said) + len(parts[1]) <= 22:
        said += "，" + parts[1]
    return said[:40]


def _parse_card(text: str, source: str, keys: Any = (), where: tuple[str, str] = ("", "")) -> Command:
    """SWABCMD:<name>[:<arg>].<signature> -> the Command a scanned card means (the argument
    goes in the key the command table names). Only the handheld scanner may issue one: the
    camera faces the public, and anyone can hold up a printed code. The card must be signed
    for this site by an operator or district key (firmware_app.commands.verify_card)."""
    if source != commands.CARD:
        raise Refused(words("station.card_from_camera"))
    try:
        text = commands.verify_card(text, keys, *where)
    except commands.CommandError as exc:
        raise Refused(Words(exc.message, exc.message_en)) from None
    name, _, arg = text[len(COMMAND_PREFIX) :].partition(":")
    name = name.strip()
    if not re.fullmatch(r"[a-z_]{1,40}", name) or name not in commands.COMMANDS:
        raise Refused(words("station.card_unknown"))
    card_arg = commands.COMMANDS[name].card_arg
    args = {card_arg: arg.strip()} if arg and card_arg else {}
    return Command(name, args, "scanner")
