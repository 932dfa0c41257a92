"""The store's read side (a mixin of ``Store``): records, the outbox, a tube's records,
one day's records, the station's ``facts`` and ``stats``, every one by an index.

Every body read is checked against its CRC; a record that fails is logged, added to
``stats()["damage"]`` and left out, never passed on as a person's data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import sqlite3
import time
import zlib
import threading
from typing import TYPE_CHECKING, Any, Iterator

from firmware_app.catalogue import both
from firmware_app.model import Facts, Lookups
from firmware_app.store_schema import StoreCorrupt, StoreError, corrupt_error, db_error, record_time

log = logging.getLogger("firmware_app.store")
STATS_DAYS = 7
_COLS = "seq, body, crc"


def _chunks(items: list, n: int = 900):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class StoreQueries:
    """Reads over ``self._conn`` under ``self._lock`` (see Store)."""

    # Set by Store.__init__ (firmware_app/store.py); declared here for the type checker.
    path: str
    data_dir: str
    _lock: threading.RLock
    _conn: sqlite3.Connection | None
    _damage: list[str]

    if TYPE_CHECKING:  # Store's meta accessors, which these reads use
        def get_meta(self, key: str, default: Any = None) -> Any: ...

        def reports(self) -> list[dict]: ...

    def _q(self, sql: str, args=()) -> list:
        with self._lock:
            if self._conn is None:
                raise StoreError(*both("store.closed"), self.path)
            try:
                return self._conn.execute(sql, args).fetchall()
            except UnicodeDecodeError as exc:
                self._damage.append(f"unreadable text in the database: {exc}")
                raise corrupt_error(self.path, str(exc)) from exc
            except sqlite3.Error as exc:
                err = db_error(exc, self.path)
                if isinstance(err, StoreCorrupt):
                    self._damage.append(err.detail)
                raise err from exc

    def _decode(self, row) -> dict | None:
        seq, body, crc = row
        if zlib.crc32(body) != crc:
            note = f"record seq {seq} fails its checksum (left out)"
            log.error("store: %s", note)
            if note not in self._damage:
                self._damage.append(note)
            return None
        return json.loads(body)

    def _records(self, sql: str, args=()) -> list[dict]:
        return [r for r in map(self._decode, self._q(sql, args)) if r is not None]

    def _by_seqs(self, seqs: list[int]) -> list[dict]:
        out: list[dict] = []
        for chunk in _chunks(sorted(set(seqs))):
            out += self._records(f"SELECT {_COLS} FROM records WHERE seq IN ({_marks(len(chunk))}) ORDER BY seq", chunk)
        return out

    def records(self, record_ids) -> list[dict]:
        ids = [r for r in dict.fromkeys(record_ids) if isinstance(r, str)]
        out: list[dict] = []
        for chunk in _chunks(ids):
            out += self._records(f"SELECT {_COLS} FROM records WHERE record_id IN ({_marks(len(chunk))})", chunk)
        return sorted(out, key=lambda r: r["seq"])

    def iter_records(self, day: str | None = None) -> Iterator[dict]:
        """Every stored record (outbox and archive) in seq order, optionally of one day (by the day index)."""
        if day is not None:
            seqs = [s for (s,) in self._q("SELECT seq FROM records WHERE day = ?", (day,))]
            for chunk in _chunks(sorted(seqs), 500):
                yield from self._by_seqs(chunk)
            return
        after = -1
        while True:
            rows = self._q(f"SELECT {_COLS} FROM records WHERE seq > ? ORDER BY seq LIMIT 500", (after,))
            if not rows:
                return
            after = rows[-1][0]
            yield from (r for r in map(self._decode, rows) if r is not None)

    def tube_records(self, tube_id: str) -> list[dict]:
        """Every record whose tube_id, or whose replaced (old) tube, is ``tube_id``, in seq order."""
        return self._records(f"SELECT {_COLS} FROM records WHERE tube_id = ? UNION SELECT {_COLS} FROM records "
                             f"WHERE ref = ? AND kind = 'tube_replace' ORDER BY seq", (tube_id, tube_id))

    def box_records(self, box_id: str) -> list[dict]:
        """Every record of box ``box_id`` (open, add, count, close, handover), by the box index, in seq order."""
        return self._records(f"SELECT {_COLS} FROM records WHERE box_id = ? ORDER BY seq", (box_id,))

    def outbox_messages(self, limit: int = 100, after_seq: int = 0) -> list[tuple[dict, bytes]]:
        """Unacknowledged records, oldest first, each with its MQTT payload: the stored canonical JSON."""
        rows = self._q(f"SELECT {_COLS} FROM records WHERE acked = 0 AND seq > ? ORDER BY seq LIMIT ?",
                       (after_seq, limit))
        return [(r, row[1]) for row in rows if (r := self._decode(row)) is not None]

    def records_between(self, from_seq: int, to_seq: int, limit: int = 1000) -> list[tuple[dict, bytes]]:
        """Stored records with from_seq <= seq <= to_seq, acknowledged or not, oldest first, each with its
        payload (the bytes first sent): what ``cmd/resend`` republishes. A seq missing here is pruned or damaged."""
        rows = self._q(f"SELECT {_COLS} FROM records WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                       (from_seq, to_seq, limit))
        return [(r, row[1]) for row in rows if (r := self._decode(row)) is not None]

    def outbox(self, limit: int = 100, after_seq: int = 0) -> list[dict]:
        return [r for r, _ in self.outbox_messages(limit, after_seq)]

    def is_sent(self, record_id: str) -> bool:
        """True once the broker acknowledged this stored record (or the store does not hold it)."""
        return not self._q("SELECT 1 FROM records WHERE record_id = ? AND acked = 0", (record_id,))

    def _db_last_seq(self) -> int:
        return self._q("SELECT max(seq) FROM records")[0][0] or 0

    def _count(self) -> int:
        return self._q("SELECT count(*) FROM records")[0][0]

    def last_seq(self) -> int:
        """The highest seq used: stored, committed as a mark, or the floor after a repair."""
        hw = self.get_meta("hwm") or {}
        floor = self.get_meta("hwm_floor") or {}
        return max(self._db_last_seq(), hw.get("seq", 0), floor.get("seq", 0))

    def high_water(self) -> dict[str, Any]:
        """What the station must continue ABOVE: the committed marks, raised after a repair or a lost
        tail to the reservation the hwm file held, so no seq, tube or box number is ever reissued."""
        hw = self.get_meta("hwm") or {"seq": 0, "numbers": {}}
        floor = self.get_meta("hwm_floor") or {"seq": 0, "numbers": {}}
        numbers = dict(hw["numbers"])
        for k, v in floor["numbers"].items():
            numbers[k] = max(v, numbers.get(k, 0))
        return {"seq": self.last_seq(), "numbers": numbers}

    def facts(self, lookups: Lookups) -> Facts:
        """Answer a step's ``Lookups`` from the indexes (see model.Facts)."""
        people: dict[tuple[str, str], tuple[dict[str, Any], ...]] = {}
        for key, day in lookups.people:
            people[(key, day)] = tuple(self._records(f"SELECT {_COLS} FROM records WHERE person = ? AND day = ? "
                                                     f"AND kind = 'sample' ORDER BY seq", (key, day)))
        found = {r["record_id"]: r for r in self.records(lookups.records)}
        records = {rid: found.get(rid) for rid in lookups.records}
        tubes = {t: tuple(self._tube_members(t, None, set())) for t in lookups.tubes}
        used = frozenset(t for t in lookups.tubes if self._q(
            "SELECT 1 FROM records WHERE tube_id = ? AND kind IN ('sample', 'tube_replace') UNION ALL "
            "SELECT 1 FROM records WHERE ref = ? AND kind = 'tube_replace' LIMIT 1", (t, t)))
        samples = {r["record_id"] for rs in (*people.values(), *tubes.values()) for r in rs}
        samples |= {r["record_id"] for r in found.values() if r.get("kind") == "sample"}
        voided: set[str] = set()
        for chunk in _chunks(sorted(samples)):
            voided |= {ref for (ref,) in self._q(f"SELECT ref FROM records WHERE ref IN ({_marks(len(chunk))}) "
                                                 f"AND kind = 'void'", chunk)}
        people = {k: tuple(r for r in v if r["record_id"] not in voided) for k, v in people.items()}
        return Facts(people=people, records=records, tubes=tubes, tubes_used=used, voided=frozenset(voided))

    def _tube_members(self, tube: str, before: int | None, seen: set[str]) -> list[dict]:
        """The samples in ``tube`` just before seq ``before`` (None: now): its own samples since
        its people last moved away, plus those a tube_replace moved in from an old tube."""
        if tube in seen:
            return []
        seen = seen | {tube}
        upto = before if before is not None else 1 << 62
        away = self._q("SELECT max(seq) FROM records WHERE ref = ? AND kind = 'tube_replace' AND seq < ?",
                       (tube, upto))[0][0] or 0
        out = self._records(f"SELECT {_COLS} FROM records WHERE tube_id = ? AND kind = 'sample' AND seq > ? "
                            f"AND seq < ?", (tube, away, upto))
        for seq, ref in self._q("SELECT seq, ref FROM records WHERE tube_id = ? AND kind = 'tube_replace' "
                                "AND seq > ? AND seq < ?", (tube, away, upto)):
            out += self._tube_members(ref, seq, seen)
        return sorted(out, key=lambda r: r["seq"])

    def backlog(self) -> int:
        """Sample records (people) not yet acknowledged: one count on the outbox's partial index."""
        return self._q("SELECT count(*) FROM records WHERE acked = 0 AND kind = 'sample'")[0][0]

    def oldest_unsent_age_s(self) -> float | None:
        """Seconds since the oldest unacknowledged record was made (the outbox index's first row)."""
        oldest = self._records(f"SELECT {_COLS} FROM records WHERE acked = 0 ORDER BY seq LIMIT 1")
        at = record_time(oldest[0]) if oldest else None
        return round(time.time() - at, 1) if at is not None else None

    def stats(self) -> dict[str, Any]:
        """Counts from counters and partial indexes: the same cost on a month-old store as on an empty one."""
        unacked = dict(self._q("SELECT kind = 'sample', count(*) FROM records WHERE acked = 0 GROUP BY 1"))
        oldest = self._records(f"SELECT {_COLS} FROM records WHERE acked = 0 ORDER BY seq LIMIT 1")
        oldest_at = record_time(oldest[0]) if oldest else None
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError:
            free = None
        return {
            "backlog": unacked.get(1, 0),  # sample records (one per person) not yet acknowledged
            "backlog_events": unacked.get(0, 0),  # voids, tube/box/shift events
            "archived": self._q("SELECT n FROM counters WHERE key = 'archived'")[0][0],
            "oldest_unsent_age_s": round(time.time() - oldest_at, 1) if oldest_at is not None else None,
            "last_ack_at": self.get_meta("last_ack_at"),
            "last_seq": self.last_seq(),
            "first_seq": self._q("SELECT min(seq) FROM records")[0][0],
            "segments": 1,
            "bytes": size,
            "free_bytes": free,
            "damage": list(self._damage),
            "reports": self.reports(),
            "days": self._days(),
        }

    def _days(self) -> dict[str, dict[str, int]]:
        last = self._q("SELECT day FROM records WHERE day != '' ORDER BY seq DESC LIMIT 1")
        if not last:
            return {}
        try:
            newest = dt.date.fromisoformat(last[0][0])
        except ValueError:
            return {}
        days = [(newest - dt.timedelta(days=n)).isoformat() for n in range(STATS_DAYS)]
        voided = dict(self._q(
            f"SELECT s.day, count(*) FROM records v JOIN records s ON s.record_id = v.ref WHERE v.day IN "
            f"({_marks(len(days))}) AND v.kind = 'void' AND s.kind = 'sample' GROUP BY s.day", days))
        out = {}
        for day in days:
            people, tubes = self._q("SELECT count(*), count(DISTINCT tube_id) FROM records WHERE day = ? "
                                    "AND kind = 'sample'", (day,))[0]
            boxes = self._q("SELECT count(*) FROM records WHERE day = ? AND kind = 'box_open'", (day,))[0][0]
            if people or boxes:
                out[day] = {"people": people - voided.get(day, 0), "tubes": tubes, "boxes": boxes}
        return out
