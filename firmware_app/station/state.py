"""The station's live state as rows, and the reducers that change it (one per record kind).

Everything a rule can still reach lives here, and nothing else: the table (the shift,
mode, open tube and box, today's counters, the id counters, the last person), the tubes
not yet handed to a courier, and the boxes not yet handed over. A tube leaves with its
box; an empty tube leaves when it closes. History (who was in a tube last week, whether
a person was sampled earlier today) is in the store and comes with the event as
``model.Facts``.

Every state change is a record: ``apply(record)`` is the only way rows change, live and
when a store upgraded from the old layout is replayed once. The rows a step touched
(``changes()``) are written in the same transaction as the step's records, as meta keys
``st:table``, ``st:tube:<id>``, ``st:box:<id>`` (None: the row is gone), so a restart
loads the rows (``from_rows``) and costs the same on a month-old kiosk as on a new one.

Rows are plain JSON-able dicts:

* table: seq, day, mode, tube (open pooled tube id), box (open box id), operator
  {cert_id, name, since, cert_expires, shift, people, tubes}, shifts, people (today,
  not voided), tubes (today's tubes with people), numbers {id stem: last number},
  closed (a counter ordering closed tubes for boxing), last {rid, name, id, colour,
  source, tube_id, voided} (masked: what the screen shows)
* tube: id, capacity, mode, single_reason, state (open | closed | replaced),
  close_reason, box, day, count, voided, members (record ids, while open), people
  ([{rid, name, id, voided}] masked, while open: the screen's list),
  counted_day, counted_shift, closed (order), replaced_by
* box: id, capacity, tubes, counted, listed, state (open | closed | handed_over), courier
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Callable

from firmware_app.model import mask_id, mask_name

PREFIX = "st:"
TABLE = "st:table"
TUBE = "st:tube:"
BOX = "st:box:"


def _ts(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso).timestamp()


class TableState:
    def __init__(self, tube_prefix: str, mode: str) -> None:
        self.prefix = tube_prefix
        self.table: dict[str, Any] = {
            "seq": 0, "day": None, "mode": mode, "tube": None, "box": None, "operator": None, "shifts": 0,
            "people": 0, "tubes": 0, "numbers": {}, "closed": 0, "last": None,
        }
        self.tubes: dict[str, dict[str, Any]] = {}
        self.boxes: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._reducers: dict[str, Callable[[dict], None]] = {
            "shift_start": self._shift_start, "shift_end": self._shift_end, "mode": self._mode,
            "tube_open": self._tube_open, "sample": self._sample, "void": self._void,
            "tube_close": self._tube_close, "tube_replace": self._tube_replace, "label": lambda r: None,
            "alert": lambda r: None,
            "box_open": self._box_open, "box_add": self._box_add, "box_count": self._box_count,
            "box_close": self._box_close, "box_handover": self._box_handover,
        }

    # ------------------------------------------------------------- rows
    @classmethod
    def from_rows(cls, rows: Mapping[str, Any], tube_prefix: str, mode: str) -> TableState:
        state = cls(tube_prefix, mode)
        for key, value in rows.items():
            if not isinstance(value, dict):
                continue
            if key == TABLE:
                state.table.update(value)
            elif key.startswith(TUBE):
                state.tubes[key[len(TUBE):]] = value
            elif key.startswith(BOX):
                state.boxes[key[len(BOX):]] = value
        return state

    def rows(self) -> dict[str, Any]:
        out: dict[str, Any] = {TABLE: self.table}
        out.update({TUBE + t: row for t, row in self.tubes.items()})
        out.update({BOX + b: row for b, row in self.boxes.items()})
        return out

    def changes(self) -> dict[str, Any]:
        """The rows touched since the last call, {key: row or None (gone)}; clears the list."""
        out: dict[str, Any] = {}
        for key in sorted(self._dirty):
            if key == TABLE:
                out[key] = self.table
            elif key.startswith(TUBE):
                out[key] = self.tubes.get(key[len(TUBE):])
            else:
                out[key] = self.boxes.get(key[len(BOX):])
        self._dirty.clear()
        return out

    def discard_changes(self) -> None:
        self._dirty.clear()

    def touch(self, kind: str, ident: str = "") -> None:
        self._dirty.add(TABLE if kind == "table" else (TUBE if kind == "tube" else BOX) + ident)

    # ------------------------------------------------------------- queries
    def tube(self, tube_id: str | None) -> dict | None:
        return self.tubes.get(tube_id) if tube_id else None

    def current(self, tube_id: str) -> dict | None:
        """The live tube now holding a sample first put into tube_id (replacements followed)."""
        tube = self.tubes.get(tube_id)
        for _ in range(100):
            if tube is None or tube["state"] != "replaced":
                return tube
            tube = self.tubes.get(tube["replaced_by"])
        return None

    def unboxed(self) -> list[str]:
        """Closed tubes with people not yet in a box, in the order they closed."""
        waiting = [t for t in self.tubes.values() if t["state"] == "closed" and t["count"] and not t["box"]]
        return [t["id"] for t in sorted(waiting, key=lambda t: t["closed"])]

    def live(self, tube: dict) -> int:
        return tube["count"] - tube["voided"]

    def next_id(self, prefix: str, stem_day: str, width: int) -> str:
        stem = prefix + stem_day
        return f"{stem}{self.table['numbers'].get(stem, 0) + 1:0{width}d}"

    # ------------------------------------------------------------- apply
    def apply(self, r: dict) -> None:
        """Change the rows as record r says (KeyError/ValueError: r does not fit the state)."""
        reducer = self._reducers[r["kind"]]
        t = self.table
        day = r["at"][:10]
        if t["day"] is None or day > t["day"]:
            self.new_day(day)
        reducer(r)
        t["seq"] = max(t["seq"], int(r["seq"]))
        self.touch("table")

    def new_day(self, day: str) -> None:
        """Today's counters start afresh; id counters of earlier days are dropped."""
        t = self.table
        t["day"], t["people"], t["tubes"] = day, 0, 0
        ymd = day[2:4] + day[5:7] + day[8:10]
        t["numbers"] = {stem: n for stem, n in t["numbers"].items() if stem.endswith(ymd)}
        self.touch("table")

    def _count_number(self, ident: str, prefix: str) -> None:
        # the number may outgrow its width: tube 10,000 of a day must not reuse tube 9,999's
        m = re.fullmatch(re.escape(prefix) + r"(\d{6})(\d{3,})", ident)
        if m:
            stem, numbers = prefix + m.group(1), self.table["numbers"]
            numbers[stem] = max(numbers.get(stem, 0), int(m.group(2)))

    def _count_tube(self, tube: dict) -> None:
        if tube["counted_day"] != self.table["day"]:
            tube["counted_day"] = self.table["day"]
            self.table["tubes"] += 1

    def _shift_start(self, r: dict) -> None:
        t = self.table
        t["shifts"] += 1
        t["operator"] = {"cert_id": r["operator"], "name": r["operator_name"], "since": _ts(r["at"]),
                         "cert_expires": _ts(r["cert_expires"]), "shift": t["shifts"], "people": 0, "tubes": 0}
        t["mode"] = r["mode"]

    def _shift_end(self, r: dict) -> None:
        self.table["operator"] = None

    def _mode(self, r: dict) -> None:
        self.table["mode"] = r["mode"]

    def _tube_open(self, r: dict) -> None:
        tube_id = r["tube_id"]
        if tube_id in self.tubes:
            raise ValueError(f"tube {tube_id} is in use")
        self.tubes[tube_id] = {
            "id": tube_id, "capacity": r["capacity"], "mode": r["pool_mode"], "single_reason": r["single_reason"],
            "state": "open", "close_reason": None, "box": None, "day": r["at"][:10], "count": 0, "voided": 0,
            "members": [], "people": [], "counted_day": None, "counted_shift": None, "closed": 0, "replaced_by": None,
        }
        if r["single_reason"] is None:
            self.table["tube"] = tube_id
        self._count_number(tube_id, self.prefix)
        self.touch("tube", tube_id)

    def _sample(self, r: dict) -> None:
        tube = self.tubes[r["tube_id"]]
        if tube["state"] != "open":
            raise ValueError(f"tube {tube['id']} is not open")
        tube["count"] += 1
        tube["members"].append(r["record_id"])
        t = self.table
        t["people"] += 1
        number = r["id_number"] if r["id_type"] != "none" else ""
        tube.setdefault("people", []).append(
            {"rid": r["record_id"], "name": mask_name(r["name"]), "id": mask_id(number), "voided": False})
        t["last"] = {"rid": r["record_id"], "name": mask_name(r["name"]), "id": mask_id(number),
                     "colour": r["colour"], "source": r["source"], "tube_id": tube["id"], "voided": False,
                     "day": r["at"][:10]}
        self._count_tube(tube)
        op = t["operator"]
        if op:
            op["people"] += 1
            if tube["counted_shift"] != op["shift"]:
                tube["counted_shift"] = op["shift"]
                op["tubes"] += 1
        self.touch("tube", tube["id"])

    def _void(self, r: dict) -> None:
        tube = self.current(r["tube_id"])
        if tube is None:
            raise KeyError(r["tube_id"])
        tube["voided"] += 1
        for person in tube.get("people") or []:
            if person["rid"] == r["voided_record_id"]:
                person["voided"] = True
        t = self.table
        if r["at"][:10] == t["day"]:
            t["people"] -= 1
        last = t["last"]
        if last is not None and last["rid"] == r["voided_record_id"]:
            last["voided"] = True
        self.touch("tube", tube["id"])

    def _tube_close(self, r: dict) -> None:
        tube = self.tubes[r["tube_id"]]
        t = self.table
        tube["state"], tube["close_reason"], tube["members"], tube["people"] = "closed", r["reason"], [], []
        if t["tube"] == tube["id"]:
            t["tube"] = None
        if tube["count"]:
            t["closed"] += 1
            tube["closed"] = t["closed"]
            self.touch("tube", tube["id"])
        else:  # an empty tube is done with (its id may open again)
            self._drop_tube(tube["id"])

    def _tube_replace(self, r: dict) -> None:
        old, new_id = self.tubes[r["old_tube_id"]], r["tube_id"]
        if old["state"] == "replaced" or new_id in self.tubes:
            raise ValueError(f"tube {old['id']} was replaced already, or {new_id} is in use")
        is_open = old["state"] == "open"
        new = {**old, "id": new_id, "members": list(r["samples"]) if is_open else [],
               "people": list(old.get("people") or []) if is_open else [], "counted_day": None, "replaced_by": None}
        self.tubes[new_id] = new
        old.update(state="replaced", replaced_by=new_id, members=[], people=[])
        t = self.table
        if t["tube"] == old["id"]:
            t["tube"] = new_id
        if old["box"]:
            box = self.boxes[old["box"]]
            box["tubes"] = [new_id if x == old["id"] else x for x in box["tubes"]]
            self.touch("box", box["id"])
        last = t["last"]
        if last is not None and last["tube_id"] == old["id"]:
            last["tube_id"] = new_id
        self._count_tube(new)
        self._count_number(new_id, self.prefix)
        self.touch("tube", old["id"])
        self.touch("tube", new_id)

    def _box_open(self, r: dict) -> None:
        self.boxes[r["box_id"]] = {"id": r["box_id"], "capacity": r["capacity"], "tubes": [], "counted": None,
                                   "listed": None, "state": "open", "courier": None}
        self.table["box"] = r["box_id"]
        self._count_number(r["box_id"], f"{self.prefix}-B")
        self.touch("box", r["box_id"])

    def _box_add(self, r: dict) -> None:
        box, tube = self.boxes[r["box_id"]], self.tubes[r["tube_id"]]
        if tube["box"]:
            raise ValueError(f"tube {tube['id']} is boxed already")
        box["tubes"].append(tube["id"])
        tube["box"] = box["id"]
        self.touch("box", box["id"])
        self.touch("tube", tube["id"])

    def _box_count(self, r: dict) -> None:
        box = self.boxes[r["box_id"]]
        box["counted"], box["listed"] = r["counted"], r["listed"]
        self.touch("box", box["id"])

    def _box_close(self, r: dict) -> None:
        self.boxes[r["box_id"]]["state"] = "closed"
        if self.table["box"] == r["box_id"]:
            self.table["box"] = None
        self.touch("box", r["box_id"])

    def _box_handover(self, r: dict) -> None:
        """The box left with the courier: its tubes (and the tubes they replaced) are done with."""
        box = self.boxes.pop(r["box_id"])
        self.touch("box", box["id"])
        for tube_id in box["tubes"]:
            self._drop_tube(tube_id)
        last = self.table["last"]
        if last is not None and last["tube_id"] not in self.tubes:
            self.table["last"] = None

    def _drop_tube(self, tube_id: str) -> None:
        gone = [tube_id]
        while gone:
            tid = gone.pop()
            if self.tubes.pop(tid, None) is not None:
                self.touch("tube", tid)
            gone += [t["id"] for t in self.tubes.values() if t["replaced_by"] == tid]
