"""People arriving: ID cards, personal codes and manual entry; the same-day duplicate and
single-tube checks; pending, confirm and reject; registration into a tube."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from firmware_app import commands, idnumber, qr
from firmware_app import phone as phone_numbers
from firmware_app.model import (
    CardRead,
    CodeScanned,
    Command,
    Event,
    mask_id,
    mask_name,
    person_key,
)
from firmware_app.station.common import (
    ID_TYPES,
    Refused,
    Rules,
    Words,
    colour_words,
    joined,
    listed,
    single_words,
    words,
)


class PeopleRules(Rules):
    """People arriving: ID cards, personal codes and manual entry; the same-day
    duplicate and single-tube checks; pending, confirm and reject; registration into a tube."""

    def _pending_view(self) -> dict[str, Any] | None:
        p = self._pending
        if p is None:
            return None
        if p["kind"] == "replace_tube":
            return {"kind": "replace_tube", "tube_id": p["tube_id"]}
        if p["kind"] == "command":  # "command", not "name": the screen shows a pending.name as a person
            spec = commands.COMMANDS[p["command"].name]
            return {"kind": "command", "command": spec.name, "zh": spec.zh, "en": spec.en, "args": dict(p["command"].args)}
        person = p["person"]
        return {
            "kind": "person",
            "name": mask_name(person["name"]),
            "id": mask_id(person["id_number"]),
            "colour": person["colour"],
            "source": p["source"],
            "single_reason": p["single_reason"],
            "needs_tube_scan": p["single_reason"] is not None and self._source == "prelabelled",
            "duplicate_of": p["duplicate_of"],
        }

    def _person_of(self, event: Event) -> tuple[dict[str, Any], str] | None:
        """The person an event brings (card, personal code, manual entry), or None; a
        Refused for a bad one. Worked out once per event (lookups, then handle)."""
        cached_event, cached = self._person_cache
        if cached_event is event:
            if isinstance(cached, Refused):
                raise cached
            return cached
        try:
            result = self._read_person(event)
        except Refused as refusal:
            self._person_cache = (event, refusal)
            raise
        self._person_cache = (event, result)
        return result

    def _read_person(self, event: Event) -> tuple[dict[str, Any], str] | None:
        if isinstance(event, CardRead):
            card = event.card
            try:
                number = idnumber.validate(card.id_number, self._today())
            except idnumber.IdNumberError as exc:
                raise Refused(words("person.card_number_invalid", reason=Words(exc.reason, exc.reason_en))) from None
            return {"name": card.name.strip(), "id_type": "resident_id", "id_number": number, "phone": "",
                    "colour": None, "key_person": False}, "idcard"
        if isinstance(event, CodeScanned) and event.text.strip().startswith(qr.PREFIX):
            try:
                code = qr.verify(event.text.strip(), self._keys, self._now.at, max_age_s=self._max_code_age_s,
                                 check_not_before=self._now.synced)
            except qr.QrError as exc:
                raise Refused(words("person.code_refused", reason=Words(exc.reason, exc.reason_en)), problem=exc.code) from None
            if isinstance(code, qr.OperatorCert):
                self._cert = code
                return None
            return {"name": code.name, "id_type": code.id_type, "id_number": code.id_number, "phone": code.phone,
                    "colour": code.colour, "key_person": code.key_person}, "qr"
        if isinstance(event, Command) and event.name == "manual_entry":
            return _manual_person(event.args, self._today()), "manual"
        return None

    @staticmethod
    def _key(person: dict[str, Any]) -> str:
        return person_key(person["id_type"], person["id_number"], person["name"], person["phone"])

    def _on_card(self, event: CardRead) -> None:
        self._person_arrives(*self._person_needed(event))

    def _person_needed(self, event: Event) -> tuple[dict[str, Any], str]:
        """The person a card or a manual entry brings (those always bring one)."""
        found = self._person_of(event)
        assert found is not None, event
        return found

    def _person_arrives(self, person: dict[str, Any], source: str) -> None:
        self._require_operator()
        if self._pending is not None:
            raise Refused(words("person.pending_first"))
        single = _single_reason(person)
        duplicate_of = self._earlier_today(person)
        if single is None and self._source == "prelabelled" and self.state.table["tube"] is None:
            raise Refused(words("person.scan_tube_first"))
        if single is None and duplicate_of is None:
            self._register(person, source, None, None)
            return
        self._pending = {"kind": "person", "person": person, "source": source, "single_reason": single, "duplicate_of": duplicate_of}
        parts = []
        if duplicate_of:
            parts.append(words("person.duplicate", tube_id=duplicate_of["tube_id"], at=duplicate_of["at"][11:16]))
            if duplicate_of.get("other_name"):
                # same ID number, another name: a mistyped number, a shared card, or a
                # misread one; the volunteer must look at the person's document
                parts.append(words("person.other_name", other_name=duplicate_of["other_name"]))
                self._speak("person.other_name_spoken")
            else:
                self._speak("person.duplicate_spoken")
        if single:
            how = words("person.single_how_scan" if self._source == "prelabelled" else "person.single_how_confirm")
            parts.append(words("person.single_needed", reason=single_words(single), how=how))
            self._speak("person.single_spoken", reason=single_words(single))
        self._show_("confirm", *words("person.confirm", who=_who_of(person), parts=listed(parts)), pending=self._pending_view())

    def _earlier_today(self, person: dict[str, Any]) -> dict[str, Any] | None:
        """Where and when this person was sampled today (the latest sample not void), or None:
        from the store's samples of this person today (Facts.people)."""
        key = (self._key(person), self._today().isoformat())
        samples = [r for r in self._fact(self._facts.people, key) if r["record_id"] not in self._facts.voided]
        if not samples:
            return None
        r = samples[-1]
        tube = self.state.current(r["tube_id"])
        return {"record_id": r["record_id"], "tube_id": tube["id"] if tube else r["tube_id"], "at": r["at"],
                # same number, another name: masked, for the screen (never the full name)
                "other_name": mask_name(r["name"]) if r.get("name") and r["name"].strip() != person["name"].strip() else None,
                **self._where}

    def _register(self, person: dict[str, Any], source: str, duplicate_of: str | None, single_tube: str | None) -> None:
        """Put the person into a tube. All checks are done by the caller; this only emits."""
        single = _single_reason(person)
        fields = {
            "name": person["name"],
            "id_type": person["id_type"],
            "id_number": person["id_number"],
            "phone": person["phone"],
            "colour": person["colour"],
            "key_person": person["key_person"],
            "source": source,
            "duplicate_of": duplicate_of,
        }
        who, colour = _who_of(person), colour_words(person["colour"])
        if single:
            tube_id = single_tube or self._next_id(self._prefix, 4)
            self._open_tube(tube_id, single)
            sample = self._emit("sample", tube_id=tube_id, position=1, capacity=1, pool_mode="1", single_reason=single,
                                **fields)
            alert = person["colour"] in self.cfg.sampling.get("alert_colours", ("red",))
            if alert:  # the district hears at once on .../alerts; the record_id links the person
                self._emit("alert", reason=f"{person['colour']}_code", sample_record_id=sample["record_id"],
                           tube_id=tube_id, colour=person["colour"])
            self._close_tube("full", tube_id)
            detail: dict[str, Any] = {"person": _masked(person), **({"alert": True} if alert else {})}
            self._show_("ok", *words("person.registered_single", who=who, colour=colour, tube_id=tube_id), **detail)
            self._speak("person.registered_single_spoken")
            self._after_pooled_continue()
            return
        if self.state.table["tube"] is None:
            self._open_tube(self._next_id(self._prefix, 4), None)
        tube = self.state.tubes[self.state.table["tube"]]
        position = tube["count"] + 1
        self._emit(
            "sample", tube_id=tube["id"], position=position, capacity=tube["capacity"], pool_mode=tube["mode"],
            single_reason=None, **fields
        )
        said = [words("person.registered", who=who, colour=colour, tube_id=tube["id"], position=position,
                      capacity=tube["capacity"])]
        self._speak("person.position_spoken", position=position)
        if tube["mode"] == "household" and position < tube["capacity"]:
            said.append(words("tube.household_close_hint"))
            if position == 1:
                self._speak("tube.household_close_spoken")
        if position >= tube["capacity"]:
            self._close_tube("full")
            self._speak("tube.full_spoken")
            said.append(words("tube.full"))
            if self._source == "print" and tube["capacity"] == 1:
                pass  # one per tube: each person's tube opens (and prints) when they arrive, never ahead
            elif self._source == "print":
                new = self._open_tube(self._next_id(self._prefix, 4), None)
                said.append(words("tube.next_printed", tube_id=new))
            else:
                said.append(words("tube.scan_next"))
                self._speak("tube.scan_next_spoken")
        self._show_("ok", *joined(*said), person=_masked(person), tube_id=tube["id"], position=position)

    def _after_pooled_continue(self) -> None:
        tube = self.state.tube(self.state.table["tube"])
        if tube:
            self._speak("tube.pooled_continues", tube_id=tube["id"], count=tube["count"])

    def _confirm(self, kind: str | None) -> None:
        p = self._pending
        if p is None or (kind == "duplicate" and not (p["kind"] == "person" and p["duplicate_of"])):
            raise Refused(words("person.nothing_to_confirm"))
        if p["kind"] == "command":  # a destructive card held for this confirm
            if kind == "duplicate":
                raise Refused(words("person.no_duplicate"))
            self._pending = None
            self._on_command(p["command"])
            return
        if p["kind"] == "replace_tube":
            if self._source == "prelabelled":
                raise Refused(words("tube.scan_new_tube"))
            self._pending = None
            self._check_replaceable(p["tube_id"])
            self._replace(p["tube_id"], self._next_id(self._prefix, 4), p["reason"])
            return
        self._require_operator()
        if p["single_reason"] and self._source == "prelabelled":
            raise Refused(words("person.scan_single_tube"))
        if not p["single_reason"] and self._source == "prelabelled" and self.state.table["tube"] is None:
            raise Refused(words("tube.scan_first"))
        self._pending = None
        self._register(p["person"], p["source"], (p["duplicate_of"] or {}).get("record_id"), None)

    def _cmd_confirm(self, c: Command) -> None:
        self._confirm(None)

    def _cmd_confirm_duplicate(self, c: Command) -> None:
        self._confirm("duplicate")

    def _cmd_confirm_single(self, c: Command) -> None:
        self._confirm(None)

    def _hold(self, command: Command) -> None:
        """A destructive command card: checked now, done only after a confirm on the screen."""
        try:
            spec = commands.check(command.name, command.args, command.source)
        except commands.CommandError as exc:
            raise Refused(Words(exc.message, exc.message_en)) from None
        if self._pending is not None:
            raise Refused(words("person.pending_command_first"))
        self._pending = {"kind": "command", "command": command}
        title = Words(spec.zh, spec.en)
        self._show_("confirm", *words("command.confirm_first", title=title), command=spec.name)
        self._speak("command.confirm_first_spoken", title=title)

    def _reject(self) -> None:
        if self._pending is None:
            raise Refused(words("person.nothing_to_reject"))
        self._pending = None
        self._show_("info", *words("person.rejected"))
        self._speak("person.rejected_spoken")

    def _cmd_reject(self, c: Command) -> None:
        self._reject()

    def _cmd_reject_duplicate(self, c: Command) -> None:
        self._reject()

    def _cmd_cancel(self, c: Command) -> None:
        self._reject()

    def _cmd_open_view(self, c: Command) -> None:
        """A command card opens a page of the screen (a card cannot carry a person's details)."""
        self._require_operator()
        view = str(c.args.get("view"))
        self._show_("info", *words(f"station.view.{view}"), open=view)

    def _cmd_manual_entry(self, c: Command) -> None:
        self._person_arrives(*self._person_needed(c))


