"""Volunteer shifts (sign in with a certificate, sign out with service time), the"""

from __future__ import annotations

import datetime as dt

from firmware_app import qr
from firmware_app import volunteers as vol
from firmware_app.model import POOL_CAPACITY, Command
from firmware_app.station.common import Refused, _mode_zh


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
