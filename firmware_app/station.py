"""The sampling table's rules as a pure state machine (sans-I/O, like h11).

    station = Station(config, volunteers)
    station.restore(store.iter_records())          # after a restart: continue the open tube
    effects = station.handle(event, Now(time.time(), synced))
    # the shell carries out effects in order: every Persist durably first (one batch),
    # then labels, screen, sound, command results. A lone Recall(record_ids) instead
    # means: pass those stored records to station.recall(...) and handle the same event
    # again (the station keeps names, ID numbers and times in the store, not in memory).

Every state change is a record: ``handle`` builds a record, applies it to the state with
the same ``_apply`` that ``restore`` uses, and returns it as a ``Persist``. So the state
is always what the stored records say, and a fresh Station restored from them continues
exactly where this one stopped. If the shell fails to store a step's records, or
``handle`` raises (a bug), the shell must rebuild the Station from the store
(``restore``) before handling anything else: the state then matches what is durable.

No clock (``Now`` comes with every event), no files, no logging: full ID numbers live only
in records (the district needs them) and never in Show/Say/CommandResult.

The rules and the decisions taken where the seeds are silent are in docs/records.md.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from array import array
from dataclasses import dataclass, field
from typing import Any

from firmware_app import idnumber, qr
from firmware_app import volunteers as vol
from firmware_app.config import Config
from firmware_app.packed import PersonIndex, Samples, Tube, Tubes
from firmware_app.model import (
    POOL_CAPACITY,
    RECORD_KINDS,
    RECORD_SCHEMA,
    CardRead,
    CodeScanned,
    Command,
    CommandResult,
    DeviceError,
    DeviceStatus,
    Effect,
    Event,
    Label,
    Now,
    Persist,
    PrintLabel,
    Recall,
    Say,
    Show,
    mask_id,
    mask_name,
    record_id,
)

COMMAND_PREFIX = "SWABCMD:"
ID_TYPES = ("resident_id", "passport", "none")
COLOUR_ZH = {"green": "绿码", "yellow": "黄码", "red": "红码", None: "未出示健康码"}
SINGLE_ZH = {"red_code": "红码", "yellow_code": "黄码", "key_person": "重点人群"}
DEVICE_ZH = {"idcard": "身份证读卡器", "scanner": "扫码枪", "camera": "摄像头", "printer": "打印机", "broker": "区平台", "store": "存储"}
# The argument a one-argument command card (SWABCMD:<name>:<arg>) carries.
CARD_ARG = {
    "switch_mode": "mode",
    "box_count": "count",
    "handover_box": "courier",
    "void": "record_id",
    "replace_tube": "tube_id",
    "reprint_label": "ref",
    "close_tube": "reason",
}


class _Need(Exception):
    """Raised before a step changes anything: it needs these stored records (see Recall)."""

    def __init__(self, record_ids: list[str]):
        super().__init__(record_ids)
        self.record_ids = tuple(record_ids)


class Refused(Exception):
    """A step that cannot happen; raised before the step emits any record."""

    def __init__(self, message: str, message_en: str, **detail: Any):
        super().__init__(message_en)
        self.message = message
        self.message_en = message_en
        self.detail = detail


# --------------------------------------------------------------------------
# State (everything here is rebuilt from records by _apply)
# --------------------------------------------------------------------------


@dataclass
class _Box:
    id: str
    capacity: int
    tubes: list[str] = field(default_factory=list)
    counted: int | None = None  # the packer's last count...
    listed: int | None = None  # ...and the number listed at that moment
    state: str = "open"  # open | closed | handed_over
    courier: str | None = None


@dataclass
class _Operator:
    cert_id: str
    name: str
    since: float
    cert_expires: float
    shift: int = 0  # the station's count of shift_start records applied
    people: int = 0
    tubes: int = 0


@dataclass
class _Step:
    records: list[dict] = field(default_factory=list)
    prints: list[PrintLabel] = field(default_factory=list)
    show: Show | None = None
    says: list[str] = field(default_factory=list)
    result: dict | None = None  # data for a CommandResult


class Station:
    def __init__(self, settings: Config, volunteers: Mapping[str, vol.Volunteer]):
        self.cfg = settings
        st, sampling = settings.station, settings.sampling
        self._device_id = st.device_id
        self._where = {"district": st.district, "site": st.site, "table": st.table}
        self._site_name = st.site_name or f"{st.site} {st.table}"
        self._tz = dt.timezone(dt.timedelta(hours=st.utc_offset_hours))
        self._keys = settings.keys
        self._max_code_age_s = settings.authority.max_code_age_hours * 3600
        self._source = sampling.tubes_source
        self._prefix = sampling.tube_prefix
        self._tube_re = re.compile(sampling.tube_pattern)
        self._box_capacity = sampling.box_capacity
        self._volunteers: dict[str, vol.Volunteer] = dict(volunteers)

        self._seq = 0
        self._operator: _Operator | None = None
        self._mode: str = sampling.mode
        self._tube: str | None = None  # the open pooled tube
        # Tubes as columns (packed.Tubes): id, capacity, mode, single_reason, state (open |
        # closed | replaced), close_reason, box, day (opened), first (ordinal of its first
        # sample, see _members), count (samples put in; a replaced tube keeps it), and the
        # last day / shift it was counted in today's / the operator's tubes.
        self._tubes = Tubes(self._prefix)
        # Ids of forgotten tubes that held people: a lab barcode must never open a second tube.
        self._retired_tubes: set[str] = set()
        # Samples packed, a few bytes each (firmware_app/packed.py); names, ID numbers and
        # times stay in the store and come back by Recall on the rare path that shows them.
        self._samples = Samples()
        self._voided: set[int] = set()  # sample ordinals
        self._day_at = array("I")  # sample days as runs: from ordinal _day_at[k] on, _day_of[k]
        self._day_of: list[str] = []
        self._odd_ids: dict[int, str] = {}  # sample ordinal -> record id not of our device/seq form
        self._odd_ordinals: dict[str, int] = {}
        # day -> that day's people (person key -> sample ordinals), kept for today only
        self._people: dict[str, PersonIndex] = {}
        self._salt = os.urandom(16)  # keys the person hashes: not guessable from outside
        self._last: dict | None = None  # the latest sample, masked, for the screen
        self._shifts = 0
        self._recalled: dict[str, dict | None] = {}  # records the shell read back for this event
        self._asked: tuple[str, ...] = ()  # the ids of the last Recall
        self._compact_due = False
        self._box: str | None = None  # the open box
        self._boxes: dict[str, _Box] = {}
        self._unboxed = array("I")  # numbers of the closed tubes with people waiting for a box
        self._numbers: dict[str, int] = {}  # id stem (prefix + yymmdd) -> last number used
        self._day: str | None = None  # local day of the latest record
        self._day_people: dict[str, int] = {}  # today's only, like _people
        self._day_tubes: dict[str, int] = {}  # tubes with people today (see Tube.counted_day)

        self._pending: dict | None = None  # not a record: lost on restart, nothing registered
        self._show = Show("info", "请扫描志愿者证签到", "Scan your volunteer certificate to sign in")
        self._devices: dict[str, dict] = {}
        self._now = Now(0.0, False)
        self._step = _Step()

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------

    def restore(self, records: Iterable[dict], last_seq: int = 0) -> int:
        """Replay stored records (any order; applied in seq order). Call before handle().

        Pass every record the store has (``store.iter_records()``): then the state is
        exactly what they say. A record referring to something not passed (a tube from
        an archived day) is skipped; the number skipped is returned so the shell can
        report it. ``last_seq``: the store's highest seq ever used (``store.last_seq()``,
        above the records after a repair): numbering continues after it, never reusing one."""
        skipped = 0
        for record in sorted(records, key=lambda r: r.get("seq", 0)):
            self._seq = max(self._seq, int(record.get("seq", 0)))
            if record.get("kind") not in RECORD_KINDS:
                skipped += 1
                continue
            try:
                self._apply(record)
            except (KeyError, ValueError, TypeError):
                skipped += 1
        self._seq = max(self._seq, last_seq)
        if self._compact_due:
            self._compact()
        tube = self._tubes.get(self._tube) if self._tube else None
        if self._operator is None:
            self._show = Show("info", "请扫描志愿者证签到", "Scan your volunteer certificate to sign in")
        elif tube:
            self._show = Show(
                "info",
                f"已恢复：{self._operator.name} 在岗，当前管 {tube.id} 已有 {tube.count}/{tube.capacity} 人",
                f"Restored: {self._operator.cert_id} signed in, tube {tube.id} has {tube.count}/{tube.capacity}",
            )
        else:
            self._show = Show("info", f"已恢复：{self._operator.name} 在岗", f"Restored: {self._operator.cert_id} signed in")
        return skipped

    def handle(self, event: Event, now: Now) -> list[Effect]:
        self._now = now
        if self._compact_due:
            self._compact()
        self._step = step = _Step()
        command = event if isinstance(event, Command) else None
        ok = True
        pending = self._pending
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
                raise Refused("未知事件", f"unknown event {type(event).__name__}")
        except _Need as need:
            assert not step.records, "a Recall must come before any record of the step"
            self._pending = pending
            self._asked = need.record_ids
            return [Recall(need.record_ids)]
        except Refused as refusal:
            ok = False
            step.show = Show("error", refusal.message, refusal.message_en, refusal.detail)
            step.says.append("错误")
        self._recalled = {}
        if step.show is not None:
            self._show = step.show
        effects: list[Effect] = [Persist(r) for r in step.records]
        effects += step.prints
        if step.show is not None:
            effects.append(step.show)
        effects += [Say(text) for text in step.says]
        if command is not None and command.txn is not None:
            shown = step.show or self._show
            effects.append(CommandResult(command.name, command.txn, ok, shown.message_en or shown.message, step.result or {}))
        return effects

    def recall(self, records: Iterable[dict]) -> None:
        """The stored records a ``Recall`` asked for (those the store still has): hand the
        same event to ``handle`` again. An id asked for and not passed counts as lost."""
        found = {r.get("record_id"): r for r in records}
        self._recalled.update({rid: found.get(rid) for rid in self._asked})

    def samples_held(self) -> int:
        """Samples in the packed table (today's and those of open or unboxed tubes)."""
        return len(self._samples)

    def snapshot(self) -> dict:
        tube = self._tubes.get(self._tube) if self._tube else None
        last = self._last
        box = self._boxes.get(self._box) if self._box else None
        return {
            "device_id": self._device_id,
            "operator": {"name": self._operator.name, "cert_id": self._operator.cert_id} if self._operator else None,
            "mode": self._mode,
            "tubes_source": self._source,
            "tube": (
                {"id": tube.id, "count": tube.count, "capacity": tube.capacity, "single_reason": tube.single_reason}
                if tube
                else None
            ),
            "pending": self._pending_view(),
            "last": (
                {
                    "name": last["name"],
                    "id": last["id"],
                    "colour": last["colour"],
                    "source": last["source"],
                    "tube_id": self._tube_of(last["i"]).id,
                    "voided": last["i"] in self._voided,
                }
                if last
                else None
            ),
            "level": self._show.level,
            "message": self._show.message,
            "message_en": self._show.message_en,
            "today": {
                "day": self._day,
                "people": self._day_people.get(self._day or "", 0),
                "tubes": self._day_tubes.get(self._day or "", 0),
            },
            "box": (
                {
                    "id": box.id,
                    "tubes": len(box.tubes),
                    "capacity": box.capacity,
                    "counted": box.counted,
                    "listed": box.listed,
                    "blocked": box.counted is not None and box.counted != box.listed,
                }
                if box
                else None
            ),
            "unboxed": len(self._unboxed),
            "devices": {name: dict(d) for name, d in self._devices.items()},
            "seq": self._seq,
        }

    # ------------------------------------------------------------------
    # Records: build, apply
    # ------------------------------------------------------------------

    def _local(self, at: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(at, self._tz)

    def _today(self) -> dt.date:
        return self._local(self._now.at).date()

    def _emit(self, kind: str, **fields: Any) -> dict:
        assert kind in RECORD_KINDS, kind
        self._seq += 1
        record = {
            "schema": RECORD_SCHEMA,
            "record_id": record_id(self._device_id, self._seq),
            "seq": self._seq,
            "kind": kind,
            "device_id": self._device_id,
            **self._where,
            "at": self._local(self._now.at).isoformat(timespec="milliseconds"),
            "clock_synced": self._now.synced,
            "operator": self._operator.cert_id if self._operator else None,
            **fields,
        }
        self._apply(record)
        self._step.records.append(record)
        return record

    def _apply(self, r: dict) -> None:
        """Change the state as record r says. Used live and by restore: keep it the only way."""
        kind = r["kind"]
        day = r["at"][:10]
        if self._day is None or day > self._day:
            self._day = day
            self._new_day()
        elif day == self._day:
            day = self._day  # one string for the day, not one per sample
        if kind == "shift_start":
            self._operator = _Operator(r["operator"], r["operator_name"], _ts(r["at"]), _ts(r["cert_expires"]))
            self._mode = r["mode"]
            self._shifts += 1
            self._operator.shift = self._shifts
        elif kind == "shift_end":
            self._operator = None
        elif kind == "mode":
            self._mode = r["mode"]
        elif kind == "tube_open":
            earlier = self._tubes.get(r["tube_id"])
            if earlier is not None and (earlier.count or earlier.state != "closed"):
                raise ValueError(f"tube {r['tube_id']} is in use")  # only an empty closed one opens again
            self._tubes.add(r["tube_id"], r["capacity"], r["pool_mode"], r["single_reason"], day)
            if r["single_reason"] is None:
                self._tube = r["tube_id"]
            self._count_number(r["tube_id"], self._prefix)
        elif kind == "sample":
            tube = self._tubes[r["tube_id"]]
            key = _person_key(r["id_type"], r["id_number"], r["name"], r["phone"])
            last = {"name": mask_name(r["name"]), "id": mask_id(r["id_number"] if r["id_type"] != "none" else ""),
                    "colour": r["colour"], "source": r["source"]}
            i = self._samples.add(r["seq"], tube.n)  # ValueError (nothing changed) if out of order
            if r["record_id"] != record_id(self._device_id, r["seq"]):
                self._odd_ids[i], self._odd_ordinals[r["record_id"]] = r["record_id"], i
            if not tube.count:
                tube.first = i
            tube.count += 1
            if not self._day_of or self._day_of[-1] != day:
                self._day_at.append(i)
                self._day_of.append(day)
            people = self._people.get(day)
            if people is None:
                people = self._people[day] = PersonIndex(i, self._salt)
            people.add(key, i)
            self._last = {"i": i, **last}
            self._day_people[day] = self._day_people.get(day, 0) + 1
            self._count_tube(tube, day)
            if self._operator:
                self._operator.people += 1
                if tube.counted_shift != self._operator.shift:
                    tube.counted_shift = self._operator.shift
                    self._operator.tubes += 1
        elif kind == "void":
            i = self._ordinal(r["voided_record_id"])
            if i is None:
                raise KeyError(r["voided_record_id"])
            day = self._sample_day(i)
            if day in self._people:  # a sample of today (older days are forgotten)
                if i in self._voided:
                    raise KeyError(f"{r['voided_record_id']} is void already")
                self._day_people[day] -= 1
            self._voided.add(i)
        elif kind == "tube_close":
            tube = self._tubes[r["tube_id"]]
            tube.state, tube.close_reason = "closed", r["reason"]
            if self._tube == tube.id:
                self._tube = None
            if tube.count:
                self._unboxed.append(tube.n)
        elif kind == "tube_replace":
            old = self._tubes[r["old_tube_id"]]
            taken = self._tubes.get(r["tube_id"])
            if old.state == "replaced" or (taken is not None and (taken.count or taken.state != "closed")):
                raise ValueError(f"tube {old.id} was replaced already, or {r['tube_id']} is in use")
            members = self._members(old)
            new = self._tubes.add(r["tube_id"], old.capacity, old.mode, old.single_reason, old.day, state=old.state,
                                  close_reason=old.close_reason, box=old.box, first=old.first, count=old.count)
            for i in members:  # the samples move to the new tube
                self._samples.set_tube(i, new.n)
            old.state = "replaced"
            if self._tube == old.id:
                self._tube = new.id
            self._unboxed = array("I", (new.n if t == old.n else t for t in self._unboxed))
            if old.box:
                box = self._boxes[old.box]
                box.tubes = [new.id if t == old.id else t for t in box.tubes]
            self._count_tube(new, day)
            self._count_number(new.id, self._prefix)
        elif kind == "box_open":
            self._boxes[r["box_id"]] = _Box(r["box_id"], r["capacity"])
            self._box = r["box_id"]
            self._count_number(r["box_id"], f"{self._prefix}-B")
        elif kind == "box_add":
            box, tube = self._boxes[r["box_id"]], self._tubes[r["tube_id"]]
            box.tubes.append(tube.id)
            tube.box = box.id
            self._unboxed.remove(tube.n)
        elif kind == "box_count":
            box = self._boxes[r["box_id"]]
            box.counted, box.listed = r["counted"], r["listed"]
        elif kind == "box_close":
            self._boxes[r["box_id"]].state = "closed"
            if self._box == r["box_id"]:
                self._box = None
        elif kind == "box_handover":
            box = self._boxes[r["box_id"]]
            box.state, box.courier = "handed_over", r["courier"]
            self._forget()
        # "label" records change nothing: they are the trace of what was printed.

    def _count_tube(self, tube: Tube, day: str) -> None:
        if tube.counted_day != day:
            tube.counted_day = day
            self._day_tubes[day] = self._day_tubes.get(day, 0) + 1

    def _new_day(self) -> None:
        """The records moved to a later day: the duplicate check and counters start afresh."""
        self._people = {d: p for d, p in self._people.items() if d == self._day}
        self._day_people = {d: n for d, n in self._day_people.items() if d == self._day}
        self._day_tubes = {d: t for d, t in self._day_tubes.items() if d == self._day}
        self._forget()
        self._compact_due = True

    def _compact(self) -> None:
        """Drop the forgotten tubes' samples and rows from the packed tables, once a day.

        Sample ordinals and tube numbers change, so it runs between steps (at the start of
        ``handle``, the end of ``restore``), never while a step holds a tube. Today's index
        keeps its entries (offsets from its first sample) when every dropped sample comes
        before today's first; otherwise it waits for another day."""
        self._compact_due = False
        samples, alive = self._samples, self._tubes.alive
        keep = [i for i in range(len(samples)) if alive[samples.tube[i]]]
        if len(keep) == len(samples) and all(alive):
            return
        dropped = next((i for i in reversed(range(len(samples))) if not alive[samples.tube[i]]), -1)
        if any(dropped >= index.base for index in self._people.values()):
            return
        number = self._tubes.compact()
        packed, day_at, day_of = Samples(), array("I"), []
        for new, i in enumerate(keep):
            packed.add(samples.seq(i), number[samples.tube[i]])
            day = self._sample_day(i)
            if not day_of or day_of[-1] != day:
                day_at.append(new)
                day_of.append(day)

        def moved(i: int) -> int:
            return bisect_left(keep, i)

        for tube in self._tubes.values():
            if tube.count and tube.state != "replaced":
                tube.first = moved(tube.first)
        self._voided = {moved(i) for i in self._voided if alive[samples.tube[i]]}
        self._odd_ids = {moved(i): rid for i, rid in self._odd_ids.items() if alive[samples.tube[i]]}
        self._odd_ordinals = {rid: i for i, rid in self._odd_ids.items()}
        self._unboxed = array("I", (number[n] for n in self._unboxed))
        if self._last is not None:
            self._last["i"] = moved(self._last["i"])
        for index in self._people.values():
            index.base = moved(index.base)
        self._samples, self._day_at, self._day_of = packed, day_at, day_of

    # ------------------------------------------------------------------
    # The packed samples
    # ------------------------------------------------------------------

    def _rid(self, i: int) -> str:
        return self._odd_ids.get(i) or record_id(self._device_id, self._samples.seq(i))

    def _ordinal(self, rid: str) -> int | None:
        """The ordinal of a sample this station still holds, by its record id."""
        i = self._odd_ordinals.get(rid)
        if i is None:
            prefix, _, digits = rid.rpartition("-")
            if prefix != self._device_id or len(digits) != 10 or not digits.isdigit():
                return None
            i = self._samples.find(int(digits))
            if i is None or i in self._odd_ids:
                return None
        return i if self._tubes.alive[self._samples.tube[i]] else None

    def _tube_of(self, i: int) -> Tube:
        return self._tubes.at(self._samples.tube[i])  # type: ignore[return-value]

    def _sample_day(self, i: int) -> str:
        return self._day_of[bisect_right(self._day_at, i) - 1]

    def _members(self, tube: Tube) -> list[int]:
        """Ordinals of the tube's samples, in order. They follow its first one, between
        them only single tubes' samples (one pooled tube is open at a time)."""
        found: list[int] = []
        if tube.state == "replaced":
            return found
        column = self._samples.tube
        i, end = tube.first, len(column)
        while tube.first >= 0 and len(found) < tube.count and i < end:
            if column[i] == tube.n:
                found.append(i)
            i += 1
        return found

    def _live(self, tube: Tube) -> list[int]:
        return [i for i in self._members(tube) if i not in self._voided]

    def _recall(self, rids: list[str]) -> dict[str, dict | None]:
        """The stored records of these samples; raises _Need (-> Recall) the first time."""
        missing = [rid for rid in rids if rid not in self._recalled]
        if missing:
            raise _Need(missing)
        return {rid: self._recalled[rid] for rid in rids}

    def _forget(self) -> None:
        """Drop tubes (and their samples) no rule can reach any more; the store keeps them.

        That is a tube from an earlier day that is done with: replaced, or closed and either
        empty or in a box handed to a courier (its samples can no longer be voided, see
        docs/records.md). Open tubes, unboxed ones and boxes not yet handed over stay."""
        unboxed = set(self._unboxed)
        gone = [t for t in self._tubes.values() if t.n not in unboxed and self._done_with(t)]
        for tube in gone:
            del self._tubes[tube.id]
            if tube.count or tube.state == "replaced":
                self._retired_tubes.add(tube.id)
            # its samples are out of reach now (a replaced tube's moved to its replacement);
            # the next day's _compact drops them from the packed tables
        if self._last is not None and not self._tubes.alive[self._samples.tube[self._last["i"]]]:
            self._last = None
        for box in [b for b in self._boxes.values() if b.state == "handed_over"]:
            if not any(t in self._tubes for t in box.tubes):
                del self._boxes[box.id]

    def _done_with(self, tube: Tube) -> bool:
        if tube.day >= (self._day or "") or tube.state == "open":
            return False
        if tube.state == "replaced" or not tube.count:
            return True
        if any(self._sample_day(i) >= (self._day or "") for i in self._members(tube)):
            return False
        return tube.box is not None and self._boxes[tube.box].state == "handed_over"

    def _count_number(self, ident: str, prefix: str) -> None:
        # the number may outgrow its width: tube 10,000 of a day must not reuse tube 9,999's
        m = re.fullmatch(re.escape(prefix) + r"(\d{6})(\d{3,})", ident)
        if m:
            stem = prefix + m.group(1)
            self._numbers[stem] = max(self._numbers.get(stem, 0), int(m.group(2)))

    def _next_id(self, prefix: str, width: int) -> str:
        stem = prefix + self._local(self._now.at).strftime("%y%m%d")
        return f"{stem}{self._numbers.get(stem, 0) + 1:0{width}d}"

    # ------------------------------------------------------------------
    # Screen and sound
    # ------------------------------------------------------------------

    def _show_(self, level: str, message: str, message_en: str, **detail: Any) -> None:
        self._step.show = Show(level, message, message_en, detail)  # type: ignore[arg-type]

    def _say(self, text: str) -> None:
        self._step.says.append(text)

    def _pending_view(self) -> dict | None:
        p = self._pending
        if p is None:
            return None
        if p["kind"] == "replace_tube":
            return {"kind": "replace_tube", "tube_id": p["tube_id"]}
        person = p["person"]
        view = {
            "kind": "person",
            "name": mask_name(person["name"]),
            "id": mask_id(person["id_number"]),
            "colour": person["colour"],
            "source": p["source"],
            "single_reason": p["single_reason"],
            "needs_tube_scan": p["single_reason"] is not None and self._source == "prelabelled",
            "duplicate_of": p["duplicate_of"],
        }
        return view

    # ------------------------------------------------------------------
    # Events
    # ------------------------------------------------------------------

    def _on_device_status(self, event: DeviceStatus) -> None:
        self._devices[event.device] = {"ok": event.ok, "reason": event.reason}
        name = DEVICE_ZH.get(event.device, event.device)
        if event.ok:
            if self._pending is None:  # never hide a waiting confirm behind "printer ready"
                self._show_("info", f"{name}正常", f"{event.device} ready")
        else:
            self._show_("error", f"{name}故障：{event.reason}", f"{event.device} not working: {event.reason}")
            self._say(f"{name}故障")

    def _on_device_error(self, event: DeviceError) -> None:
        name = DEVICE_ZH.get(event.device, event.device)
        self._show_("error", f"{name}：{event.reason}，请重试", f"{event.device}: {event.reason}; try again")
        self._say("请重试")

    def _on_card(self, event: CardRead) -> None:
        card = event.card
        try:
            number = idnumber.validate(card.id_number, self._today())
        except idnumber.IdNumberError as exc:
            raise Refused(f"身份证号无效：{exc.reason}，未登记", f"ID card number invalid: {exc.reason_en}; not registered") from None
        person = {"name": card.name.strip(), "id_type": "resident_id", "id_number": number, "phone": "", "colour": None, "key_person": False}
        self._person_arrives(person, "idcard")

    def _on_code(self, event: CodeScanned) -> Command | None:
        text = event.text.strip()
        if text.startswith(COMMAND_PREFIX):
            command = _parse_card(text)
            self._on_command(command)
            return command
        if text.startswith(qr.PREFIX):
            try:
                code = qr.verify(
                    text, self._keys, self._now.at, max_age_s=self._max_code_age_s, check_not_before=self._now.synced
                )
            except qr.QrError as exc:
                raise Refused(f"二维码无效：{exc.reason}", f"code refused: {exc.reason_en}", problem=exc.code) from None
            if isinstance(code, qr.OperatorCert):
                self._sign_in(code)
            else:
                person = {
                    "name": code.name,
                    "id_type": code.id_type,
                    "id_number": code.id_number,
                    "phone": code.phone,
                    "colour": code.colour,
                    "key_person": code.key_person,
                }
                self._person_arrives(person, "qr")
            return None
        if len(text) == 18 and idnumber.is_valid(text, self._today()):
            # never taken for a tube id (it would be printed and shown in full)
            raise Refused("这是身份证号，请用读卡器刷身份证或出示采样码", "that is an ID number: use the card reader or a sampling code")
        if self._tube_re.fullmatch(text):
            self._on_tube_scan(text)
            return None
        raise Refused(
            "无法识别的条码（不是采样码、志愿者证、试管条码或操作卡）",
            "unrecognised code: not a sampling code, volunteer certificate, tube barcode or command card",
            length=len(text),
        )

    # ------------------------------------------------------------------
    # Operator shifts
    # ------------------------------------------------------------------

    def _sign_in(self, cert: qr.OperatorCert) -> None:
        try:
            volunteer = vol.check(self._volunteers, cert.cert_id, self._today())
        except vol.NotCertified as exc:
            raise Refused(f"{exc.reason}", exc.reason_en, cert_id=cert.cert_id) from None
        if self._operator is not None:
            if self._operator.cert_id == cert.cert_id:
                self._show_("info", f"{volunteer.name}已在岗", f"{cert.cert_id} is already signed in")
                return
            raise Refused(
                f"{self._operator.name}仍在岗，请先扫描签退卡",
                f"{self._operator.cert_id} is still signed in; scan the sign-out card first",
            )
        expires = min(cert.expires_at, _end_of_day(volunteer.expires, self._tz))
        self._emit(
            "shift_start",
            operator=cert.cert_id,
            operator_name=volunteer.name,
            mode=self._mode,
            cert_expires=self._local(expires).isoformat(timespec="seconds"),
        )
        self._show_("ok", f"{volunteer.name} 签到成功，{_mode_zh(self._mode)}", f"{cert.cert_id} signed in, mode {self._mode}")
        self._say("签到成功，请出示身份证或采样码")

    def _require_operator(self) -> _Operator:
        op = self._operator
        if op is None:
            raise Refused("请先扫描志愿者证签到，未登记", "sign in first (scan your volunteer certificate); not registered")
        try:
            vol.check(self._volunteers, op.cert_id, self._today())
        except vol.NotCertified as exc:
            raise Refused(f"{exc.reason}：暂停登记，请签退", f"{exc.reason_en}: registration stopped, sign out") from None
        if self._now.at > op.cert_expires:
            raise Refused("志愿者证已过期：暂停登记，请签退", "volunteer certificate expired: registration stopped, sign out")
        return op

    def _sign_out(self, reason: str = "sign_out") -> None:
        op = self._operator
        if op is None:
            raise Refused("当前没有志愿者在岗", "nobody is signed in")
        self._pending = None
        if self._tube:
            self._close_tube("end_of_shift")
        duration = max(0, int(self._now.at - op.since))
        self._emit(
            "shift_end",
            operator_name=op.name,
            started_at=self._local(op.since).isoformat(timespec="milliseconds"),
            duration_s=duration,
            people=op.people,
            tubes=op.tubes,
            reason=reason,
        )
        hours, minutes = divmod(duration // 60, 60)
        self._show_(
            "ok",
            f"{op.name} 已签退，本班服务时长 {hours}小时{minutes}分，采样 {op.people} 人",
            f"{op.cert_id} signed out: {hours} h {minutes} min of service, {op.people} people",
            duration_s=duration,
        )
        self._say("已签退")

    # ------------------------------------------------------------------
    # People
    # ------------------------------------------------------------------

    def _person_arrives(self, person: dict, source: str) -> None:
        self._require_operator()
        if self._pending is not None:
            raise Refused("请先确认或取消上一位（待确认），本人未登记", "confirm or reject the pending person first; not registered")
        single = _single_reason(person)
        duplicate_of = self._earlier_today(person)
        if single is None and self._source == "prelabelled" and self._tube is None:
            raise Refused("请先扫描试管条码开管，本人未登记", "scan a tube first; not registered")
        if single is None and duplicate_of is None:
            self._register(person, source, None, None)
            return
        self._pending = {"kind": "person", "person": person, "source": source, "single_reason": single, "duplicate_of": duplicate_of}
        who = f"{mask_name(person['name'])} {mask_id(person['id_number'])}"
        parts, parts_en = [], []
        if duplicate_of:
            at = duplicate_of["at"][11:16]
            parts.append(f"今日已在 {duplicate_of['tube_id']} 管采样（{at}）")
            parts_en.append(f"already sampled today in tube {duplicate_of['tube_id']} at {at}")
            self._say("重复采样，请确认")
        if single:
            how = "扫描单管条码" if self._source == "prelabelled" else "确认"
            parts.append(f"{SINGLE_ZH[single]}：必须单人单管，请取单独试管后{how}")
            parts_en.append(f"{single.replace('_', ' ')}: sample SINGLE in a separate tube")
            self._say(f"{SINGLE_ZH[single]}，单采单管")
        self._show_("confirm", f"{who}：" + "；".join(parts), f"{who}: " + "; ".join(parts_en), pending=self._pending_view())

    def _earlier_today(self, person: dict) -> dict | None:
        """Where and when this person was sampled today (the latest sample not void), or None.

        The index gives candidates by a keyed hash; each is confirmed against its stored
        record (Recall), so another person sharing a hash is never taken for this one."""
        people = self._people.get(self._today().isoformat())
        key = _person_key(person["id_type"], person["id_number"], person["name"], person["phone"])
        hits = [i for i in people.find(key) if i not in self._voided] if people is not None else []
        if not hits:
            return None
        records = self._recall([self._rid(i) for i in hits])
        for i in reversed(hits):
            r = records[self._rid(i)]
            if r is not None and _person_key(r["id_type"], r["id_number"], r["name"], r["phone"]) == key:
                return {"record_id": self._rid(i), "tube_id": self._tube_of(i).id, "at": r["at"], **self._where}
        return None

    def _register(self, person: dict, source: str, duplicate_of: str | None, single_tube: str | None) -> None:
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
        who = f"{mask_name(person['name'])} {mask_id(person['id_number'])}"
        colour = COLOUR_ZH[person["colour"]]
        if single:
            tube_id = single_tube or self._next_id(self._prefix, 4)
            self._open_tube(tube_id, single)
            self._emit("sample", tube_id=tube_id, position=1, capacity=1, pool_mode="1", single_reason=single, **fields)
            self._close_tube("full", tube_id)
            self._show_("ok", f"{who} 已登记（{colour}）单管 {tube_id}", f"registered SINGLE in tube {tube_id}", person=_masked(person))
            self._say(f"单管已登记")
            self._after_pooled_continue()
            return
        if self._tube is None:
            self._open_tube(self._next_id(self._prefix, 4), None)
        tube = self._tubes[self._tube]  # type: ignore[index]
        position = tube.count + 1
        self._emit(
            "sample", tube_id=tube.id, position=position, capacity=tube.capacity, pool_mode=tube.mode, single_reason=None, **fields
        )
        message = f"{who} 已登记（{colour}），{tube.id} 第{position}/{tube.capacity}人"
        message_en = f"registered in tube {tube.id}: {position}/{tube.capacity}"
        self._say(f"第{position}人")
        if position >= tube.capacity:
            self._close_tube("full")
            self._say("本管已满")
            message += "，本管已满"
            message_en += ", tube full"
            if self._source == "print":
                new = self._open_tube(self._next_id(self._prefix, 4), None)
                message += f"，新管 {new} 标签已打印"
                message_en += f", next tube {new} label printed"
            else:
                message += "，请扫描新管条码"
                message_en += ", scan the next tube"
                self._say("请扫描新管")
        self._show_("ok", message, message_en, person=_masked(person), tube_id=tube.id, position=position)

    def _after_pooled_continue(self) -> None:
        if self._tube:
            tube = self._tubes[self._tube]
            self._say(f"混管 {tube.id} 继续，已有{tube.count}人")

    # ------------------------------------------------------------------
    # Tubes
    # ------------------------------------------------------------------

    def _open_tube(self, tube_id: str, single_reason: str | None) -> str:
        capacity = 1 if single_reason else POOL_CAPACITY[self._mode]
        self._emit(
            "tube_open",
            tube_id=tube_id,
            capacity=capacity,
            pool_mode="1" if single_reason else self._mode,
            single_reason=single_reason,
            tubes_source=self._source,
        )
        if self._source == "print":
            self._print_tube_label(tube_id, reprint=False)
        return tube_id

    def _print_tube_label(self, tube_id: str, reprint: bool) -> None:
        tube = self._tubes[tube_id]
        pool = f"单管 {SINGLE_ZH[tube.single_reason]}" if tube.single_reason else ("单采" if tube.capacity == 1 else _mode_zh(tube.mode))
        lines = (self._site_name, f"{self._where['table']} {self._local(self._now.at):%Y-%m-%d %H:%M}", pool, tube_id)
        self._emit("label", ref=tube_id, label_kind="tube", reprint=reprint)
        self._step.prints.append(PrintLabel(Label("tube", tube_id, lines), ref=tube_id))

    def _close_tube(self, reason: str, tube_id: str | None = None) -> None:
        tube = self._tubes[tube_id or self._tube]  # type: ignore[index]
        members = self._members(tube)
        voided = sum(1 for i in members if i in self._voided)
        self._emit("tube_close", tube_id=tube.id, reason=reason, count=tube.count, voided=voided,
                   samples=[self._rid(i) for i in members])
        if tube.count:
            self._box_tube(tube.id)

    def _on_tube_scan(self, tube_id: str) -> None:
        pending = self._pending
        if pending and pending["kind"] == "replace_tube":
            self._check_new_tube_id(tube_id)
            self._pending = None
            self._check_replaceable(pending["tube_id"])  # its box may have been sealed meanwhile
            self._replace(pending["tube_id"], tube_id, pending["reason"])
            return
        if pending and pending["kind"] == "person" and pending["single_reason"] and self._source == "prelabelled":
            self._require_operator()
            self._check_new_tube_id(tube_id)
            self._pending = None
            self._register(pending["person"], pending["source"], (pending["duplicate_of"] or {}).get("record_id"), tube_id)
            return
        if self._source == "print":
            tube = self._tubes.get(tube_id)
            if tube is None:
                # not echoed: an unknown barcode may be someone's ID number
                raise Refused("本台打印标签，该条码不是本台的管", "this table prints its labels; that barcode is not one of its tubes")
            state = {"open": "采样中", "closed": "已封管", "replaced": "已更换"}[tube.state]
            self._show_("info", f"管 {tube_id}：{tube.count}人，{state}", f"tube {tube_id}: {tube.count} people, {tube.state}")
            return
        self._require_operator()
        if pending:
            raise Refused("请先确认或取消待确认的人员", "confirm or reject the pending person first")
        self._check_new_tube_id(tube_id)
        if self._tube is not None:
            current = self._tubes[self._tube]
            if current.count:
                raise Refused(
                    f"当前管 {current.id} 有 {current.count} 人未满，请先扫描关管卡",
                    f"tube {current.id} is open with {current.count} people; close it first",
                )
            self._close_tube("manual")
        self._open_tube(tube_id, None)
        self._show_("ok", f"已开管 {tube_id}（{_mode_zh(self._mode)}），请出示身份证或采样码", f"tube {tube_id} opened ({self._mode})")
        self._say("已开管，请出示身份证")

    def _check_new_tube_id(self, tube_id: str) -> None:
        tube = self._tubes.get(tube_id)
        if tube_id in self._retired_tubes or (tube is not None and (tube.count or tube.state != "closed")):
            raise Refused(f"试管 {tube_id} 已使用过，请换一支", f"tube {tube_id} has been used already; take another")

    def _replace(self, old_id: str, new_id: str, reason: str) -> None:
        old = self._tubes[old_id]
        live = self._recall([self._rid(i) for i in self._live(old)])  # names for the recall list
        self._emit("tube_replace", tube_id=new_id, old_tube_id=old_id, samples=[self._rid(i) for i in self._members(old)],
                   count=old.count, reason=reason)
        if self._source == "print":
            self._print_tube_label(new_id, reprint=False)
        self._show_(
            "confirm",
            f"管 {old_id} 已更换为 {new_id}：本管 {len(live)} 人须重新采样，请召回",
            f"tube {old_id} replaced by {new_id}: its {len(live)} people must be swabbed again",
            people=[_who(r) for r in live.values()],
        )
        self._say("已换管，请召回本管人员重新采样")
        self._step.result = {"tube_id": new_id, "old_tube_id": old_id, "people": len(live)}

    # ------------------------------------------------------------------
    # Boxes
    # ------------------------------------------------------------------

    def _box_tube(self, tube_id: str) -> None:
        """A closed tube with people goes into the open box (a box opens by itself if none)."""
        if self._box is None:
            self._open_box()
        else:
            self._fill_box()
        if self._tubes[tube_id].n in self._unboxed:
            self._say("转运箱已满，请清点封箱")

    def _open_box(self) -> None:
        self._emit("box_open", box_id=self._next_id(f"{self._prefix}-B", 3), capacity=self._box_capacity)
        self._fill_box()

    def _fill_box(self) -> None:
        box = self._boxes[self._box]  # type: ignore[index]
        for tube_id in [self._tubes.id_of(n) for n in self._unboxed[: max(0, box.capacity - len(box.tubes))]]:
            self._emit("box_add", box_id=box.id, tube_id=tube_id)

    def _box_for(self, args: dict, state: str) -> _Box:
        box_id = args.get("box_id")
        if box_id:
            box = self._boxes.get(str(box_id))
            if box is None:
                raise Refused(f"没有转运箱 {box_id}", f"no box {box_id}")
            return box
        if state == "open":
            if self._box is None:
                raise Refused("当前没有打开的转运箱", "no box is open")
            return self._boxes[self._box]
        waiting = [b for b in self._boxes.values() if b.state == "closed"]
        if not waiting:
            raise Refused("没有待交接的已封箱", "no closed box waiting for a courier")
        return waiting[0]

    def _box_label(self, box: _Box, reprint: bool) -> None:
        people = sum(len(self._live(self._tubes[t])) for t in box.tubes)
        when = f"{self._local(self._now.at):%Y-%m-%d %H:%M}"
        lines = (self._site_name, f"{self._where['table']} {when}", f"{len(box.tubes)}管 {people}人", box.id)
        self._emit("label", ref=box.id, label_kind="box", reprint=reprint)
        self._step.prints.append(PrintLabel(Label("box", box.id, lines), ref=box.id))
        manifest = [f"转运箱 {box.id} 清单 / manifest", self._site_name, when]
        for n, tube_id in enumerate(box.tubes, 1):
            tube = self._tubes[tube_id]
            void = tube.count - len(self._live(tube))
            kind = f"单管{SINGLE_ZH[tube.single_reason]}" if tube.single_reason else f"{tube.capacity}混1"
            manifest.append(f"{n:>2}. {tube_id} {kind} {tube.count - void}人" + (f" 作废{void}" if void else ""))
        manifest.append(f"共 {len(box.tubes)} 管 {people} 人")
        self._emit("label", ref=box.id, label_kind="manifest", reprint=reprint)
        self._step.prints.append(PrintLabel(Label("manifest", box.id, tuple(manifest)), ref=box.id))

    # ------------------------------------------------------------------
    # Commands
    # ------------------------------------------------------------------

    def _on_command(self, command: Command) -> None:
        handler = getattr(self, f"_cmd_{command.name}", None)
        if handler is None or command.name.startswith("_"):
            raise Refused(f"未知操作：{command.name}", f"unknown command {command.name!r}")
        handler(command)

    def _cmd_sign_out(self, c: Command) -> None:
        self._sign_out()

    def _cmd_close_tube(self, c: Command) -> None:
        reason = str(c.args.get("reason") or "manual")
        if reason not in ("manual", "end_of_queue"):
            raise Refused(f"关管原因无效：{reason}", f"close reason must be manual or end_of_queue, not {reason!r}")
        if self._tube is None:
            raise Refused("当前没有打开的管", "no tube is open")
        tube = self._tubes[self._tube]
        self._close_tube(reason)
        why = "队伍已结束" if reason == "end_of_queue" else "手动"
        self._show_("ok", f"管 {tube.id} 已关闭（{why}），共 {tube.count} 人", f"tube {tube.id} closed ({reason}), {tube.count} people")
        self._say("已关管")
        self._step.result = {"tube_id": tube.id, "count": tube.count}

    def _cmd_end_of_queue(self, c: Command) -> None:
        self._cmd_close_tube(Command("close_tube", {"reason": "end_of_queue"}, c.source, c.txn))

    def _cmd_switch_mode(self, c: Command) -> None:
        mode = str(c.args.get("mode", ""))
        if mode not in POOL_CAPACITY:
            raise Refused(f"无效的混采模式：{mode}", f"mode must be 1, 10, 20 or household, not {mode!r}")
        self._require_operator()
        if mode == self._mode:
            self._show_("info", f"已是{_mode_zh(mode)}", f"already in mode {mode}")
            return
        closed = ""
        if self._tube:
            tube = self._tubes[self._tube]
            self._close_tube("mode_change")
            closed = f"，管 {tube.id} 已关闭（{tube.count}人）"
        self._emit("mode", mode=mode, previous=self._mode)
        self._show_("ok", f"已切换为{_mode_zh(mode)}{closed}", f"mode switched to {mode}" + (" (open tube closed)" if closed else ""))
        self._say(_mode_zh(mode))

    def _confirm(self, kind: str | None) -> None:
        p = self._pending
        if p is None or (kind == "duplicate" and not (p["kind"] == "person" and p["duplicate_of"])):
            raise Refused("没有待确认的事项", "nothing to confirm")
        if p["kind"] == "replace_tube":
            if self._source == "prelabelled":
                raise Refused("请扫描新试管条码", "scan the new tube's barcode")
            self._pending = None
            self._check_replaceable(p["tube_id"])
            self._replace(p["tube_id"], self._next_id(self._prefix, 4), p["reason"])
            return
        self._require_operator()
        if p["single_reason"] and self._source == "prelabelled":
            raise Refused("请扫描单管试管条码以确认", "scan the separate tube's barcode to confirm")
        if not p["single_reason"] and self._source == "prelabelled" and self._tube is None:
            raise Refused("请先扫描试管条码开管", "scan a tube first")
        self._pending = None
        self._register(p["person"], p["source"], (p["duplicate_of"] or {}).get("record_id"), None)

    def _cmd_confirm(self, c: Command) -> None:
        self._confirm(None)

    def _cmd_confirm_duplicate(self, c: Command) -> None:
        self._confirm("duplicate")

    def _cmd_confirm_single(self, c: Command) -> None:
        self._confirm(None)

    def _reject(self) -> None:
        if self._pending is None:
            raise Refused("没有待确认的事项", "nothing to reject")
        self._pending = None
        self._show_("info", "已取消，未登记", "rejected: nothing registered")
        self._say("已取消")

    def _cmd_reject(self, c: Command) -> None:
        self._reject()

    def _cmd_reject_duplicate(self, c: Command) -> None:
        self._reject()

    def _cmd_cancel(self, c: Command) -> None:
        self._reject()

    def _cmd_void_last(self, c: Command) -> None:
        last = self._last
        if last is None or last["i"] in self._voided:
            raise Refused("没有可作废的最近登记", "no recent registration to void")
        self._void(c, self._rid(last["i"]), last["i"])

    def _cmd_void(self, c: Command) -> None:
        target = str(c.args.get("record_id", ""))
        i = self._ordinal(target)
        if i is None:  # or one this table no longer holds: an earlier day's, handed over
            raise Refused(
                f"没有可作废的登记记录 {target}（往日已交接的记录由区平台处理）",
                f"no sample record {target!r} to void here (earlier days' handed-over records: the district)",
            )
        if i in self._voided:
            raise Refused(f"记录 {target} 已作废", f"record {target} is already void")
        self._void(c, target, i)

    def _void(self, c: Command, target: str, i: int) -> None:
        if c.source != "mqtt":
            self._require_operator()
        day, tube = self._sample_day(i), self._tube_of(i)
        if day < self._today().isoformat():
            raise Refused(
                f"只能作废当天的登记：{target} 是 {day} 的记录，请由区平台处理",
                f"only today's registrations can be voided here: {target} is from {day}; the district handles it",
            )
        box = self._boxes.get(tube.box or "")
        if box is not None and box.state == "handed_over":
            raise Refused(
                f"管 {tube.id} 已随转运箱 {box.id} 交给转运人员，不能作废，请由区平台处理",
                f"tube {tube.id} left with box {box.id} (handed to the courier); the district handles it",
            )
        who = _who(self._recall([target])[target])  # the name shown: read back from the store
        reason = str(c.args.get("reason") or "mistaken_entry")
        self._emit("void", voided_record_id=target, tube_id=tube.id, reason=reason, via=c.source)
        self._show_("ok", f"已作废 {who}（管 {tube.id}，名额不释放）", f"voided {target} in tube {tube.id} (slot stays used)")
        self._say("已作废")
        self._step.result = {"voided_record_id": target, "tube_id": tube.id}

    def _cmd_replace_tube(self, c: Command) -> None:
        if c.source != "mqtt":
            self._require_operator()
        old_id = str(c.args.get("tube_id") or "") or self._tube or self._last_tube_with_people() or ""
        self._check_replaceable(old_id)
        reason = str(c.args.get("reason") or "broken")
        new_id = str(c.args.get("new_tube_id") or "")
        if new_id:
            if self._source == "prelabelled" and not self._tube_re.fullmatch(new_id):
                raise Refused(f"新管条码 {new_id} 格式不对", f"new tube id {new_id!r} does not look like a tube barcode")
            self._check_new_tube_id(new_id)
            self._replace(old_id, new_id, reason)
        elif self._source == "print":
            self._replace(old_id, self._next_id(self._prefix, 4), reason)
        else:
            if self._pending:
                raise Refused("请先确认或取消待确认的人员", "confirm or reject the pending person first")
            self._pending = {"kind": "replace_tube", "tube_id": old_id, "reason": reason}
            self._show_("confirm", f"更换管 {old_id}：请扫描新试管条码", f"replacing tube {old_id}: scan the new tube")
            self._say("请扫描新试管")

    def _check_replaceable(self, old_id: str) -> None:
        old = self._tubes.get(old_id)
        if old is None or not old.count:
            raise Refused("没有可更换的管", "no tube with people to replace")
        if old.state == "replaced":
            raise Refused(f"管 {old_id} 已更换过", f"tube {old_id} was replaced already")
        if old.box and self._boxes[old.box].state != "open":
            raise Refused(f"管 {old_id} 已封箱，不能在本台更换", f"tube {old_id} is in a sealed box")

    def _last_tube_with_people(self) -> str | None:
        if self._last is not None:
            return self._tube_of(self._last["i"]).id
        return None

    def _cmd_reprint_label(self, c: Command) -> None:
        ref = str(c.args.get("ref") or c.args.get("tube_id") or c.args.get("box_id") or "") or self._tube or self._last_tube_with_people()
        if ref in self._boxes:
            box = self._boxes[ref]
            if box.state == "open":
                raise Refused(f"转运箱 {ref} 未封箱，封箱时打印", f"box {ref} is open; its label prints when it closes")
            self._box_label(box, reprint=True)
        elif ref in self._tubes:
            self._print_tube_label(ref, reprint=True)
        else:
            raise Refused("没有可补打的标签", "nothing to reprint")
        self._show_("ok", f"已补打标签 {ref}", f"label {ref} reprinted")
        self._step.result = {"ref": ref}

    def _cmd_open_box(self, c: Command) -> None:
        if self._box is not None:
            raise Refused(f"转运箱 {self._box} 仍打开，请先封箱", f"box {self._box} is still open; close it first")
        self._open_box()
        box = self._boxes[self._box]  # type: ignore[index]
        self._show_("ok", f"已开箱 {box.id}（{len(box.tubes)}管）", f"box {box.id} opened ({len(box.tubes)} tubes)")

    def _cmd_box_count(self, c: Command) -> None:
        box = self._box_for(c.args, "open")
        try:
            counted = int(c.args.get("count"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise Refused("清点数量无效", "count must be a whole number") from None
        if counted < 0:
            raise Refused("清点数量无效", "count must be a whole number")
        listed = len(box.tubes)
        self._emit("box_count", box_id=box.id, counted=counted, listed=listed, match=counted == listed)
        self._step.result = {"box_id": box.id, "counted": counted, "listed": listed}
        if counted == listed:
            self._show_("ok", f"清点一致：{listed} 管，可以封箱", f"count matches: {listed} tubes; ready to close")
            self._say("清点一致")
        else:
            self._show_(
                "error",
                f"清点不符：清单 {listed} 管，实数 {counted} 管，请核对后重新清点，未核对不能封箱",
                f"count mismatch: {listed} listed, {counted} counted; recount before closing",
                tubes=list(box.tubes),
            )
            self._say("清点不符")

    def _cmd_close_box(self, c: Command) -> None:
        box = self._box_for(c.args, "open")
        if not box.tubes:
            raise Refused("转运箱是空的", "the box is empty")
        if box.counted is None or box.counted != box.listed or box.listed != len(box.tubes):
            raise Refused(
                f"封箱前请清点：清单 {len(box.tubes)} 管，须与实物一致",
                f"count the tubes first: {len(box.tubes)} listed must match the tubes in hand",
            )
        people = sum(len(self._live(self._tubes[t])) for t in box.tubes)
        self._emit("box_close", box_id=box.id, tubes=list(box.tubes), tube_count=len(box.tubes), people=people)
        self._box_label(box, reprint=False)
        if self._unboxed:
            self._open_box()
        self._show_("ok", f"已封箱 {box.id}：{len(box.tubes)} 管 {people} 人，标签和清单已打印", f"box {box.id} closed: {len(box.tubes)} tubes")
        self._say("已封箱")
        self._step.result = {"box_id": box.id, "tubes": len(box.tubes), "people": people}

    def _cmd_handover_box(self, c: Command) -> None:
        courier = str(c.args.get("courier") or "").strip()
        if not courier:
            raise Refused("请填写转运人员", "courier name or id is required")
        box = self._box_for(c.args, "closed")
        if box.state != "closed":
            raise Refused(f"转运箱 {box.id} 未封箱或已交接", f"box {box.id} is not closed or was handed over already")
        self._emit("box_handover", box_id=box.id, courier=courier, tubes=list(box.tubes))
        self._show_("ok", f"转运箱 {box.id} 已交接给 {courier}", f"box {box.id} handed over to {courier}")
        self._say("已交接")
        self._step.result = {"box_id": box.id}

    def _cmd_manual_entry(self, c: Command) -> None:
        a = c.args
        name = str(a.get("name") or "").strip()
        id_type = str(a.get("id_type") or "resident_id")
        number = str(a.get("id_number") or "").strip().upper()
        phone = str(a.get("phone") or "").strip()
        colour = a.get("colour") or None
        if not name:
            raise Refused("请填写姓名", "name is required")
        if id_type not in ID_TYPES:
            raise Refused(f"证件类型无效：{id_type}", f"id_type must be one of {', '.join(ID_TYPES)}")
        if colour not in (None, "green", "yellow", "red"):
            raise Refused("健康码颜色无效", "colour must be green, yellow or red")
        if id_type == "resident_id":
            try:
                number = idnumber.validate(number, self._today())
            except idnumber.IdNumberError as exc:
                raise Refused(f"身份证号无效：{exc.reason}，未登记", f"ID number invalid: {exc.reason_en}; not registered") from None
        elif id_type == "passport" and not (number.isascii() and number.isalnum() and 5 <= len(number) <= 20):
            raise Refused("护照号无效", "passport number must be 5-20 letters and digits")
        elif id_type == "none":
            number = ""
            if not phone:
                raise Refused("无证件人员请填写联系电话（监护人电话）", "people without an ID need a phone (guardian's)")
        person = {"name": name, "id_type": id_type, "id_number": number, "phone": phone, "colour": colour, "key_person": a.get("key_person") in (True, 1, "1", "true", "yes")}
        self._person_arrives(person, "manual")

    def _cmd_push_volunteers(self, c: Command) -> None:
        data = c.args.get("volunteers")
        data = data if isinstance(data, dict) else {"volunteers": data}
        try:
            self._volunteers = vol.parse(data)
        except vol.VolunteerListError as exc:
            raise Refused("志愿者名单无效，仍使用原名单", f"volunteer list refused, the old one stays: {exc}") from None
        self._show_("info", f"持证志愿者名单已更新（{len(self._volunteers)}人）", f"certified volunteer list updated ({len(self._volunteers)})")
        if self._operator:
            try:
                vol.check(self._volunteers, self._operator.cert_id, self._today())
            except vol.NotCertified as exc:
                self._show_("error", f"{exc.reason}：暂停登记，请签退", f"{exc.reason_en}: registration stopped, sign out")
        self._step.result = {"volunteers": len(self._volunteers)}

    def _cmd_push_config(self, c: Command) -> None:
        raise Refused("配置更新由守护进程处理", "push_config is handled by the daemon, not the station core")

    @property
    def volunteers(self) -> Mapping[str, vol.Volunteer]:
        """The current certified list (the shell saves it after a push_volunteers)."""
        return self._volunteers


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _ts(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def _end_of_day(day: dt.date, tz: dt.tzinfo) -> float:
    return dt.datetime.combine(day, dt.time(23, 59, 59), tz).timestamp()


def _person_key(id_type: str, id_number: str, name: str, phone: str) -> str:
    if id_type == "none":
        return f"none:{name}:{phone}"
    return f"{id_type}:{id_number}"


def _who(record: dict | None) -> str:
    """A stored sample's person, masked; "?" when the store no longer has the record."""
    if record is None:
        return "?"
    return f"{mask_name(record['name'])} {mask_id(record['id_number'])}"


def _single_reason(person: dict) -> str | None:
    if person["colour"] == "red":
        return "red_code"
    if person["colour"] == "yellow":
        return "yellow_code"
    if person["key_person"]:
        return "key_person"
    return None


def _masked(person: dict) -> dict:
    return {"name": mask_name(person["name"]), "id": mask_id(person["id_number"]), "colour": person["colour"]}


def _mode_zh(mode: str) -> str:
    return {"1": "单采单检", "10": "10混1", "20": "20混1", "household": "一户一管"}[mode]


def _parse_card(text: str) -> Command:
    """SWABCMD:<name> or SWABCMD:<name>:<arg> -> Command from the scanner."""
    name, _, arg = text[len(COMMAND_PREFIX) :].partition(":")
    name = name.strip()
    if not re.fullmatch(r"[a-z_]{1,40}", name):
        raise Refused("操作卡无法识别", "command card not recognised")
    args = {CARD_ARG[name]: arg.strip()} if arg and name in CARD_ARG else {}
    return Command(name, args, "scanner")
