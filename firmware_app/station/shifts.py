"""Volunteer shifts (sign in with a certificate, sign out with service time), the
certified list, the table's pooling mode, and what the screen says about devices."""

from __future__ import annotations

import datetime as dt
import re

from firmware_app import qr
from firmware_app import volunteers as vol
from firmware_app.model import POOL_CAPACITY, Command, DeviceError, DeviceStatus
from firmware_app.station.common import (
    Refused,
    Rules,
    Words,
    device_words,
    mode_words,
    words,
)


class ShiftRules(Rules):
    """Volunteer shifts (sign in with a certificate, sign out with service time), the
    certified list, and the table's pooling mode."""

    def _sign_in(self, cert: qr.OperatorCert) -> None:
        try:
            volunteer = vol.check(self._volunteers, cert.cert_id, self._today())
        except vol.NotCertified as exc:
            raise Refused(Words(exc.reason, exc.reason_en), cert_id=cert.cert_id) from None
        op = self.state.table["operator"]
        if op is not None:
            if op["cert_id"] == cert.cert_id:
                self._show_("info", *words("shift.already_in", who=Words(volunteer.name, cert.cert_id)))
                return
            raise Refused(words("shift.other_signed_in", who=Words(op["name"], op["cert_id"])))
        expires = min(cert.expires_at, _end_of_day(volunteer.expires, self._tz))
        # a new shift starts in the station file's mode (docs/operations.md), not in
        # whatever the last volunteer switched to
        mode = self._default_mode
        if self.state.table["tube"] and self.state.tubes[self.state.table["tube"]]["mode"] != mode:
            self._close_tube("mode_change")
        self._emit(
            "shift_start",
            operator=cert.cert_id,
            operator_name=volunteer.name,
            mode=mode,
            cert_expires=self._local(expires).isoformat(timespec="seconds"),
        )
        next_step = self._next_step()
        self._show_("ok", *words("shift.signed_in", who=Words(volunteer.name, cert.cert_id), mode=mode_words(mode),
                                 next=next_step))
        self._speak("shift.signed_in_spoken", next=next_step)

    def _next_step(self) -> Words:
        """What the volunteer does next, in a few words: the idle screen says it."""
        return words(f"shift.next.{self._next_step_key()}")

    def _next_step_key(self) -> str:
        t, p = self.state.table, self._pending
        if t["operator"] is None:
            return "sign_in"
        if p is not None:
            if p["kind"] == "replace_tube":
                return "scan_new_tube"
            if p["kind"] == "command":  # a destructive command card waits for its confirm
                return "confirm_command"
            if p["single_reason"] and self._source == "prelabelled":
                return "scan_single_tube"
            return "confirm"
        tube = self.state.tube(t["tube"])
        if self._source == "prelabelled" and tube is None:
            return "scan_tube"
        if t["mode"] == "household" and tube is not None and tube["count"]:
            return "household_next"
        return "show_id"

    def _on_device_status(self, event: DeviceStatus) -> None:
        self._devices[event.device] = {"ok": event.ok, "reason": event.reason}
        name = device_words(event.device)
        if event.ok:
            # only a device's own error gives way to "recovered": never a person's result or a pending confirm
            if self._show.level == "error" and self._show.detail.get("device") == event.device and self._pending is None:
                self._show_("info", *words("station.device_back", device=name, next=self._next_step()))
        else:
            reason = _device_words(event)
            said = (words("station.device_down", device=name, reason=reason) if reason
                    else words("station.device_down_raw", device=name))
            # the raw reason (English, an errno) is the technician's: beside the words, never in them
            self._show_("error", *said, device=event.device, reason=event.reason)
            self._speak("station.device_down_spoken", device=name)

    def _on_device_error(self, event: DeviceError) -> None:
        name = device_words(event.device)
        reason = _device_words(event)
        said = (words("station.device_error", device=name, reason=reason) if reason
                else words("station.device_error_raw", device=name))
        self._show_("error", *said, device=event.device, reason=event.reason)
        self._speak("station.device_error_spoken", device=name)

    def _require_operator(self) -> dict:
        op = self.state.table["operator"]
        if op is None:
            raise Refused(words("shift.sign_in_first"))
        try:
            vol.check(self._volunteers, op["cert_id"], self._today())
        except vol.NotCertified as exc:
            raise Refused(words("shift.not_certified", reason=Words(exc.reason, exc.reason_en))) from None
        if self._now.at > op["cert_expires"]:
            raise Refused(words("shift.cert_expired"))
        return op

    def _sign_out(self, reason: str = "sign_out") -> None:
        op = self.state.table["operator"]
        if op is None:
            raise Refused(words("shift.nobody_signed_in"))
        self._pending = None
        closed = self.state.tube(self.state.table["tube"]) if self.state.table["tube"] else None
        if closed is not None:
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
        said = words("shift.signed_out", who=Words(op["name"], op["cert_id"]), hours=hours, minutes=minutes,
                     people=op["people"])
        if closed is not None and closed["count"]:  # the volunteer sees that the tube in hand is closed, and with how many
            said = words("shift.signed_out_closed", who=Words(op["name"], op["cert_id"]), hours=hours,
                         minutes=minutes, people=op["people"], tube=closed["id"], count=closed["count"])
        self._show_("ok", *said, duration_s=duration)
        self._speak("shift.signed_out_spoken")

    def _cmd_sign_out(self, c: Command) -> None:
        self._sign_out()

    def _cmd_switch_mode(self, c: Command) -> None:
        mode = str(c.args.get("mode", ""))
        if mode not in POOL_CAPACITY:
            raise Refused(words("shift.mode_invalid", mode=mode))
        self._require_operator()
        previous = self.state.table["mode"]
        if mode == previous:
            self._show_("info", *words("shift.mode_already", mode=mode_words(mode)))
            return
        closed = Words("", "")
        tube = self.state.tube(self.state.table["tube"])
        if tube:
            self._close_tube("mode_change")
            closed = words("shift.mode_tube_closed", tube_id=tube["id"], count=tube["count"])
        self._emit("mode", mode=mode, previous=previous)
        self._show_("ok", *words("shift.mode_switched", mode=mode_words(mode), closed=closed))
        self._say(mode_words(mode).zh)

    def _cmd_push_volunteers(self, c: Command) -> None:
        data = c.args.get("volunteers")
        data = data if isinstance(data, dict) else {"volunteers": data}
        try:
            self._volunteers = vol.parse(data)
        except vol.VolunteerListError as exc:
            # the list's problem (English, from the parser) is the district's: in the response, not the screen
            raise Refused(words("shift.volunteers_refused"), reason=str(exc)) from None
        self._show_("info", *words("shift.volunteers_updated", count=len(self._volunteers)))
        op = self.state.table["operator"]
        if op:
            try:
                vol.check(self._volunteers, op["cert_id"], self._today())
            except vol.NotCertified as exc:
                self._show_("error", *words("shift.not_certified", reason=Words(exc.reason, exc.reason_en)))
        self._step.result = {"volunteers": len(self._volunteers)}


