"""Transport boxes: tubes go in as they close, the packer's count must match the list
before the box closes (label and manifest print), hand-over to a courier."""

from __future__ import annotations

from typing import Any

from firmware_app import labels
from firmware_app.model import Command, PrintLabel, mask_name
from firmware_app.station.common import Refused, Rules, words


class BoxRules(Rules):
    """Transport boxes: tubes go in as they close, the packer's count must match the
    list before the box closes (label and manifest print), hand-over to a courier."""

    def _box_tube(self, tube_id: str) -> None:
        """A closed tube with people goes into the open box (a box opens by itself if none)."""
        if self.state.table["box"] is None:
            self._open_box()
        else:
            self._fill_box()
        if not self.state.tubes[tube_id]["box"]:
            self._speak("box.full_spoken")

    def _open_box(self) -> str:
        box_id = self._next_id(f"{self._prefix}-B", 3)
        self._emit("box_open", box_id=box_id, capacity=self._box_capacity)
        self._fill_box()
        return box_id

    def _fill_box(self) -> None:
        box = self.state.boxes[self.state.table["box"]]
        for tube_id in self.state.unboxed()[: max(0, box["capacity"] - len(box["tubes"]))]:
            self._emit("box_add", box_id=box["id"], tube_id=tube_id)

    def _box_for(self, args: dict[str, Any], state: str) -> dict[str, Any]:
        box_id = args.get("box_id")
        if box_id:
            box = self.state.boxes.get(str(box_id))
            if box is None:
                raise Refused(words("box.unknown", box_id=box_id))
            return box
        if state == "open":
            if self.state.table["box"] is None:
                raise Refused(words("box.none_open"))
            return self.state.boxes[self.state.table["box"]]
        waiting = [b for b in self.state.boxes.values() if b["state"] == "closed"]
        if not waiting:
            raise Refused(words("box.none_closed"))
        return waiting[0]

    def _box_view(self, box: dict[str, Any]) -> dict[str, Any]:
        """A box as the screen's box view shows it: its tubes (id, people) and the count."""
        tubes = [self.state.tubes[t] for t in box["tubes"] if t in self.state.tubes]
        return {
            "id": box["id"], "tubes": len(box["tubes"]), "capacity": box["capacity"], "state": box["state"],
            "counted": box["counted"], "listed": box["listed"],
            "blocked": box["counted"] is not None and box["counted"] != box["listed"],
            "people": sum(self.state.live(t) for t in tubes),
            "tube_list": [{"id": t["id"], "people": self.state.live(t), "single": bool(t["single_reason"])} for t in tubes],
        }

    def _box_people(self, box: dict[str, Any]) -> int:
        return sum(self.state.live(self.state.tubes[t]) for t in box["tubes"])

    def _box_label(self, box: dict[str, Any], reprint: bool) -> None:
        people = self._box_people(box)
        when = f"{self._local(self._now.at):%Y-%m-%d %H:%M}"
        table = self._where["table"]
        self._emit("label", ref=box["id"], label_kind="box", reprint=reprint)
        box_label = labels.box_label(box["id"], self._site_name, table, when, len(box["tubes"]), people, reprint=reprint)
        self._step.prints.append(PrintLabel(box_label, ref=box["id"]))
        tubes = []
        for tube_id in box["tubes"]:
            tube = self.state.tubes[tube_id]
            pool = labels.pool_text(tube["capacity"], tube["mode"], tube["single_reason"])
            tubes.append((tube_id, pool, tube["count"] - tube["voided"], tube["voided"]))
        op = self.state.table["operator"]
        manifest = labels.manifest_label(box["id"], self._site_name, f"{table} {when}", tubes,
                                         sampler=mask_name(op["name"]) if op else "", reprint=reprint)
        self._emit("label", ref=box["id"], label_kind="manifest", reprint=reprint)
        self._step.prints.append(PrintLabel(manifest, ref=box["id"]))

    def _cmd_open_box(self, c: Command) -> None:
        if self.state.table["box"] is not None:
            box_id = self.state.table["box"]
            raise Refused(words("box.still_open", box_id=box_id))
        box = self.state.boxes[self._open_box()]
        self._show_("ok", *words("box.opened", box_id=box["id"], tubes=len(box["tubes"])))

    def _cmd_box_count(self, c: Command) -> None:
        box = self._box_for(c.args, "open")
        try:
            counted = int(str(c.args.get("count")), 10)
        except (TypeError, ValueError):
            raise Refused(words("box.count_invalid")) from None
        if counted < 0 or counted > 100_000:
            raise Refused(words("box.count_invalid"))
        listed = len(box["tubes"])
        self._emit("box_count", box_id=box["id"], counted=counted, listed=listed, match=counted == listed)
        self._step.result = {"box_id": box["id"], "counted": counted, "listed": listed}
        if counted == listed:
            self._show_("ok", *words("box.count_matches", listed=listed))
            self._speak("box.count_matches_spoken")
        else:
            self._show_("error", *words("box.count_mismatch", listed=listed, counted=counted), tubes=list(box["tubes"]))
            self._speak("box.count_mismatch_spoken")

    def _cmd_close_box(self, c: Command) -> None:
        box = self._box_for(c.args, "open")
        if not box["tubes"]:
            raise Refused(words("box.empty"))
        if box["counted"] is None or box["counted"] != box["listed"] or box["listed"] != len(box["tubes"]):
            raise Refused(words("box.count_first", listed=len(box["tubes"])))
        people = self._box_people(box)
        self._emit("box_close", box_id=box["id"], tubes=list(box["tubes"]), tube_count=len(box["tubes"]), people=people)
        self._box_label(box, reprint=False)
        if self.state.unboxed():
            self._open_box()
        self._show_("ok", *words("box.closed", box_id=box["id"], tubes=len(box["tubes"]), people=people))
        self._speak("box.closed_spoken")
        self._step.result = {"box_id": box["id"], "tubes": len(box["tubes"]), "people": people}

    def _cmd_handover_box(self, c: Command) -> None:
        courier = str(c.args.get("courier") or "").strip()
        if not courier:
            raise Refused(words("box.courier_required"))
        box = self._box_for(c.args, "closed")
        if box["state"] != "closed":
            raise Refused(words("box.not_closed", box_id=box["id"]))
        box_id, tubes = box["id"], list(box["tubes"])
        self._emit("box_handover", box_id=box_id, courier=courier, tubes=tubes)
        self._show_("ok", *words("box.handed_over", box_id=box_id, courier=courier))
        self._speak("box.handed_over_spoken")
        self._step.result = {"box_id": box_id}