def _manual_person(a: Mapping[str, Any], today: dt.date) -> dict[str, Any]:
    """The person a manual entry describes, checked (Refused says what is wrong)."""
    name = str(a.get("name") or "").strip()
    id_type = str(a.get("id_type") or "resident_id")
    number = str(a.get("id_number") or "").strip().upper()
    phone = str(a.get("phone") or "").strip()
    colour = a.get("colour") or None
    if not name:
        raise Refused(words("person.name_required"))
    if id_type not in ID_TYPES:
        raise Refused(words("person.id_type_invalid", id_type=Words(id_type, ", ".join(ID_TYPES))))
    if colour not in (None, "green", "yellow", "red"):
        raise Refused(words("person.colour_invalid"))
    if id_type == "resident_id":
        try:
            number = idnumber.validate(number, today)
        except idnumber.IdNumberError as exc:
            raise Refused(words("person.id_number_invalid", reason=Words(exc.reason, exc.reason_en))) from None
    elif id_type in _ID_PATTERNS:
        number = number.replace(" ", "")
        if not re.fullmatch(_ID_PATTERNS[id_type], number) or (id_type == "foreign_permanent" and len(number) == 18
                                                             and idnumber.check_char(number[:17]) != number[17]):
            raise Refused(words("person.document_invalid", document=words(f"person.id_type.{id_type}")))
    elif id_type == "none":
        number = ""
        if not phone:
            raise Refused(words("person.phone_required"))
    if not phone_numbers.valid(phone):
        raise Refused(words("person.phone_invalid"))
    return {"name": name, "id_type": id_type, "id_number": number, "phone": phone, "colour": colour,
            "key_person": a.get("key_person") in (True, 1, "1", "true", "yes")}


