"""Tubes: open (a printed label or a lab barcode), close, reprint; a broken tube"""

from __future__ import annotations

import re

from firmware_app import labels
from firmware_app.model import POOL_CAPACITY, Command, PrintLabel
from firmware_app.station.common import Refused, _mode_zh, _who


class TubeRules:
    """Tubes: open (a printed label or a lab barcode), close, reprint; a broken tube
    replaced in one step; voids of mistaken registrations."""

    def _tube_used(self, tube_id: str) -> bool:
        if tube_id in self.state.tubes:
            return True
        self._fact(self._facts.tubes, tube_id)
        return tube_id in self._facts.tubes_used

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
        label = labels.tube_label(tube_id, self._site_name, self._where["table"],
                                  f"{self._local(self._now.at):%Y-%m-%d %H:%M}", tube["capacity"],
                                  tube["single_reason"], mode=tube["mode"], reprint=reprint)
        self._emit("label", ref=tube_id, label_kind="tube", reprint=reprint)
        self._step.prints.append(PrintLabel(label, ref=tube_id))

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
        current = self.state.tube(self.state.table["tube"])
        if current is not None and current["id"] == tube_id:  # the open tube scanned again: not "used"
            self._show_("info", f"管 {tube_id} 正在使用，已有 {current['count']}/{current['capacity']} 人，请继续",
                        f"tube {tube_id} is the open one: {current['count']}/{current['capacity']}; go on")
            self._say("本管正在使用，请继续")
            return
        if pending:
            raise Refused("请先确认或取消待确认的人员", "confirm or reject the pending person first")
        self._check_new_tube_id(tube_id)
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
        people = [_who(r) for r in live]
        # the recall slip: who must come back to be swabbed again (masked, as on screen)
        when = f"{self._local(self._now.at):%Y-%m-%d %H:%M}"
        slip = labels.recall_slip(old_id, new_id, self._site_name, when, people)
        self._emit("label", ref=new_id, label_kind="manifest", reprint=False)
        self._step.prints.append(PrintLabel(slip, ref=new_id))
        self._show_(
            "confirm",
            f"管 {old_id} 已更换为 {new_id}：本管 {len(live)} 人须重新采样，请召回（名单已打印）",
            f"tube {old_id} replaced by {new_id}: its {len(live)} people must be swabbed again (recall slip printed)",
            people=people, recall={"old_tube_id": old_id, "tube_id": new_id},
        )
        self._say(f"已换管，请召回{len(live)}人重新采样")
        self._step.result = {"tube_id": new_id, "old_tube_id": old_id, "people": len(live)}

    def _cmd_close_tube(self, c: Command) -> None:
        reason = str(c.args.get("reason") or "manual")
        if reason not in ("manual", "end_of_queue"):
            raise Refused(f"关管原因无效：{reason}", f"close reason must be manual or end_of_queue, not {reason!r}")
        if self.state.table["tube"] is None:
            raise Refused("当前没有打开的管", "no tube is open")
        tube = self.state.tubes[self.state.table["tube"]]
        self._close_tube(reason)
        why = "队伍已结束" if reason == "end_of_queue" else ("本户结束" if tube["mode"] == "household" else "手动")
        zh, en = self._next_step()
        # a person waiting for a confirm stays waiting, and the panel says so (amber, not green)
        self._show_("confirm" if self._pending else "ok", f"管 {tube['id']} 已关闭（{why}），共 {tube['count']} 人。{zh}",
                    f"tube {tube['id']} closed ({reason}), {tube['count']} people. {en}", pending=self._pending_view())
        self._say("已关管")
        self._step.result = {"tube_id": tube["id"], "count": tube["count"]}

    def _cmd_end_of_queue(self, c: Command) -> None:
        self._cmd_close_tube(Command("close_tube", {"reason": "end_of_queue"}, c.source, c.txn))

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
                raise Refused("新管条码格式不对", "the new tube id does not look like a tube barcode")
            if self._source == "print" and not re.fullmatch(re.escape(self._prefix) + r"[0-9]{10,}", new_id):
                # this table prints its own ids: anything else (an ID number typed by mistake) is refused
                raise Refused("新管号不是本台的管号格式", "the new tube id is not one of this table's printed ids")
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
