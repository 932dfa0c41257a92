"""The station facade: the one entry for events, the state it restores from rows, and what
    a step hands back (records, state rows, id marks, effects)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from firmware_app import commands, idnumber, privacy, qr
from firmware_app import volunteers as vol
from firmware_app.catalogue import en
from firmware_app.config import Config
from firmware_app.model import (
    NO_FACTS,
    RECORD_KINDS,
    CardRead,
    CodeScanned,
    Command,
    CommandResult,
    DeviceError,
    DeviceStatus,
    Effect,
    Event,
    Facts,
    Lookups,
    Now,
    Persist,
    Say,
    Show,
)
from firmware_app.station.boxes import BoxRules
from firmware_app.station.common import (
    COMMAND_PREFIX,
    CONFIRMS,
    Refused,
    Words,
    _parse_card,
    _Step,
    spoken_reason,
    words,
)
from firmware_app.station.people import PeopleRules
from firmware_app.station.shifts import ShiftRules
from firmware_app.station.state import TableState
from firmware_app.station.tubes import TubeRules


class Station(ShiftRules, PeopleRules, TubeRules, BoxRules):
    """The facade: restore, lookups, handle, changes, marks, snapshot. The rules live in the
    mixins by concern (shifts, people, tubes, boxes); the state and its reducers in state.py."""

    def __init__(self, settings: Config, volunteers: Mapping[str, vol.Volunteer]):
        self.cfg = settings
        st, sampling = settings.station, settings.sampling
        self._device_id = st.device_id
        self._where = {"district": st.district, "site": st.site, "table": st.table}
        self._site_name = st.site_name or f"{st.site} {st.table}"
        self._tz = dt.timezone(dt.timedelta(hours=st.utc_offset_hours))
        self._keys = settings.keys
        # who may sign a command card, and the site it must be signed for
        self._card_keys = (*self._keys.operator.values(), *settings.district_keys.values())
        self._card_where = (st.district, st.site)
        self._max_code_age_s = settings.authority.max_code_age_hours * 3600
        self._source = sampling.tubes_source
        self._prefix = sampling.tube_prefix
        self._tube_re = re.compile(sampling.tube_pattern)
        self._box_capacity = sampling.box_capacity
        self._default_mode = sampling.mode
        self._volunteers = dict(volunteers)
        self.state = TableState(self._prefix, sampling.mode)
        self._pending = None
        self._show = Show("info", *words("shift.next.sign_in"))
        self._devices = {}
        self._now = Now(0.0, False)
        self._step = _Step()
        self._facts = NO_FACTS
        self._person_cache = (None, None)
        self._cert = None

    def restore(self, rows: Mapping[str, Any], marks: Mapping[str, Any] | None = None, now: Now | None = None) -> None:
        """Continue from the stored state rows (``store.meta_items("st:")``). ``marks``: the
        store's identifier high-water marks (``store.high_water()``); after a repair they
        are above anything a lost tail may have used, so no seq, tube or box id is reissued.
        ``now``: the clock at restart, so the snapshot's "today" is right before any event."""
        if now is not None:
            self._now = now
        self.state = TableState.from_rows(rows, self._prefix, self._default_mode)
        self._continue_above(marks or {})
        self._restored_show()

    def replay(self, records: Iterable[dict], marks: Mapping[str, Any] | None = None, now: Now | None = None) -> int:
        """Rebuild the state rows from records, in seq order: once, for a store upgraded from
        the old layout (which kept no rows). Returns how many records did not fit and were
        skipped (a tube of an archived day); the shell reports it."""
        if now is not None:
            self._now = now
        self.state = TableState(self._prefix, self._default_mode)
        skipped = 0
        for record in sorted(records, key=lambda r: r.get("seq", 0)):
            self.state.table["seq"] = max(self.state.table["seq"], int(record.get("seq", 0) or 0))
            if record.get("kind") not in RECORD_KINDS:
                skipped += 1
                continue
            try:
                self.state.apply(record)
            except (KeyError, ValueError, TypeError):
                skipped += 1
        self._continue_above(marks or {})
        self.state.touch("table")
        for tube_id in self.state.tubes:
            self.state.touch("tube", tube_id)
        for box_id in self.state.boxes:
            self.state.touch("box", box_id)
        self._restored_show()
        return skipped

    def _continue_above(self, marks: Mapping[str, Any]) -> None:
        t = self.state.table
        t["seq"] = max(int(t["seq"]), int(marks.get("seq", 0) or 0))
        day = t["day"] or ""
        ymd = day[2:4] + day[5:7] + day[8:10]
        for stem, n in (marks.get("numbers") or {}).items():  # only the stems the table numbers from
            # (with no rows at all, after a repair that lost them, every stem the marks know counts)
            if (stem in t["numbers"] or not ymd or stem.endswith(ymd)) and int(n) > int(t["numbers"].get(stem, 0)):
                t["numbers"][stem] = int(n)

    def _restored_show(self) -> None:
        op, tube = self.state.table["operator"], self.state.tube(self.state.table["tube"])
        next_step = self._next_step()
        if op is None:
            said = next_step
        elif tube:
            said = words("station.restored_with_tube", who=Words(op["name"], op["cert_id"]), tube_id=tube["id"],
                         count=tube["count"], capacity=tube["capacity"], next=next_step)
        else:
            said = words("station.restored", who=Words(op["name"], op["cert_id"]), next=next_step)
        self._show = Show("info", *said)

    def changes(self) -> dict[str, Any]:
        """The state rows the last step changed ({key: row, or None when gone}): store them
        in the same transaction as the step's records."""
        return self.state.changes()

    def marks(self) -> dict[str, Any]:
        """The identifier high-water marks after the last step (seq, tube and box numbers).
        Today's tube and box stems are named from the day's first record on (at 0 before
        their first id), so the store reserves both then, not on a later volunteer's step."""
        t = self.state.table
        numbers = dict(t["numbers"])
        if t["day"]:
            ymd = t["day"][2:4] + t["day"][5:7] + t["day"][8:10]
            for stem in (self._prefix + ymd, f"{self._prefix}-B{ymd}"):
                numbers.setdefault(stem, 0)
        return {"seq": t["seq"], "numbers": numbers}

    def lookups(self, event: Event, now: Now) -> Lookups:
        """What the store must tell ``handle`` about this event (pure; cheap)."""
        self._now = now
        try:
            return self._lookups(event)
        except Refused:
            return Lookups()  # handle refuses it the same way, needing nothing

    def handle(self, event: Event, now: Now, facts: Facts = NO_FACTS) -> list[Effect]:
        self._now = now
        self._facts = facts
        self._step = step = _Step()
        command = event if isinstance(event, Command) else None
        ok = True
        try:
            if isinstance(event, CardRead):
                self._on_card(event)
            elif isinstance(event, CodeScanned):
                command = self._on_code(event) or command
            elif isinstance(event, Command):
                self._on_command(event)
            elif isinstance(event, DeviceStatus):
                self._on_device_status(event)
            elif isinstance(event, DeviceError):
                self._on_device_error(event)
            else:
                raise Refused(words("station.unknown_event", kind=type(event).__name__))
        except Refused as refusal:
            if step.records:  # a rule refused after emitting: a bug; the shell restores from the store
                raise RuntimeError(f"refused after {len(step.records)} record(s): {refusal.message_en}") from refusal
            ok = False
            step.show = Show("error", refusal.message, refusal.message_en, refusal.detail)
            step.says.append(spoken_reason(refusal.message))  # the reason, not just station.error_spoken
        finally:
            self._facts = NO_FACTS
            self._person_cache = (None, None)
        if not step.records:
            self.state.discard_changes()
        if step.show is not None:
            self._show = step.show
        effects: list[Effect] = [Persist(r) for r in step.records]
        effects += step.prints
        if step.show is not None:
            effects.append(step.show)
        effects += [Say(text) for text in step.says]
        if command is not None and command.txn is not None:
            effects.append(CommandResult(command.name, command.txn, ok, _response(step.show or self._show), step.result or {}))
        # the one place every Show/Say/CommandResult leaves the station: a full ID number that
        # came in as an argument (a reason, a box id) is masked here whatever the rule did
        self._show = privacy.mask_effect(self._show)
        return [privacy.mask_effect(e) for e in effects]

    def snapshot(self) -> dict:
        t = self.state.table
        tube = self.state.tube(t["tube"])
        last = t["last"]
        box = self.state.boxes.get(t["box"] or "")
        today = self._today().isoformat() if self._now.at else t["day"]
        op = t["operator"]
        return {
            "device_id": self._device_id,
            "operator": {"name": op["name"], "cert_id": op["cert_id"]} if op else None,
            "mode": t["mode"],
            "tubes_source": self._source,
            "tube": (
                {"id": tube["id"], "count": tube["count"], "capacity": tube["capacity"], "single_reason": tube["single_reason"],
                 "mode": tube["mode"], "people": [dict(p) for p in tube.get("people") or []]}
                if tube
                else None
            ),
            "next_step": dict(zip(("message", "message_en"), self._next_step(), strict=True)),
            # from the last message: a red-code alert, a replaced tube's people to recall (masked),
            # a device's raw reason for the technician panel
            "detail": {k: self._show.detail[k] for k in ("alert", "people", "recall", "device", "reason", "open")
                       if k in self._show.detail},
            "pending": self._pending_view(),
            "last": (
                {k: last[k] for k in ("name", "id", "colour", "source", "tube_id", "voided")}
                if last
                else None
            ),
            "level": self._show.level,
            "message": self._show.message,
            "message_en": self._show.message_en,
            "today": {
                "day": t["day"],
                "people": t["people"] if t["day"] == today else 0,
                "tubes": t["tubes"] if t["day"] == today else 0,
            },
            "box": self._box_view(box) if box else None,
            "boxes_closed": [self._box_view(b) for b in self.state.boxes.values() if b["state"] == "closed"],
            "unboxed": len(self.state.unboxed()),
            "devices": {name: dict(d) for name, d in self._devices.items()},
            "seq": t["seq"],
        }

    @property
    def volunteers(self) -> Mapping[str, vol.Volunteer]:
        """The current certified list (the shell saves it after a push_volunteers)."""
        return self._volunteers

    def _lookups(self, event: Event) -> Lookups:
        person = self._person_of(event)
        if person is not None:
            return Lookups(people=((self._key(person[0]), self._today().isoformat()),))
        command = event if isinstance(event, Command) else None
        if isinstance(event, CodeScanned):
            text = event.text.strip()
            if text.startswith(COMMAND_PREFIX):
                command = _parse_card(text, event.source, self._card_keys, self._card_where)
            elif self._tube_re.fullmatch(text) and not (len(text) == 18 and idnumber.is_valid(text, self._today())):
                pending = self._pending
                old = (pending["tube_id"],) if pending and pending["kind"] == "replace_tube" else ()
                return Lookups(tubes=(*old, text))
        if command is None:
            return Lookups()
        if command.name in CONFIRMS and self._pending and self._pending["kind"] == "command":
            command = self._pending["command"]  # a held card: what it does needs the facts
        if command.name == "void":
            return Lookups(records=(str(command.args.get("record_id", "")),))
        if command.name == "replace_tube":
            old_id = self._replace_target(command)
            new_id = str(command.args.get("new_tube_id") or "")
            return Lookups(tubes=tuple(t for t in (old_id, new_id) if t))
        if command.name in CONFIRMS and self._pending and self._pending["kind"] == "replace_tube":
            return Lookups(tubes=(self._pending["tube_id"],))
        return Lookups()

    def _on_code(self, event: CodeScanned) -> Command | None:
        text = event.text.strip()
        if text.startswith(COMMAND_PREFIX):
            command = _parse_card(text, event.source, self._card_keys, self._card_where)
            if commands.COMMANDS[command.name].confirm and command.name != "replace_tube":
                self._hold(command)  # destructive: the screen asks first (replace_tube asks by itself)
            else:
                self._on_command(command)
            return command
        if text.startswith(qr.PREFIX):
            person = self._person_of(event)
            if person is None:
                self._sign_in(self._cert)  # type: ignore[arg-type]
            else:
                self._person_arrives(*person)
            return None
        if len(text) == 18 and idnumber.is_valid(text, self._today()):
            # never taken for a tube id (it would be printed and shown in full)
            raise Refused(words("station.id_number_scanned"))
        if self._tube_re.fullmatch(text):
            self._on_tube_scan(text)
            return None
        raise Refused(words("station.code_unknown"), length=len(text))

    def _on_command(self, command: Command) -> None:
        """Dispatch through the one command table (firmware_app/commands.py): who may issue
        it and its arguments are checked there; the rule is ``_cmd_<name>``."""
        try:
            spec = commands.check(command.name, command.args, command.source)
        except commands.CommandError as exc:
            raise Refused(Words(exc.message, exc.message_en)) from None
        handler = getattr(self, f"_cmd_{spec.name}", None)
        if handler is None or spec.handler != "station":
            raise Refused(words("station.daemon_command", title=Words(spec.zh, spec.name)))
        handler(command)


def _response(shown: Show) -> str:
    """A command's response text: what the screen says, in English, with the raw reason a
    technician or the district needs (a parser's complaint, a device's errno) when it has one."""
    message = shown.message_en or shown.message
    reason = shown.detail.get("reason")
    return en("station.response_with_reason", message=message, reason=reason) if reason else message
