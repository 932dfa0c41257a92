"""What the store is made of: its errors, the record encoding, the SQLite schema and
its migrations, and the high-water-mark file kept apart from the database.

Nothing here holds a connection for long; ``store.py`` is the Store itself,
``store_repair.py`` rebuilds a damaged database, ``store_legacy.py`` imports the
old TinyDB segment layout.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
import zlib
from datetime import datetime
from typing import Any

from firmware_app.atomic import FILE_MODE
from firmware_app.catalogue import both

DB_NAME = "kiosk.db"
HWM_NAME = "hwm"
SCHEMA_VERSION = 1
RESERVE_SEQ = 200  # the hwm file reserves this many seqs ahead (one extra flush every ~200 records)
RESERVE_NUMBER = 100  # ... and this many tube/box numbers per stem (mode 1 uses a tube a person)


class StoreError(Exception):
    """Something went wrong storing records; ``message`` is zh-CN, ``message_en`` English."""

    def __init__(self, message: str, message_en: str, path: str | None = None, raw: str = ""):
        super().__init__(f"{message} / {message_en}" + (f" ({raw})" if raw else ""))
        self.message = message
        self.message_en = message_en
        self.path = path
        self.raw = raw  # the OS or SQLite error as it came: for the technician, not in the message

    @property
    def detail(self) -> str:
        """The technician's line: the English message and the raw error (logs, ``stats()["damage"]``)."""
        return self.message_en + (f" ({self.raw})" if self.raw else "")


class StoreFull(StoreError):
    """The disk is full: nothing of the batch was stored, earlier records are intact."""


class StoreReadOnly(StoreError):
    """The card or directory is read-only (or the store was opened read-only)."""


class StoreNotReady(StoreError):
    """Opened read-only while the daemon is creating the database (no schema yet): not damage."""


class StoreCorrupt(StoreError):
    """The database is damaged: named in ``path``; see ``Store.repair``."""


def full_error(path: str) -> StoreFull:
    return StoreFull(*both("store.full", path=path), path)


def read_only_error(path: str) -> StoreReadOnly:
    return StoreReadOnly(*both("store.read_only", path=path), path)


def corrupt_error(path: str, why: str) -> StoreCorrupt:
    return StoreCorrupt(*both("store.corrupt", path=path), path, raw=why)


def os_error(exc: OSError, path: str) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return full_error(path)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return read_only_error(path)
    return StoreError(*both("store.write_failed", path=path), path, raw=str(exc.strerror or exc))


def db_error(exc: sqlite3.Error, path: str) -> StoreError:
    """Map a sqlite3 error to the StoreError a volunteer or technician can act on."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    text = str(exc).lower()
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return full_error(path)
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN) or "readonly" in text:
        return read_only_error(path)
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return corrupt_error(path, str(exc))
    return StoreError(*both("store.write_failed", path=path), path, raw=str(exc))


_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)


def canonical(value: Any) -> bytes:
    """A record's canonical JSON: stored as its body, covered by its CRC, published as its MQTT payload."""
    return _CANONICAL.encode(value).encode()


def record_day(record: dict) -> str:
    """The record's local calendar day (YYYY-MM-DD): ``day``, else the date of ``at``
    (the station's ISO 8601 local time, whose first 10 characters are the kiosk's date; unix seconds too)."""
    day = record.get("day")
    if isinstance(day, str) and len(day) == 10:
        return day
    at = record.get("at")
    if isinstance(at, str) and len(at) >= 10:
        return at[:10]
    if isinstance(at, (int, float)):
        return time.strftime("%Y-%m-%d", time.localtime(at))
    return ""


def record_time(record: dict) -> float | None:
    """``at`` as unix seconds (None if absent or unreadable)."""
    at = record.get("at")
    if isinstance(at, (int, float)):
        return float(at)
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at).timestamp()
        except ValueError:
            return None
    return None


def row_values(record: dict, body: bytes, acked: int = 0, acked_at: float | None = None) -> tuple:
    """The records-table row of a record (see SCHEMA)."""
    from firmware_app.model import sample_person_key
    kind = record.get("kind")
    ref = record.get("voided_record_id") if kind == "void" else record.get("old_tube_id") if kind == "tube_replace" else None
    tube, box = record.get("tube_id"), record.get("box_id")
    return (record["seq"], record["record_id"], kind, record_day(record), tube if isinstance(tube, str) else None,
            box if isinstance(box, str) else None, ref if isinstance(ref, str) else None,
            sample_person_key(record) if kind == "sample" else None, acked, acked_at, body, zlib.crc32(body))


