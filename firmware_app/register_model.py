"""The paper register's document model (pure): records in, a ``Register`` out (tubes with
their people, voids, replacements, boxes, couriers, samplers). The PDF
(firmware_app.register_pdf) and the XLSX export both read it, so the paper and the
spreadsheet can never disagree on who was in a tube. Its words are catalogue keys
(firmware_app/catalogue/register.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from firmware_app.catalogue import zh


def _words(kind: str, names: Iterable[str]) -> dict[str, str]:
    return {name: zh(f"register.{kind}.{name}") for name in names}


POOL_ZH = _words("pool", ("1", "10", "20", "household"))
SINGLE_ZH = _words("single", ("red_code", "yellow_code", "key_person"))
COLOUR_ZH: dict[str | None, str] = {None: "\u2014"}
COLOUR_ZH.update(_words("colour", ("green", "yellow", "red")))
ID_TYPE_ZH = _words("id_type", ("resident_id", "passport", "none"))
SOURCE_ZH = _words("source", ("idcard", "qr", "manual"))
REPLACE_ZH = _words("replace", ("broken", "spilled"))
CLOSE_ZH = _words("close", ("full", "manual", "end_of_queue", "end_of_shift", "mode_change"))


class RegisterError(Exception):
    def __init__(self, message: str, message_en: str):
        self.message, self.message_en = message, message_en
        super().__init__(message_en)


# --------------------------------------------------------------------------
# The document model (pure)
# --------------------------------------------------------------------------


@dataclass
class Person:
    record_id: str
    seq: int
    at: str
    name: str
    id_type: str
    id_number: str
    phone: str
    colour: str | None
    single_reason: str | None
    source: str
    key_person: bool = False
    duplicate_of: str | None = None
    void: bool = False
    void_reason: str | None = None
    from_tube: str | None = None  # moved here from a broken tube

    @property
    def manual(self) -> bool:
        return self.source == "manual"


@dataclass
class Tube:
    tube_id: str
    day: str = ""
    pool_mode: str = ""
    capacity: int | None = None
    single_reason: str | None = None
    opened_at: str = ""
    closed_at: str = ""
    close_reason: str = ""
    operators: list[str] = field(default_factory=list)  # certificate ids, in order of appearance
    people: list[Person] = field(default_factory=list)
    replaces: str | None = None  # the broken tube whose people were moved here
    replaced_by: str | None = None  # this tube broke: its people are in that tube now
    replace_reason: str = ""
    box_id: str | None = None

    @property
    def count(self) -> int:
        """People in the tube, voided entries NOT counted."""
        return sum(not p.void for p in self.people)

    @property
    def voided(self) -> int:
        return sum(p.void for p in self.people)


@dataclass
class Box:
    box_id: str
    opened_at: str = ""
    closed_at: str = ""
    tubes: list[str] = field(default_factory=list)
    courier: str = ""
    handed_over_at: str = ""


@dataclass
class Register:
    site: str
    site_name: str
    table: str
    district: str
    device_id: str
    days: list[str]
    tubes: list[Tube]
    boxes: dict[str, Box]
    operator_names: dict[str, str]

    @property
    def people(self) -> int:
        """People registered, voided entries NOT counted (a moved person is counted once)."""
        return sum(t.count for t in self.tubes if not t.replaced_by)

    @property
    def voided(self) -> int:
        return sum(t.voided for t in self.tubes if not t.replaced_by)

    def sampler(self, tube: Tube) -> str:
        names = [self.operator_names.get(op, op) for op in tube.operators]
        return zh("register.days_sep").join(names) if names else "—"

    def only(self, tube_ids: Iterable[str]) -> Register:
        keep = set(tube_ids)
        tubes = [t for t in self.tubes if t.tube_id in keep]
        boxes = {b: box for b, box in self.boxes.items() if any(t.box_id == b for t in tubes)}
        return Register(self.site, self.site_name, self.table, self.district, self.device_id,
                        sorted({t.day for t in tubes if t.day}) or self.days, tubes, boxes, self.operator_names)


def _clock(at: str) -> str:
    """HH:MM:SS of a record's ISO local time, as the kiosk wrote it."""
    return at[11:19] if isinstance(at, str) and len(at) >= 19 else ""


def _void_target(rec: dict) -> str | None:
    for key in ("voided_record_id", "voids", "void_of"):
        if isinstance(rec.get(key), str):
            return rec[key]
    return None


def _str(value) -> str:
    return "" if value is None else str(value)