# The number each document carries, checked where a check exists (the documents' names are
# ``person.id_type.<id_type>``): the Hong Kong/Macau permit H/M + 8 digits (older 10), the
# Taiwan permit 8 digits (older 10), the foreign permanent resident card 3 letters + 12 digits
# (2004 series) or 18 characters starting 9 with the resident ID's check character (2023).
_ID_PATTERNS = {
    "passport": r"[A-Z0-9]{5,20}",
    "hk_macau_permit": r"[HM][0-9]{8}([0-9]{2})?",
    "taiwan_permit": r"[0-9]{8}([0-9]{2})?",
    "foreign_permanent": r"[A-Z]{3}[0-9]{12}|9[0-9]{16}[0-9X]",
}


def _single_reason(person: dict[str, Any]) -> str | None:
    if person["colour"] == "red":
        return "red_code"
    if person["colour"] == "yellow":
        return "yellow_code"
    if person["key_person"]:
        return "key_person"
    return None


def _who_of(person: dict[str, Any]) -> str:
    return f"{mask_name(person['name'])} {mask_id(person['id_number'])}"


def _masked(person: dict[str, Any]) -> dict[str, Any]:
    return {"name": mask_name(person["name"]), "id": mask_id(person["id_number"]), "colour": person["colour"]}
