"""The sampling table's rules as a pure state machine (sans-I/O, like h11).

    station = Station(config, volunteers)
    station.restore(store.meta_items(table_state.PREFIX), store.high_water())
    facts = store.facts(station.lookups(event, now))   # what the step needs from history
    effects = station.handle(event, now, facts)
    store.append(records, meta=station.changes(), marks=station.marks())
    # the shell carries out effects in order: every Persist durably first (one batch,
    # with the state rows the step changed), then labels, screen, sound, command results.

Every state change is a record: ``handle`` builds a record and applies it to the live
state (``table_state``: the shift, open tubes and boxes, counters) with the same reducer
a one-time replay uses, and returns it as a ``Persist``. The rows the step changed
(``changes()``) are stored in the same transaction as its records, so a restart loads
them and continues where this one stopped, at the same cost on a month-old kiosk as on a
new one. What a rule needs from history (a person's samples today, the people of a tube,
a record to void) the shell reads from the store beforehand: ``lookups(event)`` says
what, ``Facts`` carries it. If the shell fails to store a step's records, or ``handle``
raises (a bug), the shell must restore the Station from the store before handling
anything else: the state then matches what is durable.

No clock (``Now`` comes with every event), no files, no logging: full ID numbers live only
in records (the district needs them) and never in Show/Say/CommandResult.

The rules and the decisions taken where the seeds are silent are in docs/records.md.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from firmware_app import idnumber, qr
from firmware_app import volunteers as vol
from firmware_app.config import Config
from firmware_app.model import (
    NO_FACTS,
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
    Facts,
    Label,
    Lookups,
    Now,
    Persist,
    PrintLabel,
    Say,
    Show,
    mask_id,
    mask_name,
    person_key,
    record_id,
)
from firmware_app.table_state import TableState

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
        self._default_mode = sampling.mode
        self._volunteers: dict[str, vol.Volunteer] = dict(volunteers)
        self.state = TableState(self._prefix, sampling.mode)
        self._pending: dict | None = None  # not a record: lost on restart, nothing registered
        self._show = Show("info", "请扫描志愿者证签到", "Scan your volunteer certificate to sign in")
        self._devices: dict[str, dict] = {}
        self._now = Now(0.0, False)
        self._step = _Step()
        self._facts: Facts = NO_FACTS
        self._person_cache: tuple[Any, Any] = (None, None)  # (event, person or Refused) of lookups()
        self._cert: qr.OperatorCert | None = None  # the certificate the cached event carried

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------

    def restore(self, rows: Mapping[str, Any], marks: Mapping[str, Any] | None = None) -> None:
        """Continue from the stored state rows (``store.meta_items("st:")``). ``marks``: the
        store's identifier high-water marks (``store.high_water()``); after a repair they
        are above anything a lost tail may have used, so no seq, tube or box id is reissued."""
        self.state = TableState.from_rows(rows, self._prefix, self._default_mode)
        self._continue_above(marks or {})
        self._restored_show()

    def replay(self, records: Iterable[dict], marks: Mapping[str, Any] | None = None) -> int:
        """Rebuild the state rows from records, in seq order: once, for a store upgraded from
        the old layout (which kept no rows). Returns how many records did not fit and were
        skipped (a tube of an archived day); the shell reports it."""
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
        for stem, n in (marks.get("numbers") or {}).items():
            t["numbers"][stem] = max(int(t["numbers"].get(stem, 0)), int(n))

    def _restored_show(self) -> None:
        op, tube = self.state.table["operator"], self.state.tube(self.state.table["tube"])
        if op is None:
            self._show = Show("info", "请扫描志愿者证签到", "Scan your volunteer certificate to sign in")
        elif tube:
            self._show = Show(
                "info",
                f"已恢复：{op['name']} 在岗，当前管 {tube['id']} 已有 {tube['count']}/{tube['capacity']} 人",
                f"Restored: {op['cert_id']} signed in, tube {tube['id']} has {tube['count']}/{tube['capacity']}",
            )
        else:
            self._show = Show("info", f"已恢复：{op['name']} 在岗", f"Restored: {op['cert_id']} signed in")

    def changes(self) -> dict[str, Any]:
        """The state rows the last step changed ({key: row, or None when gone}): store them
        in the same transaction as the step's records."""
        return self.state.changes()

    def marks(self) -> dict[str, Any]:
        """The identifier high-water marks after the last step (seq, tube and box numbers)."""
        t = self.state.table
        return {"seq": t["seq"], "numbers": dict(t["numbers"])}

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
                raise Refused("未知事件", f"unknown event {type(event).__name__}")
        except Refused as refusal:
            if step.records:  # a rule refused after emitting: a bug; the shell restores from the store
                raise RuntimeError(f"refused after {len(step.records)} record(s): {refusal.message_en}") from refusal
            ok = False
            step.show = Show("error", refusal.message, refusal.message_en, refusal.detail)
            step.says.append("错误")
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
            shown = step.show or self._show
            effects.append(CommandResult(command.name, command.txn, ok, shown.message_en or shown.message, step.result or {}))
        return effects

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
                {"id": tube["id"], "count": tube["count"], "capacity": tube["capacity"], "single_reason": tube["single_reason"]}
                if tube
                else None
            ),
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
            "box": (
                {
                    "id": box["id"],
                    "tubes": len(box["tubes"]),
                    "capacity": box["capacity"],
                    "counted": box["counted"],
                    "listed": box["listed"],
                    "blocked": box["counted"] is not None and box["counted"] != box["listed"],
                }
                if box
                else None
            ),
            "unboxed": len(self.state.unboxed()),
            "devices": {name: dict(d) for name, d in self._devices.items()},
            "seq": t["seq"],
        }

    @property
    def volunteers(self) -> Mapping[str, vol.Volunteer]:
        """The current certified list (the shell saves it after a push_volunteers)."""
        return self._volunteers

    # ------------------------------------------------------------------
    # Lookups and facts
    # ------------------------------------------------------------------

    def _lookups(self, event: Event) -> Lookups:
        person = self._person_of(event)
        if person is not None:
            return Lookups(people=((self._key(person[0]), self._today().isoformat()),))
        command = event if isinstance(event, Command) else None
        if isinstance(event, CodeScanned):
            text = event.text.strip()
            if text.startswith(COMMAND_PREFIX):
                command = _parse_card(text)
            elif self._tube_re.fullmatch(text) and not (len(text) == 18 and idnumber.is_valid(text, self._today())):
                pending = self._pending
                old = (pending["tube_id"],) if pending and pending["kind"] == "replace_tube" else ()
                return Lookups(tubes=(*old, text))
        if command is None:
            return Lookups()
        if command.name == "void":
            return Lookups(records=(str(command.args.get("record_id", "")),))
        if command.name == "replace_tube":
            old = self._replace_target(command)
            new = str(command.args.get("new_tube_id") or "")
            return Lookups(tubes=tuple(t for t in (old, new) if t))
        if command.name in CONFIRMS and self._pending and self._pending["kind"] == "replace_tube":
            return Lookups(tubes=(self._pending["tube_id"],))
        return Lookups()

    def _person_of(self, event: Event) -> tuple[dict, str] | None:
        """The person an event brings (card, personal code, manual entry), or None; a
        Refused for a bad one. Worked out once per event (lookups, then handle)."""
        cached_event, result = self._person_cache
        if cached_event is event:
            if isinstance(result, Refused):
                raise result
            return result
        try:
            result = self._read_person(event)
        except Refused as refusal:
            self._person_cache = (event, refusal)
            raise
        self._person_cache = (event, result)
        return result

    def _read_person(self, event: Event) -> tuple[dict, str] | None:
        if isinstance(event, CardRead):
            card = event.card
            try:
                number = idnumber.validate(card.id_number, self._today())
            except idnumber.IdNumberError as exc:
                raise Refused(f"身份证号无效：{exc.reason}，未登记", f"ID card number invalid: {exc.reason_en}; not registered") from None
            return {"name": card.name.strip(), "id_type": "resident_id", "id_number": number, "phone": "",
                    "colour": None, "key_person": False}, "idcard"
        if isinstance(event, CodeScanned) and event.text.strip().startswith(qr.PREFIX):
            try:
                code = qr.verify(event.text.strip(), self._keys, self._now.at, max_age_s=self._max_code_age_s,
                                 check_not_before=self._now.synced)
            except qr.QrError as exc:
                raise Refused(f"二维码无效：{exc.reason}", f"code refused: {exc.reason_en}", problem=exc.code) from None
            if isinstance(code, qr.OperatorCert):
                self._cert = code
                return None
            return {"name": code.name, "id_type": code.id_type, "id_number": code.id_number, "phone": code.phone,
                    "colour": code.colour, "key_person": code.key_person}, "qr"
        if isinstance(event, Command) and event.name == "manual_entry":
            return _manual_person(event.args, self._today()), "manual"
        return None

    @staticmethod
    def _key(person: dict) -> str:
        return person_key(person["id_type"], person["id_number"], person["name"], person["phone"])

    def _fact(self, table: Mapping, key: Any) -> Any:
        if key not in table:
            raise MissingFacts(f"the shell gave no facts for {key!r} (call lookups() and store.facts() first)")
        return table[key]

    def _tube_used(self, tube_id: str) -> bool:
        if tube_id in self.state.tubes:
            return True
        self._fact(self._facts.tubes, tube_id)
        return tube_id in self._facts.tubes_used

    # ------------------------------------------------------------------
    # Records
    # ------------------------------------------------------------------

    def _local(self, at: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(at, self._tz)

    def _today(self) -> dt.date:
        return self._local(self._now.at).date()

    def _emit(self, kind: str, **fields: Any) -> dict:
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
        person, source = self._person_of(event)  # type: ignore[misc]
        self._person_arrives(person, source)

    def _on_code(self, event: CodeScanned) -> Command | None:
        text = event.text.strip()
        if text.startswith(COMMAND_PREFIX):
            command = _parse_card(text)
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
        op = self.state.table["operator"]
        if op is not None:
            if op["cert_id"] == cert.cert_id:
                self._show_("info", f"{volunteer.name}已在岗", f"{cert.cert_id} is already signed in")
                return
            raise Refused(
                f"{op['name']}仍在岗，请先扫描签退卡",
                f"{op['cert_id']} is still signed in; scan the sign-out card first",
            )
        expires = min(cert.expires_at, _end_of_day(volunteer.expires, self._tz))
        mode = self.state.table["mode"]
        self._emit(
            "shift_start",
            operator=cert.cert_id,
            operator_name=volunteer.name,
            mode=mode,
            cert_expires=self._local(expires).isoformat(timespec="seconds"),
        )
        self._show_("ok", f"{volunteer.name} 签到成功，{_mode_zh(mode)}", f"{cert.cert_id} signed in, mode {mode}")
        self._say("签到成功，请出示身份证或采样码")

    def _require_operator(self) -> dict:
        op = self.state.table["operator"]
        if op is None:
            raise Refused("请先扫描志愿者证签到，未登记", "sign in first (scan your volunteer certificate); not registered")
        try:
            vol.check(self._volunteers, op["cert_id"], self._today())
        except vol.NotCertified as exc:
            raise Refused(f"{exc.reason}：暂停登记，请签退", f"{exc.reason_en}: registration stopped, sign out") from None
        if self._now.at > op["cert_expires"]:
            raise Refused("志愿者证已过期：暂停登记，请签退", "volunteer certificate expired: registration stopped, sign out")
        return op

    def _sign_out(self, reason: str = "sign_out") -> None:
        op = self.state.table["operator"]
        if op is None:
            raise Refused("当前没有志愿者在岗", "nobody is signed in")
        self._pending = None
        if self.state.table["tube"]:
            self._close_tube("end_of_shift")
        duration = max(0, int(self._now.at - op["since"]))
        self._emit(
            "shift_end",
            operator_name=op["name"],
            started_at=self._local(op["since"]).isoformat(timespec="milliseconds"),
            duration_s=duration,
            people=op["people"],
            tubes=op["tubes"],
            reason=reason,
        )
        hours, minutes = divmod(duration // 60, 60)
        self._show_(
            "ok",
            f"{op['name']} 已签退，本班服务时长 {hours}小时{minutes}分，采样 {op['people']} 人",
            f"{op['cert_id']} signed out: {hours} h {minutes} min of service, {op['people']} people",
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
        if single is None and self._source == "prelabelled" and self.state.table["tube"] is None:
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
        """Where and when this person was sampled today (the latest sample not void), or None:
        from the store's samples of this person today (Facts.people)."""
        key = (self._key(person), self._today().isoformat())
        samples = [r for r in self._fact(self._facts.people, key) if r["record_id"] not in self._facts.voided]
        if not samples:
            return None
        r = samples[-1]
        tube = self.state.current(r["tube_id"])
        return {"record_id": r["record_id"], "tube_id": tube["id"] if tube else r["tube_id"], "at": r["at"], **self._where}

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
            sample = self._emit("sample", tube_id=tube_id, position=1, capacity=1, pool_mode="1", single_reason=single,
                                **fields)
            alert = person["colour"] in self.cfg.sampling.get("alert_colours", ("red",))
            if alert:  # the district hears at once on .../alerts; the record_id links the person
                self._emit("alert", reason=f"{person['colour']}_code", sample_record_id=sample["record_id"],
                           tube_id=tube_id, colour=person["colour"])
            self._close_tube("full", tube_id)
            self._show_("ok", f"{who} 已登记（{colour}）单管 {tube_id}", f"registered SINGLE in tube {tube_id}",
                        person=_masked(person), **({"alert": True} if alert else {}))
            self._say("单管已登记")
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
        message = f"{who} 已登记（{colour}），{tube['id']} 第{position}/{tube['capacity']}人"
        message_en = f"registered in tube {tube['id']}: {position}/{tube['capacity']}"
        self._say(f"第{position}人")
        if position >= tube["capacity"]:
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
        self._show_("ok", message, message_en, person=_masked(person), tube_id=tube["id"], position=position)

    def _after_pooled_continue(self) -> None:
        tube = self.state.tube(self.state.table["tube"])
        if tube:
            self._say(f"混管 {tube['id']} 继续，已有{tube['count']}人")

    # ------------------------------------------------------------------
    # Tubes
    # ------------------------------------------------------------------

    def _open_tube(self, tube_id: str, single_reason: str | None) -> str:
        mode = self.state.table["mode"]
        capacity = 1 if single_reason else POOL_CAPACITY[mode]
        self._emit(
            "tube_open",
            tube_id=tube_id,
            capacity=capacity,
            pool_mode="1" if single_reason else mode,
            single_reason=single_reason,
            tubes_source=self._source,
        )
        if self._source == "print":
            self._print_tube_label(tube_id, reprint=False)
        return tube_id

    def _print_tube_label(self, tube_id: str, reprint: bool) -> None:
        tube = self.state.tubes[tube_id]
        reason = tube["single_reason"]
        pool = f"单管 {SINGLE_ZH[reason]}" if reason else ("单采" if tube["capacity"] == 1 else _mode_zh(tube["mode"]))
        lines = (self._site_name, f"{self._where['table']} {self._local(self._now.at):%Y-%m-%d %H:%M}", pool, tube_id)
        if reprint:
            lines += ("补打 / reprint",)
        self._emit("label", ref=tube_id, label_kind="tube", reprint=reprint)
        self._step.prints.append(PrintLabel(Label("tube", tube_id, lines), ref=tube_id))

    def _close_tube(self, reason: str, tube_id: str | None = None) -> None:
        tube = self.state.tubes[tube_id or self.state.table["tube"]]
        self._emit("tube_close", tube_id=tube["id"], reason=reason, count=tube["count"], voided=tube["voided"],
                   samples=list(tube["members"]))
        if tube["count"]:
            self._box_tube(tube["id"])

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
            tube = self.state.tubes.get(tube_id)
            if tube is None:
                # not echoed: an unknown barcode may be someone's ID number
                raise Refused("本台打印标签，该条码不是本台的管", "this table prints its labels; that barcode is not one of its tubes")
            state = {"open": "采样中", "closed": "已封管", "replaced": "已更换"}[tube["state"]]
            self._show_("info", f"管 {tube_id}：{tube['count']}人，{state}", f"tube {tube_id}: {tube['count']} people, {tube['state']}")
            return
        self._require_operator()
        if pending:
            raise Refused("请先确认或取消待确认的人员", "confirm or reject the pending person first")
        self._check_new_tube_id(tube_id)
        current = self.state.tube(self.state.table["tube"])
        if current is not None:
            if current["count"]:
                raise Refused(
                    f"当前管 {current['id']} 有 {current['count']} 人未满，请先扫描关管卡",
                    f"tube {current['id']} is open with {current['count']} people; close it first",
                )
            self._close_tube("manual")
        self._open_tube(tube_id, None)
        mode = self.state.table["mode"]
        self._show_("ok", f"已开管 {tube_id}（{_mode_zh(mode)}），请出示身份证或采样码", f"tube {tube_id} opened ({mode})")
        self._say("已开管，请出示身份证")

    def _check_new_tube_id(self, tube_id: str) -> None:
        if self._tube_used(tube_id):
            raise Refused(f"试管 {tube_id} 已使用过，请换一支", f"tube {tube_id} has been used already; take another")

    def _replace(self, old_id: str, new_id: str, reason: str) -> None:
        old = self.state.tubes[old_id]
        members = self._fact(self._facts.tubes, old_id)
        live = [r for r in members if r["record_id"] not in self._facts.voided]
        self._emit("tube_replace", tube_id=new_id, old_tube_id=old_id, samples=[r["record_id"] for r in members],
                   count=old["count"], reason=reason)
        if self._source == "print":
            self._print_tube_label(new_id, reprint=False)
        self._show_(
            "confirm",
            f"管 {old_id} 已更换为 {new_id}：本管 {len(live)} 人须重新采样，请召回",
            f"tube {old_id} replaced by {new_id}: its {len(live)} people must be swabbed again",
            people=[_who(r) for r in live],
        )
        self._say("已换管，请召回本管人员重新采样")
        self._step.result = {"tube_id": new_id, "old_tube_id": old_id, "people": len(live)}

    # ------------------------------------------------------------------
    # Boxes
    # ------------------------------------------------------------------

    def _box_tube(self, tube_id: str) -> None:
        """A closed tube with people goes into the open box (a box opens by itself if none)."""
        if self.state.table["box"] is None:
            self._open_box()
        else:
            self._fill_box()
        if not self.state.tubes[tube_id]["box"]:
            self._say("转运箱已满，请清点封箱")

    def _open_box(self) -> None:
        self._emit("box_open", box_id=self._next_id(f"{self._prefix}-B", 3), capacity=self._box_capacity)
        self._fill_box()

    def _fill_box(self) -> None:
        box = self.state.boxes[self.state.table["box"]]
        for tube_id in self.state.unboxed()[: max(0, box["capacity"] - len(box["tubes"]))]:
            self._emit("box_add", box_id=box["id"], tube_id=tube_id)

    def _box_for(self, args: dict, state: str) -> dict:
        box_id = args.get("box_id")
        if box_id:
            box = self.state.boxes.get(str(box_id))
            if box is None:
                raise Refused(f"没有转运箱 {box_id}", f"no box {box_id}")
            return box
        if state == "open":
            if self.state.table["box"] is None:
                raise Refused("当前没有打开的转运箱", "no box is open")
            return self.state.boxes[self.state.table["box"]]
        waiting = [b for b in self.state.boxes.values() if b["state"] == "closed"]
        if not waiting:
            raise Refused("没有待交接的已封箱", "no closed box waiting for a courier")
        return waiting[0]

    def _box_people(self, box: dict) -> int:
        return sum(self.state.live(self.state.tubes[t]) for t in box["tubes"])

    def _box_label(self, box: dict, reprint: bool) -> None:
        people = self._box_people(box)
        when = f"{self._local(self._now.at):%Y-%m-%d %H:%M}"
        mark = ("补打 / reprint",) if reprint else ()
        lines = (self._site_name, f"{self._where['table']} {when}", f"{len(box['tubes'])}管 {people}人", box["id"], *mark)
        self._emit("label", ref=box["id"], label_kind="box", reprint=reprint)
        self._step.prints.append(PrintLabel(Label("box", box["id"], lines), ref=box["id"]))
        manifest = [f"转运箱 {box['id']} 清单 / manifest" + (" 补打" if reprint else ""), self._site_name, when]
        for n, tube_id in enumerate(box["tubes"], 1):
            tube = self.state.tubes[tube_id]
            void = tube["voided"]
            reason = tube["single_reason"]
            kind = f"单管{SINGLE_ZH[reason]}" if reason else ("一户一管" if tube["mode"] == "household" else f"{tube['capacity']}混1")
            manifest.append(f"{n:>2}. {tube_id} {kind} {tube['count'] - void}人" + (f" 作废{void}" if void else ""))
        manifest.append(f"共 {len(box['tubes'])} 管 {people} 人")
        self._emit("label", ref=box["id"], label_kind="manifest", reprint=reprint)
        self._step.prints.append(PrintLabel(Label("manifest", box["id"], tuple(manifest)), ref=box["id"]))

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
        if self.state.table["tube"] is None:
            raise Refused("当前没有打开的管", "no tube is open")
        tube = self.state.tubes[self.state.table["tube"]]
        self._close_tube(reason)
        why = "队伍已结束" if reason == "end_of_queue" else "手动"
        self._show_("ok", f"管 {tube['id']} 已关闭（{why}），共 {tube['count']} 人",
                    f"tube {tube['id']} closed ({reason}), {tube['count']} people")
        self._say("已关管")
        self._step.result = {"tube_id": tube["id"], "count": tube["count"]}

    def _cmd_end_of_queue(self, c: Command) -> None:
        self._cmd_close_tube(Command("close_tube", {"reason": "end_of_queue"}, c.source, c.txn))

    def _cmd_switch_mode(self, c: Command) -> None:
        mode = str(c.args.get("mode", ""))
        if mode not in POOL_CAPACITY:
            raise Refused(f"无效的混采模式：{mode}", f"mode must be 1, 10, 20 or household, not {mode!r}")
        self._require_operator()
        previous = self.state.table["mode"]
        if mode == previous:
            self._show_("info", f"已是{_mode_zh(mode)}", f"already in mode {mode}")
            return
        closed = ""
        tube = self.state.tube(self.state.table["tube"])
        if tube:
            self._close_tube("mode_change")
            closed = f"，管 {tube['id']} 已关闭（{tube['count']}人）"
        self._emit("mode", mode=mode, previous=previous)
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
        if not p["single_reason"] and self._source == "prelabelled" and self.state.table["tube"] is None:
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
        last = self.state.table["last"]
        if last is None or last["voided"]:
            raise Refused("没有可作废的最近登记", "no recent registration to void")
        self._void(c, last["rid"], last["tube_id"], last["day"], f"{last['name']} {last['id']}")

    def _cmd_void(self, c: Command) -> None:
        target = str(c.args.get("record_id", ""))
        record = self._fact(self._facts.records, target)
        if record is None or record.get("kind") != "sample" or record.get("device_id") != self._device_id:
            raise Refused(
                f"没有可作废的登记记录 {target}（往日已交接的记录由区平台处理）",
                f"no sample record {target!r} to void here (earlier days' handed-over records: the district)",
            )
        if target in self._facts.voided:
            raise Refused(f"记录 {target} 已作废", f"record {target} is already void")
        self._void(c, target, record["tube_id"], record["at"][:10], _who(record))

    def _void(self, c: Command, target: str, tube_id: str, day: str, who: str) -> None:
        if c.source != "mqtt":
            self._require_operator()
        if day < self._today().isoformat():
            raise Refused(
                f"只能作废当天的登记：{target} 是 {day} 的记录，请由区平台处理",
                f"only today's registrations can be voided here: {target} is from {day}; the district handles it",
            )
        tube = self.state.current(tube_id)
        if tube is None:  # its box left with the courier: the row is gone
            raise Refused(
                f"管 {tube_id} 已随转运箱交给转运人员，不能作废，请由区平台处理",
                f"tube {tube_id} left with its box (handed to the courier); the district handles it",
            )
        reason = str(c.args.get("reason") or "mistaken_entry")
        self._emit("void", voided_record_id=target, tube_id=tube["id"], reason=reason, via=c.source)
        self._show_("ok", f"已作废 {who}（管 {tube['id']}，名额不释放）", f"voided {target} in tube {tube['id']} (slot stays used)")
        self._say("已作废")
        self._step.result = {"voided_record_id": target, "tube_id": tube["id"]}

    def _replace_target(self, c: Command) -> str:
        t = self.state.table
        last = t["last"]
        return str(c.args.get("tube_id") or "") or t["tube"] or (last["tube_id"] if last else "") or ""

    def _cmd_replace_tube(self, c: Command) -> None:
        if c.source != "mqtt":
            self._require_operator()
        old_id = self._replace_target(c)
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
        old = self.state.tubes.get(old_id)
        if old is None or not old["count"]:
            raise Refused("没有可更换的管", "no tube with people to replace")
        if old["state"] == "replaced":
            raise Refused(f"管 {old_id} 已更换过", f"tube {old_id} was replaced already")
        if old["box"] and self.state.boxes[old["box"]]["state"] != "open":
            raise Refused(f"管 {old_id} 已封箱，不能在本台更换", f"tube {old_id} is in a sealed box")

    def _cmd_reprint_label(self, c: Command) -> None:
        t = self.state.table
        last = t["last"]
        ref = str(c.args.get("ref") or c.args.get("tube_id") or c.args.get("box_id") or "") or t["tube"] or (
            last["tube_id"] if last else "")
        if ref in self.state.boxes:
            box = self.state.boxes[ref]
            if box["state"] == "open":
                raise Refused(f"转运箱 {ref} 未封箱，封箱时打印", f"box {ref} is open; its label prints when it closes")
            self._box_label(box, reprint=True)
        elif ref in self.state.tubes and self.state.tubes[ref]["state"] != "replaced":
            self._print_tube_label(ref, reprint=True)
        else:
            raise Refused("没有可补打的标签", "nothing to reprint")
        self._show_("ok", f"已补打标签 {ref}", f"label {ref} reprinted")
        self._step.result = {"ref": ref}

    def _cmd_open_box(self, c: Command) -> None:
        if self.state.table["box"] is not None:
            box_id = self.state.table["box"]
            raise Refused(f"转运箱 {box_id} 仍打开，请先封箱", f"box {box_id} is still open; close it first")
        self._open_box()
        box = self.state.boxes[self.state.table["box"]]
        self._show_("ok", f"已开箱 {box['id']}（{len(box['tubes'])}管）", f"box {box['id']} opened ({len(box['tubes'])} tubes)")

    def _cmd_box_count(self, c: Command) -> None:
        box = self._box_for(c.args, "open")
        try:
            counted = int(str(c.args.get("count")), 10)
        except (TypeError, ValueError):
            raise Refused("清点数量无效", "count must be a whole number") from None
        if counted < 0 or counted > 100_000:
            raise Refused("清点数量无效", "count must be a whole number")
        listed = len(box["tubes"])
        self._emit("box_count", box_id=box["id"], counted=counted, listed=listed, match=counted == listed)
        self._step.result = {"box_id": box["id"], "counted": counted, "listed": listed}
        if counted == listed:
            self._show_("ok", f"清点一致：{listed} 管，可以封箱", f"count matches: {listed} tubes; ready to close")
            self._say("清点一致")
        else:
            self._show_(
                "error",
                f"清点不符：清单 {listed} 管，实数 {counted} 管，请核对后重新清点，未核对不能封箱",
                f"count mismatch: {listed} listed, {counted} counted; recount before closing",
                tubes=list(box["tubes"]),
            )
            self._say("清点不符")

    def _cmd_close_box(self, c: Command) -> None:
        box = self._box_for(c.args, "open")
        if not box["tubes"]:
            raise Refused("转运箱是空的", "the box is empty")
        if box["counted"] is None or box["counted"] != box["listed"] or box["listed"] != len(box["tubes"]):
            raise Refused(
                f"封箱前请清点：清单 {len(box['tubes'])} 管，须与实物一致",
                f"count the tubes first: {len(box['tubes'])} listed must match the tubes in hand",
            )
        people = self._box_people(box)
        self._emit("box_close", box_id=box["id"], tubes=list(box["tubes"]), tube_count=len(box["tubes"]), people=people)
        self._box_label(box, reprint=False)
        if self.state.unboxed():
            self._open_box()
        self._show_("ok", f"已封箱 {box['id']}：{len(box['tubes'])} 管 {people} 人，标签和清单已打印",
                    f"box {box['id']} closed: {len(box['tubes'])} tubes")
        self._say("已封箱")
        self._step.result = {"box_id": box["id"], "tubes": len(box["tubes"]), "people": people}

    def _cmd_handover_box(self, c: Command) -> None:
        courier = str(c.args.get("courier") or "").strip()
        if not courier:
            raise Refused("请填写转运人员", "courier name or id is required")
        box = self._box_for(c.args, "closed")
        if box["state"] != "closed":
            raise Refused(f"转运箱 {box['id']} 未封箱或已交接", f"box {box['id']} is not closed or was handed over already")
        box_id, tubes = box["id"], list(box["tubes"])
        self._emit("box_handover", box_id=box_id, courier=courier, tubes=tubes)
        self._show_("ok", f"转运箱 {box_id} 已交接给 {courier}", f"box {box_id} handed over to {courier}")
        self._say("已交接")
        self._step.result = {"box_id": box_id}

    def _cmd_manual_entry(self, c: Command) -> None:
        person, source = self._person_of(c)  # type: ignore[misc]
        self._person_arrives(person, source)

    def _cmd_push_volunteers(self, c: Command) -> None:
        data = c.args.get("volunteers")
        data = data if isinstance(data, dict) else {"volunteers": data}
        try:
            self._volunteers = vol.parse(data)
        except vol.VolunteerListError as exc:
            raise Refused("志愿者名单无效，仍使用原名单", f"volunteer list refused, the old one stays: {exc}") from None
        self._show_("info", f"持证志愿者名单已更新（{len(self._volunteers)}人）", f"certified volunteer list updated ({len(self._volunteers)})")
        op = self.state.table["operator"]
        if op:
            try:
                vol.check(self._volunteers, op["cert_id"], self._today())
            except vol.NotCertified as exc:
                self._show_("error", f"{exc.reason}：暂停登记，请签退", f"{exc.reason_en}: registration stopped, sign out")
        self._step.result = {"volunteers": len(self._volunteers)}

    def _cmd_push_config(self, c: Command) -> None:
        raise Refused("配置更新由守护进程处理", "push_config is handled by the daemon, not the station core")


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _end_of_day(day: dt.date, tz: dt.tzinfo) -> float:
    return dt.datetime.combine(day, dt.time(23, 59, 59), tz).timestamp()


def _manual_person(a: Mapping[str, Any], today: dt.date) -> dict:
    """The person a manual entry describes, checked (Refused says what is wrong)."""
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
            number = idnumber.validate(number, today)
        except idnumber.IdNumberError as exc:
            raise Refused(f"身份证号无效：{exc.reason}，未登记", f"ID number invalid: {exc.reason_en}; not registered") from None
    elif id_type == "passport" and not (number.isascii() and number.isalnum() and 5 <= len(number) <= 20):
        raise Refused("护照号无效", "passport number must be 5-20 letters and digits")
    elif id_type == "none":
        number = ""
        if not phone:
            raise Refused("无证件人员请填写联系电话（监护人电话）", "people without an ID need a phone (guardian's)")
    return {"name": name, "id_type": id_type, "id_number": number, "phone": phone, "colour": colour,
            "key_person": a.get("key_person") in (True, 1, "1", "true", "yes")}


def _who(record: dict | None) -> str:
    """A stored sample's person, masked; "?" when the store no longer has the record."""
    if record is None:
        return "?"
    number = record["id_number"] if record.get("id_type") != "none" else ""
    return f"{mask_name(record['name'])} {mask_id(number)}"


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
