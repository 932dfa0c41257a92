"""The naive store the bench compares with: SQLite as it comes (stdlib sqlite3, default
rollback journal and synchronous=FULL, one commit per record, one JSON column, no index),
and the station's facts worked out by reading every record back, as an obvious first build
would. (The design card's TinyDB with its default JSONStorage was the baseline before; it left
the dependencies with the move to SQLite. docs/benchmarks.md keeps its figures.)"""

from __future__ import annotations

import json
import sqlite3

from firmware_app.model import Facts, sample_person_key


class NaiveStore:
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS records (body TEXT)")
        self.db.commit()

    def insert(self, record: dict) -> None:
        self.db.execute("INSERT INTO records (body) VALUES (?)", (json.dumps(record, ensure_ascii=False),))
        self.db.commit()

    def fill(self, records) -> None:
        self.db.executemany("INSERT INTO records (body) VALUES (?)",
                            ((json.dumps(r, ensure_ascii=False),) for r in records))
        self.db.commit()

    def all(self) -> list[dict]:
        return [json.loads(body) for (body,) in self.db.execute("SELECT body FROM records")]

    def readable(self) -> bool:
        try:
            return self.db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        except sqlite3.DatabaseError:
            return False

    def facts(self, lookups) -> Facts:
        return facts_by_scan(lookups, self.all())

    def close(self) -> None:
        self.db.close()


def facts_by_scan(lookups, stored: list[dict]) -> Facts:
    """The station's facts from a full list of records (what the indexed store answers)."""
    by_id = {r["record_id"]: r for r in stored}
    voids = {r["voided_record_id"] for r in stored if r["kind"] == "void"}
    samples = [r for r in stored if r["kind"] == "sample"]
    people = {(key, day): tuple(r for r in samples if sample_person_key(r) == key and r["at"][:10] == day
                                and r["record_id"] not in voids) for key, day in lookups.people}

    def in_tube(tube_id: str, top: bool) -> tuple:
        if top and any(r["kind"] == "tube_replace" and r["old_tube_id"] == tube_id for r in stored):
            return ()  # its people were moved on
        mine = [r for r in samples if r["tube_id"] == tube_id]
        for r in stored:
            if r["kind"] == "tube_replace" and r["tube_id"] == tube_id:
                mine += in_tube(r["old_tube_id"], False)
        return tuple(sorted(mine, key=lambda r: r["seq"]))

    tubes = {t: in_tube(t, True) for t in lookups.tubes}
    used = frozenset(t for t in lookups.tubes if any(
        (r["kind"] in ("sample", "tube_replace") and r["tube_id"] == t) or
        (r["kind"] == "tube_replace" and r["old_tube_id"] == t) for r in stored))
    records = {rid: by_id.get(rid) for rid in lookups.records}
    answered = {r["record_id"] for rs in [*people.values(), *tubes.values()] for r in rs} | set(records)
    return Facts(people=people, records=records, tubes=tubes, tubes_used=used, voided=frozenset(answered & voids))