INSERT_RECORD = ("INSERT INTO records (seq, record_id, kind, day, tube_id, box_id, ref, person, acked, acked_at, body, crc)"
                 " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")

SCHEMA_1 = """
CREATE TABLE records (seq INTEGER PRIMARY KEY, record_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, day TEXT,
    tube_id TEXT, box_id TEXT, ref TEXT, person TEXT, acked INTEGER NOT NULL DEFAULT 0, acked_at REAL,
    body BLOB NOT NULL, crc INTEGER NOT NULL);
CREATE INDEX records_tube ON records(tube_id) WHERE tube_id IS NOT NULL;
CREATE INDEX records_person ON records(person, day) WHERE person IS NOT NULL;
CREATE INDEX records_day ON records(day, kind, tube_id);
CREATE INDEX records_ref ON records(ref) WHERE ref IS NOT NULL;
CREATE INDEX records_outbox ON records(seq, kind) WHERE acked = 0;
CREATE INDEX records_archive ON records(acked_at) WHERE acked = 1;
CREATE INDEX records_box ON records(box_id) WHERE box_id IS NOT NULL;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE counters (key TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO counters VALUES ('archived', 0);
"""

MIGRATIONS = {1: SCHEMA_1}  # user_version n-1 -> n; each runs in one transaction with the version bump


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if SCHEMA_VERSION < version <= SCHEMA_VERSION + 100:  # a newer program's store: refuse, never rewrite it
        raise StoreError(*both("store.schema_newer", version=version))
    if version < 0 or version > SCHEMA_VERSION:  # no version any program wrote: a damaged header (fuzzing)
        raise StoreCorrupt(*both("store.header_damaged", version=version), conn.execute("PRAGMA database_list").fetchone()[2])
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def meta_row(key: str, value: Any) -> tuple[str, str, int]:
    text = canonical(value).decode()
    return key, text, zlib.crc32(f"{key}\0{text}".encode())


def meta_value(key: str, text: str, crc: int) -> Any:
    """A meta value, or raises ValueError when its checksum fails."""
    if zlib.crc32(f"{key}\0{text}".encode()) != crc:
        raise ValueError(f"meta {key!r} fails its checksum")
    return json.loads(text)


class HighWater:
    """``data_dir/hwm``: two fixed-size slots, each {"seq", "numbers", "gen", "intent"} JSON + CRC,
    written in place alternately (pwrite + fdatasync), so a torn write leaves the other slot valid.

    ``seq``/``numbers``: reserved, never to be issued again; ``intent``: the newest seq about
    to be committed when the slot was written (a db whose last seq is below it lost its tail)."""

    SLOT = 1024

    def __init__(self, path: str, read_only: bool = False):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR | os.O_CREAT, FILE_MODE)
        self.value, self._slot = self._read()

    def _read(self) -> tuple[dict, int]:
        best, slot = {"seq": 0, "numbers": {}, "gen": 0, "intent": 0}, 1
        for i in (0, 1):
            raw = os.pread(self.fd, self.SLOT, i * self.SLOT)
            try:
                length, crc = int(raw[:8], 16), int(raw[8:16], 16)
                body = raw[16:16 + length]
                if len(body) != length or zlib.crc32(body) != crc:
                    continue
                value = json.loads(body)
                if value["gen"] > best["gen"]:
                    best, slot = value, i
            except (ValueError, KeyError, TypeError):
                continue
        return best, slot

    def write(self, seq: int, numbers: dict[str, int], intent: int) -> None:
        value = {"seq": seq, "numbers": numbers, "gen": self.value["gen"] + 1, "intent": intent}
        body = canonical(value)
        if len(body) > self.SLOT - 16:
            raise ValueError("too many number stems for the hwm slot")
        slot = 1 - self._slot
        data = b"%08x%08x" % (len(body), zlib.crc32(body)) + body
        os.pwrite(self.fd, data.ljust(self.SLOT, b"\0"), slot * self.SLOT)
        os.fdatasync(self.fd)
        self.value, self._slot = value, slot

    def close(self) -> None:
        os.close(self.fd)
