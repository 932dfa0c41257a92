"""The district database: every record once (by ``record_id``), per-station seq coverage as runs,
station watermarks and availability. SQLite (a file path) or PostgreSQL (a ``postgresql://`` URL),
one code path: the SQL is written once with ``?`` placeholders and a tiny dialect layer fills in
the placeholder style, the column types and the row lock.

Coverage is kept as disjoint runs ``[lo, hi]`` per station, merged on every insert, so the gap
check reads the runs (one row per station when nothing is missing) by their primary key, never
the records.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable

_RECORD_ID = re.compile(r"(.+)-([0-9]{10})")
_LEAVES = ("records", "tubes", "boxes", "shifts", "alerts")

# (version, statements); {BIGINT} {FLOAT} are the dialect's types. Append, never edit.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        "CREATE TABLE records (record_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, seq {BIGINT} NOT NULL, "
        "kind TEXT, tube_id TEXT, ref TEXT, topic TEXT NOT NULL, body TEXT NOT NULL, received_at {FLOAT} NOT NULL)",
        # partial: most records have no ref, and ANALYZE would then judge a full index useless
        "CREATE INDEX records_tube ON records (tube_id) WHERE tube_id IS NOT NULL",
        "CREATE INDEX records_ref ON records (ref) WHERE ref IS NOT NULL",
        "CREATE INDEX records_station ON records (device_id, seq)",
        "CREATE TABLE stations (device_id TEXT PRIMARY KEY, root TEXT, records {BIGINT} NOT NULL DEFAULT 0, "
        "last_seq {BIGINT}, first_seq {BIGINT}, backlog {BIGINT}, status TEXT, status_at {FLOAT}, "
        "online INTEGER, online_at {FLOAT}, seen_at {FLOAT})",
        "CREATE TABLE coverage (device_id TEXT NOT NULL, lo {BIGINT} NOT NULL, hi {BIGINT} NOT NULL, "
        "PRIMARY KEY (device_id, lo))",
        "CREATE UNIQUE INDEX coverage_hi ON coverage (device_id, hi)",
        # seqs a station answered are no longer in its archive: asked for no more, still reported
        "CREATE TABLE unrecoverable (device_id TEXT NOT NULL, lo {BIGINT} NOT NULL, hi {BIGINT} NOT NULL, "
        "reason TEXT, at {FLOAT}, PRIMARY KEY (device_id, lo))",
    ]),
    # availability is retained per topic root and often arrives before the station's first record
    (2, [
        "CREATE TABLE availability (root TEXT PRIMARY KEY, online INTEGER NOT NULL, at {FLOAT} NOT NULL)",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


@dataclass
class Record:
    record_id: str
    device_id: str
    seq: int
    kind: str | None
    tube_id: str | None
    ref: str | None
    topic: str
    body: str


def parse_record(topic: str, payload: bytes) -> Record | None:
    """A record message -> Record, or None when it is not one (logged by the caller)."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[5] not in _LEAVES or len(payload) > 1 << 20:
        return None
    try:
        rec = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(rec, dict):
        return None
    rid, seq, dev = rec.get("record_id"), rec.get("seq"), rec.get("device_id")
    if not (isinstance(rid, str) and isinstance(seq, int) and not isinstance(seq, bool) and isinstance(dev, str)):
        return None
    m = _RECORD_ID.fullmatch(rid)
    if not m or m.group(1) != dev or int(m.group(2)) != seq or seq < 1:
        return None
    kind = rec.get("kind") if isinstance(rec.get("kind"), str) else None
    ref = rec.get("voided_record_id") if kind == "void" else rec.get("old_tube_id") if kind == "tube_replace" else None
    tube = rec.get("tube_id")
    return Record(rid, dev, seq, kind, tube if isinstance(tube, str) else None, ref if isinstance(ref, str) else None,
                  topic, payload.decode())


def _runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s in sorted(set(seqs)):
        if out and out[-1][1] + 1 == s:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [(a, b) for a, b in out]


