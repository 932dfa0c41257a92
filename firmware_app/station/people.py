"""People arriving: ID cards, personal codes and manual entry; the same-day"""

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
from firmware_app.station.common import COLOUR_ZH, ID_TYPES, SINGLE_ZH, Refused


class PeopleRules:
    """People arriving: ID cards, personal codes and manual entry; the same-day
    duplicate and single-tube checks; pending, confirm and reject; registration into a tube."""

    def _pending_view(self) -> dict | None:
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

    def _on_card(self, event: CardRead) -> None:
        person, source = self._person_of(event)  # type: ignore[misc]
        self._person_arrives(person, source)

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
            if duplicate_of.get("other_name"):
                # same ID number, another name: a mistyped number, a shared card, or a
                # misread one; the volunteer must look at the person's document
                parts.append(f"注意：同一证件号此前登记姓名为 {duplicate_of['other_name']}，请核对证件")
                parts_en.append(f"NOTE: the same ID number was registered as {duplicate_of['other_name']}; check the document")
                self._say("证件号相同但姓名不同，请核对证件")
            else:
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
        return {"record_id": r["record_id"], "tube_id": tube["id"] if tube else r["tube_id"], "at": r["at"],
                # same number, another name: masked, for the screen (never the full name)
                "other_name": mask_name(r["name"]) if r.get("name") and r["name"].strip() != person["name"].strip() else None,
                **self._where}

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
        if tube["mode"] == "household" and position < tube["capacity"]:
            message += "；本户结束请按封管"
            message_en += "; close the tube when the household is done"
            if position == 1:
                self._say("本户结束请按封管")
        if position >= tube["capacity"]:
            self._close_tube("full")
            self._say("本管已满")
            message += "，本管已满"
            message_en += ", tube full"
            if self._source == "print" and tube["capacity"] == 1:
                pass  # 单采单检: each person's tube opens (and prints) when they arrive, never ahead
            elif self._source == "print":
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

    def _confirm(self, kind: str | None) -> None:
        p = self._pending
        if p is None or (kind == "duplicate" and not (p["kind"] == "person" and p["duplicate_of"])):
            raise Refused("没有待确认的事项", "nothing to confirm")
        if p["kind"] == "command":  # a destructive card held for this confirm
            if kind == "duplicate":
                raise Refused("没有待确认的重复采样", "no duplicate to confirm")
            self._pending = None
            self._on_command(p["command"])
            return
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

    def _hold(self, command: Command) -> None:
        """A destructive command card: checked now, done only after a confirm on the screen."""
        try:
            spec = commands.check(command.name, command.args, command.source)
        except commands.CommandError as exc:
            raise Refused(exc.message, exc.message_en) from None
        if self._pending is not None:
            raise Refused("请先确认或取消待处理事项", "confirm or reject what is pending first")
        self._pending = {"kind": "command", "command": command}
        self._show_("confirm", f"请确认：{spec.zh}", f"confirm: {spec.en}", command=spec.name)
        self._say(f"请确认{spec.zh}")

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

    def _cmd_open_view(self, c: Command) -> None:
        """A command card opens a page of the screen (a card cannot carry a person's details)."""
        self._require_operator()
        view = str(c.args.get("view"))
        zh = {"manual": "请在屏幕上填写手工登记", "box": "转运箱：请在屏幕上清点、封箱或交接", "people": "本管人员见屏幕"}[view]
        self._show_("info", zh, f"{view} page opened on the screen", open=view)

    def _cmd_manual_entry(self, c: Command) -> None:
        person, source = self._person_of(c)  # type: ignore[misc]
        self._person_arrives(person, source)


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
    elif id_type in _ID_PATTERNS:
        pattern, zh, en = _ID_PATTERNS[id_type]
        number = number.replace(" ", "")
        if not re.fullmatch(pattern, number) or (id_type == "foreign_permanent" and len(number) == 18
                                                  and idnumber.check_char(number[:17]) != number[17]):
            raise Refused(f"{zh}号码格式不对，未登记", f"{en} number is not valid; not registered")
    elif id_type == "none":
        number = ""
        if not phone:
            raise Refused("无证件人员请填写联系电话（监护人电话）", "people without an ID need a phone (guardian's)")
    if not phone_numbers.valid(phone):
        raise Refused("联系电话无效（手机、座机如 0769-12345678，或 +国家码）",
                      "phone number invalid: a mobile, a landline such as 0769-12345678, or +country code")
    return {"name": name, "id_type": id_type, "id_number": number, "phone": phone, "colour": colour,
            "key_person": a.get("key_person") in (True, 1, "1", "true", "yes")}


# The number each document carries, checked where a check exists: 港澳通行证 H/M + 8 digits
# (older 10), 台湾通行证 8 digits (older 10), 外国人永久居留身份证 3 letters + 12 digits
# (2004 series) or 18 characters starting 9 with the resident ID's check character (2023).
_ID_PATTERNS = {
    "passport": (r"[A-Z0-9]{5,20}", "护照", "passport"),
    "hk_macau_permit": (r"[HM][0-9]{8}([0-9]{2})?", "港澳居民来往内地通行证", "Hong Kong/Macau permit"),
    "taiwan_permit": (r"[0-9]{8}([0-9]{2})?", "台湾居民来往大陆通行证", "Taiwan permit"),
    "foreign_permanent": (r"[A-Z]{3}[0-9]{12}|9[0-9]{16}[0-9X]", "外国人永久居留身份证", "foreign permanent resident card"),
}


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