def _end_of_day(day: dt.date, tz: dt.tzinfo) -> float:
    return dt.datetime.combine(day, dt.time(23, 59, 59), tz).timestamp()


_HAN = re.compile(r"[\u3400-\u9fff]")


def _device_words(event: DeviceStatus | DeviceError) -> Words | None:
    """The drivers' words for the volunteer (``event.zh``/``en``, from the catalogue), else
    what ``volunteer_reason`` finds in the one-line reason (an event built without them)."""
    return Words(event.zh, event.en) if event.zh and event.en else volunteer_reason(event.reason)


def volunteer_reason(reason: str) -> Words | None:
    """A device's reason in words a volunteer reads. The drivers report ``"<zh-CN> / <en>"``
    (the English half may itself hold a " / "; the zh half may quote a nested pair): split
    at the first " / " with Chinese before it and none after. Chinese alone is shown as it
    is; anything else (an errno tuple, a library's English) is for the technician only, and
    None says so."""
    text = reason.strip()
    at = text.find(" / ")
    while at != -1:
        zh_part, en_part = text[:at].strip(), text[at + 3 :].strip()
        if _HAN.search(zh_part) and en_part and not _HAN.search(en_part):
            return Words(zh_part, en_part)
        at = text.find(" / ", at + 1)
    return Words(text, text) if _HAN.search(text) else None