def subtract(ranges: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """ranges minus holes (both sorted, disjoint)."""
    out = []
    for lo, hi in ranges:
        cur = lo
        for a, b in holes:
            if b < cur or a > hi:
                continue
            if a > cur:
                out.append((cur, a - 1))
            cur = max(cur, b + 1)
        if cur <= hi:
            out.append((cur, hi))
    return out


class DistrictDB:
    """One connection; not shared between threads (the receiver's main thread owns it)."""

    def __init__(self, target: str):
        target = str(target)
        self.target = target
        self.pg = target.startswith(("postgresql://", "postgres://"))
        if self.pg:
            import psycopg  # the `district` extra: pip install swabkiosk[district]

            self.conn = psycopg.connect(target, autocommit=False)
            self.types = {"BIGINT": "BIGINT", "FLOAT": "DOUBLE PRECISION"}
        else:
            parent = os.path.dirname(os.path.abspath(target))
            os.makedirs(parent, exist_ok=True)  # `district run --db path` needs no set-up
            self.conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a power cut loses at most the
            self.conn.execute("PRAGMA busy_timeout=10000")  # last commits, which reconciliation asks again
            self.types = {"BIGINT": "INTEGER", "FLOAT": "REAL"}
        self.migrate()

    # ------------------------------------------------------------ dialect
    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.pg else text

    def execute(self, text: str, args: Iterable = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(self.sql(text), tuple(args))
        return cur

    def rows(self, text: str, args: Iterable = ()) -> list[tuple]:
        return self.execute(text, args).fetchall()

    def begin(self) -> None:
        if not self.pg:
            self.conn.execute("BEGIN IMMEDIATE")  # psycopg opens a transaction by itself

    def commit(self) -> None:
        self.conn.commit() if self.pg else self.conn.execute("COMMIT")

    def rollback(self) -> None:
        try:
            self.conn.rollback() if self.pg else self.conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - nothing open
            pass

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------ schema
    def migrate(self) -> None:
        self.begin()
        try:
            self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            have = self.rows("SELECT max(version) FROM schema_version")[0][0] or 0
            if self.pg and have < SCHEMA_VERSION:  # two receivers starting at once: one migrates, one waits
                self.execute("LOCK TABLE schema_version IN EXCLUSIVE MODE")
                have = self.rows("SELECT max(version) FROM schema_version")[0][0] or 0
            if have > SCHEMA_VERSION:
                raise RuntimeError(f"database schema {have} is newer than this receiver's {SCHEMA_VERSION}")
            for version, statements in MIGRATIONS:
                if version <= have:
                    continue
                for st in statements:
                    self.execute(st.format(**self.types))
                self.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            self.commit()
        except Exception:
            self.rollback()
            raise

    # ------------------------------------------------------------ writes
    def insert(self, records: list[Record], roots: dict[str, str] | None = None, now: float | None = None) -> int:
        """Write the records not yet stored (ON CONFLICT DO NOTHING on record_id) and merge their seqs
        into the coverage runs, in one transaction. Returns how many were new."""
        if not records:
            return 0
        now = time.time() if now is None else now
        roots = roots or {}
        self.begin()
        try:
            devices = sorted({r.device_id for r in records})
            for dev in devices:  # a station row, locked (PostgreSQL) in device order: no deadlock
                self.execute("INSERT INTO stations (device_id, root, records) VALUES (?, ?, 0) "
                             "ON CONFLICT (device_id) DO NOTHING", (dev, roots.get(dev)))
            new: dict[str, list[int]] = {}
            for i in range(0, len(records), 400):
                chunk = records[i:i + 400]
                values = ",".join(["(?,?,?,?,?,?,?,?,?)"] * len(chunk))
                args: list = []
                for r in chunk:
                    args += [r.record_id, r.device_id, r.seq, r.kind, r.tube_id, r.ref, r.topic, r.body, now]
                for dev, seq in self.rows(
                        f"INSERT INTO records (record_id, device_id, seq, kind, tube_id, ref, topic, body, received_at) "
                        f"VALUES {values} ON CONFLICT (record_id) DO NOTHING RETURNING device_id, seq", args):
                    new.setdefault(dev, []).append(seq)
            for dev in devices:
                seqs = new.get(dev, [])
                self.execute("UPDATE stations SET records = records + ?, seen_at = ?, root = coalesce(?, root) "
                             "WHERE device_id = ?", (len(seqs), now, roots.get(dev), dev))
                for lo, hi in _runs(seqs):
                    self._cover(dev, lo, hi)
            self.commit()
        except Exception:
            self.rollback()
            raise
        return sum(map(len, new.values()))

    def _cover(self, dev: str, lo: int, hi: int) -> None:
        """Merge the new run [lo, hi] (none of it stored before) with its neighbours, by index."""
        left = self.rows("SELECT lo FROM coverage WHERE device_id = ? AND hi = ?", (dev, lo - 1))
        right = self.rows("SELECT hi FROM coverage WHERE device_id = ? AND lo = ?", (dev, hi + 1))
        if right:
            self.execute("DELETE FROM coverage WHERE device_id = ? AND lo = ?", (dev, hi + 1))
            hi = right[0][0]
        if left:
            self.execute("UPDATE coverage SET hi = ? WHERE device_id = ? AND lo = ?", (hi, dev, left[0][0]))
        else:
            self.execute("INSERT INTO coverage (device_id, lo, hi) VALUES (?, ?, ?)", (dev, lo, hi))

    def set_status(self, dev: str, root: str, status: dict, now: float | None = None) -> None:
        mark = status.get("watermark") if isinstance(status.get("watermark"), dict) else {}
        last, first = mark.get("last_seq"), mark.get("first_seq")
        last = last if isinstance(last, int) and not isinstance(last, bool) else None
        first = first if isinstance(first, int) and not isinstance(first, bool) else None
        backlog = sum(v for v in (status.get("backlog"), status.get("backlog_events"))
                      if isinstance(v, int) and not isinstance(v, bool))
        now = time.time() if now is None else now
        self.begin()
        try:
            self.execute("INSERT INTO stations (device_id, root, records) VALUES (?, ?, 0) "
                         "ON CONFLICT (device_id) DO NOTHING", (dev, root))
            self.execute("UPDATE stations SET root = ?, last_seq = CASE WHEN last_seq IS NULL OR last_seq < ? "
                         "THEN ? ELSE last_seq END, first_seq = coalesce(?, first_seq), backlog = ?, status = ?, "
                         "status_at = ? WHERE device_id = ?",
                         (root, last or 0, last, first, backlog, json.dumps(status, ensure_ascii=False)[:65536],
                          now, dev))
            self.commit()
        except Exception:
            self.rollback()
            raise

    def raise_watermark(self, dev: str, last: int, first: int | None) -> None:
        """A resend answer names the station's last and first seq (no retained status needed)."""
        self.begin()
        try:
            self.execute("UPDATE stations SET last_seq = CASE WHEN last_seq IS NULL OR last_seq < ? THEN ? "
                         "ELSE last_seq END, first_seq = coalesce(?, first_seq) WHERE device_id = ?",
                         (last, last, first, dev))
            self.commit()
        except Exception:
            self.rollback()
            raise

    def set_online(self, dev_root: str, online: bool, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.begin()
        try:
            self.execute("INSERT INTO availability (root, online, at) VALUES (?, ?, ?) ON CONFLICT (root) DO UPDATE "
                         "SET online = excluded.online, at = excluded.at", (dev_root, int(online), now))
            self.commit()
        except Exception:
            self.rollback()
            raise

    def add_unrecoverable(self, dev: str, ranges: list, reason: str) -> None:
        self.begin()
        try:
            for item in ranges[:1000]:
                if (isinstance(item, list) and len(item) == 2 and all(isinstance(x, int) for x in item)
                        and 1 <= item[0] <= item[1]):
                    self.execute("INSERT INTO unrecoverable (device_id, lo, hi, reason, at) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (device_id, lo) DO NOTHING", (dev, item[0], item[1], reason, time.time()))
            self.commit()
        except Exception:
            self.rollback()
            raise

    # ------------------------------------------------------------ reads
    def stations(self, device_id: str | None = None) -> dict[str, dict]:
        """Every station with its coverage gaps: one query over the stations and their runs
        (by primary key), then one over the unrecoverable ranges; never over the records."""
        where, args = ("WHERE s.device_id = ?", (device_id,)) if device_id else ("", ())
        out: dict[str, dict] = {}
        runs: dict[str, list[tuple[int, int]]] = {}
        for dev, root, n, last, first, backlog, status, status_at, online, lo, hi in self.rows(
                f"SELECT s.device_id, s.root, s.records, s.last_seq, s.first_seq, s.backlog, s.status, s.status_at, "
                f"a.online, c.lo, c.hi FROM stations s LEFT JOIN availability a ON a.root = s.root "
                f"LEFT JOIN coverage c ON c.device_id = s.device_id {where} "
                f"ORDER BY s.device_id, c.lo", args):
            if dev not in out:
                st = json.loads(status) if status else {}
                out[dev] = {"root": root, "records": n, "watermark": last, "first_seq": first, "backlog": backlog,
                            "online": None if online is None else bool(online), "status_at": status_at,
                            "oldest_unsent_age_s": st.get("oldest_unsent_age_s"),
                            "set_aside": [x.get("seq") for x in st.get("set_aside", []) if isinstance(x, dict)]}
                runs[dev] = []
            if lo is not None:
                runs[dev].append((lo, hi))
        lost: dict[str, list[tuple[int, int]]] = {}
        for dev, lo, hi in self.rows(f"SELECT device_id, lo, hi FROM unrecoverable "
                                     f"{'WHERE device_id = ?' if device_id else ''} ORDER BY device_id, lo", args):
            lost.setdefault(dev, []).append((lo, hi))
        for dev, info in out.items():
            have = runs[dev]
            top = max([info["watermark"] or 0] + [hi for _, hi in have[-1:]])
            gaps, cur = [], 1
            for lo, hi in have:
                if lo > cur:
                    gaps.append((cur, lo - 1))
                cur = hi + 1
            if cur <= top:
                gaps.append((cur, top))
            first = info["first_seq"]
            pruned = [(1, first - 1)] if first and first > 1 else []
            gone = sorted(lost.get(dev, []) + pruned)
            info.update(last_seq=top, gaps=[list(g) for g in gaps],
                        unrecoverable=[list(g) for g in gaps if not subtract([g], gone)],
                        open_gaps=[list(g) for g in subtract(gaps, gone)])
        return out

    def alerts(self, limit: int = 200) -> list[dict]:
        """The newest red-code (and configured yellow) alerts, each with the sample it is about."""
        out = []
        for (body,) in self.rows("SELECT body FROM records WHERE kind = 'alert' ORDER BY received_at DESC "
                                 f"LIMIT {int(limit)}", ()):
            alert = json.loads(body)
            sample = self.rows("SELECT body FROM records WHERE record_id = ?", (alert.get("sample_record_id"),))
            alert["sample"] = json.loads(sample[0][0]) if sample else None
            out.append(alert)
        return out

    def tube(self, tube_id: str, depth: int = 20) -> list[dict]:
        """Every record of ``tube_id`` and of the tubes a replacement links it to, with the voids of
        their samples, in (device, seq) order: by the tube and ref indexes."""
        found: dict[str, dict] = {}
        todo, seen = [tube_id], set()
        while todo and len(seen) < depth:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            for (body,) in self.rows("SELECT body FROM records WHERE tube_id = ? UNION "
                                     "SELECT body FROM records WHERE ref = ? AND kind = 'tube_replace'", (t, t)):
                rec = json.loads(body)
                found[rec["record_id"]] = rec
                if rec.get("kind") == "tube_replace":
                    todo += [x for x in (rec.get("old_tube_id"), rec.get("tube_id")) if isinstance(x, str)]
        samples = [rid for rid, r in found.items() if r.get("kind") == "sample"]
        for i in range(0, len(samples), 500):
            chunk = samples[i:i + 500]
            for (body,) in self.rows(f"SELECT body FROM records WHERE ref IN ({','.join('?' * len(chunk))}) "
                                     f"AND kind = 'void'", chunk):
                rec = json.loads(body)
                found[rec["record_id"]] = rec
        return sorted(found.values(), key=lambda r: (r.get("device_id", ""), r.get("seq", 0)))
