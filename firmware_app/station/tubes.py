"""Tubes: open (a printed label or a lab barcode), close, reprint; a broken tube replaced
in one step; voids of mistaken registrations."""

from __future__ import annotations

import re

from firmware_app import labels
from firmware_app.model import POOL_CAPACITY, Command, PrintLabel
from firmware_app.station.common import Refused, Rules, Words, _who, mode_words, words


class TubeRules(Rules):
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
                raise Refused(words("tube.not_ours"))
            state = words(f"tube.state.{tube['state']}")
            self._show_("info", *words("tube.status", tube_id=tube_id, count=tube["count"], state=state))
            return
        self._require_operator()
        current = self.state.tube(self.state.table["tube"])
        if current is not None and current["id"] == tube_id:  # the open tube scanned again: not "used"
            self._show_("info", *words("tube.in_use", tube_id=tube_id, count=current["count"], capacity=current["capacity"]))
            self._speak("tube.in_use_spoken")
            return
        if pending:
            raise Refused(words("tube.pending_first"))
        self._check_new_tube_id(tube_id)
        if current is not None:
            if current["count"]:
                raise Refused(words("tube.close_first", tube_id=current["id"], count=current["count"]))
            self._close_tube("manual")
        self._open_tube(tube_id, None)
        mode = self.state.table["mode"]
        self._show_("ok", *words("tube.opened", tube_id=tube_id, mode=mode_words(mode)))
        self._speak("tube.opened_spoken")

    def _check_new_tube_id(self, tube_id: str) -> None:
        if self._tube_used(tube_id):
            raise Refused(words("tube.used", tube_id=tube_id))

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
        self._show_("confirm", *words("tube.replaced", old_tube_id=old_id, tube_id=new_id, count=len(live)),
                    people=people, recall={"old_tube_id": old_id, "tube_id": new_id})
        self._speak("tube.replaced_spoken", count=len(live))
        self._step.result = {"tube_id": new_id, "old_tube_id": old_id, "people": len(live)}

    def _cmd_close_tube(self, c: Command) -> None:
        reason = str(c.args.get("reason") or "manual")
        if reason not in ("manual", "end_of_queue"):
            raise Refused(words("tube.close_reason_invalid", reason=reason))
        if self.state.table["tube"] is None:
            raise Refused(words("tube.none_open"))
        tube = self.state.tubes[self.state.table["tube"]]
        self._close_tube(reason)
        why = "household" if reason == "manual" and tube["mode"] == "household" else reason
        # a person waiting for a confirm stays waiting, and the panel says so (amber, not green)
        self._show_("confirm" if self._pending else "ok",
                    *words("tube.closed", tube_id=tube["id"], why=Words(words(f"tube.close_why.{why}").zh, reason),
                           count=tube["count"], next=self._next_step()), pending=self._pending_view())
        self._speak("tube.closed_spoken")
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
                raise Refused(words("tube.new_id_not_barcode"))
            if self._source == "print" and not re.fullmatch(re.escape(self._prefix) + r"[0-9]{10,}", new_id):
                # this table prints its own ids: anything else (an ID number typed by mistake) is refused
                raise Refused(words("tube.new_id_not_ours"))
            self._check_new_tube_id(new_id)
            self._replace(old_id, new_id, reason)
        elif self._source == "print":
            self._replace(old_id, self._next_id(self._prefix, 4), reason)
        else:
            if self._pending:
                raise Refused(words("tube.pending_first"))
            self._pending = {"kind": "replace_tube", "tube_id": old_id, "reason": reason}
            self._show_("confirm", *words("tube.replacing", tube_id=old_id))
            self._speak("tube.replacing_spoken")

    def _check_replaceable(self, old_id: str) -> None:
        old = self.state.tubes.get(old_id)
        if old is None or not old["count"]:
            raise Refused(words("tube.nothing_to_replace"))
        if old["state"] == "replaced":
            raise Refused(words("tube.replaced_already", tube_id=old_id))
        if old["box"] and self.state.boxes[old["box"]]["state"] != "open":
            raise Refused(words("tube.in_sealed_box", tube_id=old_id))

    def _cmd_reprint_label(self, c: Command) -> None:
        t = self.state.table
        last = t["last"]
        ref = str(c.args.get("ref") or c.args.get("tube_id") or c.args.get("box_id") or "") or t["tube"] or (
            last["tube_id"] if last else "")
        if ref in self.state.boxes:
            box = self.state.boxes[ref]
            if box["state"] == "open":
                raise Refused(words("box.label_when_closed", box_id=ref))
            self._box_label(box, reprint=True)
        elif ref in self.state.tubes and self.state.tubes[ref]["state"] != "replaced":
            self._print_tube_label(ref, reprint=True)
        else:
            raise Refused(words("tube.nothing_to_reprint"))
        self._show_("ok", *words("tube.reprinted", ref=ref))
        self._step.result = {"ref": ref}

    def _cmd_void_last(self, c: Command) -> None:
        last = self.state.table["last"]
        if last is None or last["voided"]:
            raise Refused(words("void.no_recent"))
        self._void(c, last["rid"], last["tube_id"], last["day"], f"{last['name']} {last['id']}")

    def _cmd_void(self, c: Command) -> None:
        target = str(c.args.get("record_id", ""))
        record = self._fact(self._facts.records, target)
        if record is None or record.get("kind") != "sample" or record.get("device_id") != self._device_id:
            raise Refused(words("void.no_record", record_id=target))
        if target in self._facts.voided:
            raise Refused(words("void.already", record_id=target))
        self._void(c, target, record["tube_id"], record["at"][:10], _who(record))

    def _void(self, c: Command, target: str, tube_id: str, day: str, who: str) -> None:
        if c.source != "mqtt":
            self._require_operator()
        if day < self._today().isoformat():
            raise Refused(words("void.not_today", record_id=target, day=day))
        tube = self.state.current(tube_id)
        if tube is None:  # its box left with the courier: the row is gone
            raise Refused(words("void.tube_left", tube_id=tube_id))
        reason = str(c.args.get("reason") or "mistaken_entry")
        self._emit("void", voided_record_id=target, tube_id=tube["id"], reason=reason, via=c.source)
        self._show_("ok", *words("void.done", who=Words(who, target), tube_id=tube["id"]))
        self._speak("void.done_spoken")
        self._step.result = {"voided_record_id": target, "tube_id": tube["id"]}
