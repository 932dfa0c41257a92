"""The contract between the drivers, the station core, the store and the uplink.

Drivers turn bytes into *events*; the station (a pure state machine) turns
events into *effects*; the shell carries effects out in order: every
``Persist`` of one step is written durably (one batch) before any other
effect of that step (a label, a green screen) happens.

Records are plain JSON-able dicts (see ``RECORD_KINDS``); they are what the
store keeps and the uplink publishes. The station's live state (the shift, open
tubes and boxes, counters) is kept beside them as state rows written in the same
transaction, and what a step needs from history (a person's samples today, a
tube's people) comes with the event as ``Facts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from firmware_app import catalogue

RECORD_SCHEMA = "swab.record/1"

# Record kind -> MQTT topic leaf under swab/v1/<district>/<site>/<table>/
RECORD_KINDS: dict[str, str] = {
    "sample": "records",  # one person put into one tube
    "void": "records",  # a mistaken sample cancelled (points at its record_id)
    "tube_open": "tubes",
    "tube_close": "tubes",  # reason: full | manual | end_of_queue | end_of_shift
    "tube_replace": "tubes",  # broken tube: its people moved to a new tube in one record
    "label": "tubes",  # a label printed (or reprinted) for a tube or box
    "mode": "tubes",  # table pooling mode switched
    "box_open": "boxes",
    "box_add": "boxes",
    "box_count": "boxes",  # packer's physical count vs listed count
    "box_close": "boxes",
    "box_handover": "boxes",  # handed to a courier
    "shift_start": "shifts",
    "shift_end": "shifts",
    # a red (or, by [sampling] alert_colours, yellow) code was just registered: the district hears
    # at once on its own topic; carries only the sample's record_id, tube and colour (docs/records.md)
    "alert": "alerts",
}

PoolMode = Literal["1", "10", "20", "household"]
POOL_CAPACITY: dict[str, int] = {"1": 1, "10": 10, "20": 20, "household": 10}

CodeColour = Literal["green", "yellow", "red"]


class Words(NamedTuple):
    """One text in both languages, zh-CN first, as the message catalogue gives it: what a
    Show, a refusal or a command response carries (``Show(level, *words(key, ...))``)."""

    zh: str
    en: str


def words(key: str, /, **values: Any) -> Words:
    """The catalogue's text of ``key`` in both languages. A value that is itself ``Words``
    (a colour, a mode, a device, the next step, a name shown as a certificate id in English)
    is filled in in each language; ``{field!r}`` in a template quotes the value."""
    return Words(catalogue.zh(key, **{k: v.zh if isinstance(v, Words) else v for k, v in values.items()}),
                 catalogue.en(key, **{k: v.en if isinstance(v, Words) else v for k, v in values.items()}))


def record_id(device_id: str, seq: int) -> str:
    """Stable id: device id + persistent sequence; sorts in sequence order."""
    return f"{device_id}-{seq:010d}"


def mask_id(number: str) -> str:
    """Mask an ID number for screens and logs: first 6 and last 4 kept."""
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_name(name: str) -> str:
    """First and last character kept, the rest starred (a three-character name keeps its
    first and third, a two-character one its first); enough for the person to recognise themselves."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


# --------------------------------------------------------------------------
# Events: what happened (drivers, UI, scanner command cards, MQTT commands)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Now:
    """The shell's clock reading, passed with every event (the core has no clock)."""

    at: float  # unix seconds
    synced: bool  # False while NTP has not synchronised (a Pi has no RTC)


@dataclass(frozen=True)
class IdCard:
    """Decoded text block of a 2nd-generation resident ID card."""

    name: str
    gender: str  # "1" male, "2" female, "0" unknown, "9" unspecified
    nation: str  # GB 3304 two-digit code
    birth: str  # YYYYMMDD
    address: str
    id_number: str
    authority: str
    valid_from: str  # YYYYMMDD
    valid_to: str  # YYYYMMDD, or the card's word for "long-term" (U+957F U+671F)
    photo: bytes = field(default=b"", repr=False, compare=False)  # WLT, opaque, never logged

    def __repr__(self) -> str:  # keep full numbers and addresses out of logs
        return f"IdCard(name={mask_name(self.name)!r}, id_number={mask_id(self.id_number)!r})"


@dataclass(frozen=True)
class CardRead:
    """An ID card was placed on the reader and read (once per placement)."""

    card: IdCard


@dataclass(frozen=True)
class CodeScanned:
    """Any code read by the camera or the handheld scanner; the station classifies it
    (personal sampling QR, operator certificate, tube barcode, command card)."""

    text: str
    source: Literal["camera", "scanner", "manual"]