def build_register(records: Iterable[dict], site_name: str = "") -> Register:
    """Tubes (in the order they opened), each with its people in order, from a day's records."""
    records = sorted(records, key=lambda r: r.get("seq", 0))
    tubes: dict[str, Tube] = {}
    boxes: dict[str, Box] = {}
    names: dict[str, str] = {}
    samples: dict[str, tuple[Person, str]] = {}  # record_id -> (person, tube it is in now)
    first = next((r for r in records), {})

    def tube(tube_id: str) -> Tube:
        if tube_id not in tubes:
            tubes[tube_id] = Tube(tube_id)
        return tubes[tube_id]

    def box(box_id: str) -> Box:
        if box_id not in boxes:
            boxes[box_id] = Box(box_id)
        return boxes[box_id]

    for rec in records:
        kind, at = rec.get("kind"), _str(rec.get("at"))
        tid = rec.get("tube_id") if isinstance(rec.get("tube_id"), str) else None
        if kind == "shift_start" and rec.get("operator"):
            names[rec["operator"]] = _str(rec.get("operator_name")) or rec["operator"]
        elif kind == "tube_open" and tid:
            t = tube(tid)
            t.day, t.opened_at = at[:10], at
            t.pool_mode, t.capacity, t.single_reason = _str(rec.get("pool_mode")), rec.get("capacity"), rec.get("single_reason")
            if rec.get("operator") and rec["operator"] not in t.operators:
                t.operators.append(rec["operator"])
        elif kind == "sample" and tid:
            t = tube(tid)
            if not t.day:  # a tube opened on an earlier day than these records
                t.day = at[:10]
                t.pool_mode = t.pool_mode or _str(rec.get("pool_mode"))
                t.capacity = t.capacity or rec.get("capacity")
            p = Person(rec["record_id"], rec.get("seq", 0), at, _str(rec.get("name")), _str(rec.get("id_type")),
                       _str(rec.get("id_number")), _str(rec.get("phone")), rec.get("colour"), rec.get("single_reason"),
                       _str(rec.get("source")), bool(rec.get("key_person")), rec.get("duplicate_of"))
            t.people.append(p)
            samples[p.record_id] = (p, tid)
            if rec.get("operator") and rec["operator"] not in t.operators:
                t.operators.append(rec["operator"])
        elif kind == "void":
            target = _void_target(rec)
            if target in samples:
                samples[target][0].void = True
                samples[target][0].void_reason = _str(rec.get("reason")) or "mistaken_entry"
        elif kind == "tube_close" and tid:
            t = tube(tid)
            t.closed_at, t.close_reason = at, _str(rec.get("reason"))
        elif kind == "tube_replace" and tid:
            old_id = rec.get("old_tube_id")
            new = tube(tid)
            new.day = new.day or at[:10]
            new.opened_at = new.opened_at or at
            if isinstance(old_id, str):
                old = tube(old_id)
                new.replaces, old.replaced_by = old_id, tid
                new.replace_reason = old.replace_reason = _str(rec.get("reason")) or "broken"
                new.pool_mode, new.capacity = new.pool_mode or old.pool_mode, new.capacity or old.capacity
                new.single_reason = new.single_reason or old.single_reason
                moved = [samples[s] for s in rec.get("samples") or [] if s in samples]
                if not moved:  # samples not listed: every person of the old tube moves
                    moved = [(p, old_id) for p in old.people]
                for p, was in moved:
                    p.from_tube = p.from_tube or was
                    samples[p.record_id] = (p, tid)
                    new.people.append(p)
                old.people = [p for p in old.people if samples[p.record_id][1] == old_id]
            if rec.get("operator") and rec["operator"] not in new.operators:
                new.operators.append(rec["operator"])
        elif kind in ("box_open", "box_add", "box_close", "box_handover") and isinstance(rec.get("box_id"), str):
            b = box(rec["box_id"])
            if kind == "box_open":
                b.opened_at = at
            elif kind == "box_add" and tid:
                if tid not in b.tubes:
                    b.tubes.append(tid)
                tube(tid).box_id = b.box_id
            elif kind == "box_close":
                b.closed_at = at
                for t in rec.get("tubes") or []:
                    if isinstance(t, str) and t not in b.tubes:
                        b.tubes.append(t)
            else:
                b.courier, b.handed_over_at = _str(rec.get("courier")), at
    # the people moved out of a broken tube are listed where they are now: in the new tube
    for t in tubes.values():
        if not t.replaces:  # a replacement lists the moved people first, then who came after
            t.people.sort(key=lambda p: p.seq)
    kept = [t for t in tubes.values() if t.people or t.replaced_by]  # an opened, never used tube is no tube
    kept.sort(key=lambda t: (t.opened_at or "~", t.tube_id))
    days = sorted({t.day for t in kept if t.day} or {_str(first.get("at"))[:10]} - {""})
    return Register(site=_str(first.get("site")), site_name=site_name or _str(first.get("site")),
                    table=_str(first.get("table")), district=_str(first.get("district")),
                    device_id=_str(first.get("device_id")), days=days, tubes=kept, boxes=boxes, operator_names=names)


def pool_text(tube: Tube) -> str:
    if tube.single_reason:
        return zh("register.pool.single", reason=SINGLE_ZH.get(tube.single_reason, tube.single_reason))
    return POOL_ZH.get(tube.pool_mode, tube.pool_mode or "—")
