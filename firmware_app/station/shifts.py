"""Volunteer shifts (sign in with a certificate, sign out with service time), the"""

from __future__ import annotations

import datetime as dt

from firmware_app import qr
from firmware_app import volunteers as vol
from firmware_app.model import POOL_CAPACITY, Command, DeviceError, DeviceStatus
from firmware_app.station.common import DEVICE_ZH, Refused, _mode_zh


class ShiftRules:
    """Volunteer shifts (sign in with a certificate, sign out with service time), the
    certified list, and the table's pooling mode."""

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
        zh, en = self._next_step()
        self._show_("ok", f"{volunteer.name} 签到成功，{_mode_zh(mode)}。{zh}", f"{cert.cert_id} signed in, mode {mode}. {en}")
        self._say(f"签到成功，{zh}")

    def _next_step(self) -> tuple[str, str]:
        """What the volunteer does next, in a few words (zh, en): the idle screen says it."""
        t, p = self.state.table, self._pending
        if t["operator"] is None:
            return "请扫描志愿者证签到", "Scan your volunteer certificate to sign in"
        if p is not None:
            if p["kind"] == "replace_tube":
                return "请扫描新试管条码", "Scan the new tube's barcode"
            if p["kind"] == "command":  # a destructive command card waits for its confirm
                return "请按确认执行或取消", "Confirm to carry it out, or reject"
            if p["single_reason"] and self._source == "prelabelled":
                return "请取单独试管并扫描其条码，或按取消", "Take a separate tube and scan it, or reject"
            return "请按确认或取消", "Confirm or reject"
        tube = self.state.tube(t["tube"])
        if self._source == "prelabelled" and tube is None:
            return "请扫描试管条码开管", "Scan a tube's barcode to open it"
        if t["mode"] == "household" and tube is not None and tube["count"]:
            return "同户下一人请刷证；本户结束请按封管", "Next of the same household, or close the tube when the household is done"
        return "请出示身份证或采样码", "Show an ID card or a sampling code"

    def _on_device_status(self, event: DeviceStatus) -> None:
        self._devices[event.device] = {"ok": event.ok, "reason": event.reason}
        name = DEVICE_ZH.get(event.device, event.device)
        if event.ok:
            # only a device's own error gives way to "recovered": never a person's result or a pending confirm
            if self._show.level == "error" and self._show.detail.get("device") == event.device and self._pending is None:
                zh, en = self._next_step()
                self._show_("info", f"{name}已恢复。{zh}", f"{event.device} ready again. {en}")
        else:
            self._show_("error", f"{name}故障：{event.reason}", f"{event.device} not working: {event.reason}",
                        device=event.device)
            self._say(f"{name}故障")

    def _on_device_error(self, event: DeviceError) -> None:
        name = DEVICE_ZH.get(event.device, event.device)
        self._show_("error", f"{name}：{event.reason}，请重试", f"{event.device}: {event.reason}; try again", device=event.device)
        self._say(f"{name}读取失败，请重试")

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

    def _cmd_sign_out(self, c: Command) -> None:
        self._sign_out()

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


def _end_of_day(day: dt.date, tz: dt.tzinfo) -> float:
    return dt.datetime.combine(day, dt.time(23, 59, 59), tz).timestamp()