@dataclass(frozen=True)
class Command:
    """An action from the screen, a scanned command card or an MQTT cmd/<name>."""

    name: str  # close_tube, void_last, confirm_duplicate, reject_duplicate, switch_mode,
    # sign_out, reprint_label, replace_tube, open_box, close_box, box_count,
    # handover_box, manual_entry, end_of_queue, push_volunteers, ...
    args: dict[str, Any] = field(default_factory=dict)
    source: Literal["ui", "scanner", "mqtt", "cli"] = "ui"
    txn: str | None = None  # MQTT transaction id, echoed in the CommandResult


DeviceName = Literal["idcard", "scanner", "camera", "printer", "broker", "store"]


@dataclass(frozen=True)
class DeviceStatus:
    """A device came up, went down or reported a problem (e.g. paper out).

    ``zh`` and ``en`` are the volunteer's words (catalogue), for a screen in one language;
    ``raw`` is the error as the OS or library gave it, for the technician panel only;
    ``reason`` is the technician's one line, "zh / en (raw)" (logs, ``status``).
    ``drivers.status`` builds all four."""

    device: DeviceName
    ok: bool
    reason: str = ""
    zh: str = field(default="", compare=False)
    en: str = field(default="", compare=False)
    raw: str = field(default="", compare=False)


@dataclass(frozen=True)
class DeviceError:
    """A device delivered something unusable (bad frame, unsupported card); the fields
    as in ``DeviceStatus`` (drivers.error builds them)."""

    device: str
    reason: str  # "zh / en (raw)", as in DeviceStatus
    zh: str = field(default="", compare=False)
    en: str = field(default="", compare=False)
    raw: str = field(default="", compare=False)


Event = CardRead | CodeScanned | Command | DeviceStatus | DeviceError


# --------------------------------------------------------------------------
# Effects: what the shell must do, in order
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Persist:
    """Write this record durably before any later effect of the same step."""

    record: dict[str, Any]


@dataclass(frozen=True)
class Label:
    kind: Literal["tube", "box", "manifest", "command_card", "test"]
    barcode: str  # Code128 payload (tube id / box id); "" for none
    lines: tuple[str, ...] = ()  # human-readable text lines
    qr: str = ""  # optional QR payload


@dataclass(frozen=True)
class PrintLabel:
    label: Label
    ref: str = ""  # tube or box id this label belongs to (the link is never lost)


@dataclass(frozen=True)
class Show:
    """Screen state. level drives colour and sound."""

    level: Literal["ok", "confirm", "error", "info"]
    message: str  # zh-CN text for the volunteer
    message_en: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # masked data only


@dataclass(frozen=True)
class Say:
    """A short spoken prompt in zh-CN (e.g. ``person.position_spoken``, ``tube.full_spoken``)."""

    text: str


@dataclass(frozen=True)
class CommandResult:
    """Answer to a Command that carried a txn (published on cmd/<name>/response)."""

    name: str
    txn: str | None
    ok: bool
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


Effect = Persist | PrintLabel | Show | Say | CommandResult


# --------------------------------------------------------------------------
# Facts: what the shell reads from the store for one step (the station never reads)
# --------------------------------------------------------------------------


def person_key(id_type: str, id_number: str, name: str, phone: str) -> str:
    """Who a sample is, for the same-day duplicate check: the ID (type and number), or for
    people without one the name and phone. The store indexes sample records by it."""
    if id_type == "none":
        return f"none:{name}:{phone}"
    return f"{id_type}:{id_number}"


def sample_person_key(record: dict[str, Any]) -> str:
    return person_key(record.get("id_type", ""), record.get("id_number", ""), record.get("name", ""),
                      record.get("phone", ""))


@dataclass(frozen=True)
class Lookups:
    """What the station needs to know from the store to handle one event
    (``Station.lookups(event, now)``, pure and cheap). The shell answers with ``Facts``."""

    people: tuple[tuple[str, str], ...] = ()  # (person_key, day YYYY-MM-DD): that person's samples that day
    records: tuple[str, ...] = ()  # stored records by record_id
    tubes: tuple[str, ...] = ()  # tube ids: the samples now in each, and whether the id was ever used

    def __bool__(self) -> bool:
        return bool(self.people or self.records or self.tubes)


@dataclass(frozen=True)
class Facts:
    """The store's answer to ``Lookups`` (``Store.facts``), handed to ``Station.handle``."""

    # (person_key, day) -> that person's sample records that day, not voided, in seq order
    people: dict[tuple[str, str], tuple[dict[str, Any], ...]] = field(default_factory=dict)
    # record_id -> the stored record, None when the store does not have it (pruned or lost)
    records: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # tube id -> the sample records now in it (a tube_replace moves them on), void ones too, seq order
    tubes: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    # of the tube ids asked: those any stored sample or tube replacement ever used
    tubes_used: frozenset[str] = frozenset()
    # of every sample record_id in this answer: those a stored void record points at
    voided: frozenset[str] = frozenset()


NO_FACTS = Facts()
