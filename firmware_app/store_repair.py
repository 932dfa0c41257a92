"""Rebuilding a damaged kiosk.db: the damaged files are set aside in ``damaged/`` (never
deleted), a fresh database is built from every row that can still be read and passes
its CRC, and a report with kept and lost counts is persisted (``Store.reports()``).
The identifier floor is raised to the hwm file's reservation, so nothing is reissued.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import time
from urllib.parse import quote

from firmware_app.atomic import DIR_MODE, FILE_MODE, fsync_dir
from firmware_app.catalogue import both
from firmware_app.store_schema import (
    DB_NAME, HWM_NAME, INSERT_RECORD, HighWater, StoreError, meta_row, meta_value, migrate, row_values,
)

log = logging.getLogger(__name__)
RANGE = 500


def healthy(path: str) -> bool:
    """quick_check passes and every record body matches its CRC (reads the whole file)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return True
    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return False
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                return False
            if conn.execute("PRAGMA user_version").fetchone()[0] < 1:
                return False
            import zlib
            for body, crc in conn.execute("SELECT body, crc FROM records"):
                if zlib.crc32(body) != crc:
                    return False
            for key, text, crc in conn.execute("SELECT key, value, crc FROM meta"):
                meta_value(key, text, crc)
        finally:
            conn.close()
    except (sqlite3.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    return True


def _try(conn: sqlite3.Connection, sql: str, args=()):
    try:
        return conn.execute(sql, args).fetchall()
    except (sqlite3.Error, ValueError):
        return None


def _salvage(conn: sqlite3.Connection, upper: int) -> tuple[list[tuple], int, int | None]:
    """(rows to insert, rows that failed their CRC or could not be parsed, rows the file says it held)."""
    rows, bad = [], 0
    counts = [c[0][0] for c in (_try(conn, "SELECT count(*) FROM records"),
                                _try(conn, "SELECT count(*) FROM records NOT INDEXED")) if c]
    lo = (_try(conn, "SELECT min(seq) FROM records") or [[None]])[0][0] or 1
    hi = (_try(conn, "SELECT max(seq) FROM records") or [[None]])[0][0] or upper
    cols = "seq, body, crc, acked, acked_at"

    def take(found) -> None:
        nonlocal bad
        for seq, body, crc, acked, acked_at in found:
            import zlib
            try:
                rec = json.loads(body)
                if zlib.crc32(body) != crc or rec.get("seq") != seq or not isinstance(rec.get("record_id"), str):
                    raise ValueError
                rows.append(row_values(rec, bytes(body), 1 if acked == 1 else 0, acked_at if acked == 1 else None))
            except (ValueError, TypeError, AttributeError, KeyError):
                bad += 1

    for start in range(lo, hi + 1, RANGE):
        found = _try(conn, f"SELECT {cols} FROM records WHERE seq >= ? AND seq < ? ORDER BY seq", (start, start + RANGE))
        if found is not None:
            take(found)
            continue
        for seq in range(start, min(start + RANGE, hi + 1)):  # a damaged page: row by row
            take(_try(conn, f"SELECT {cols} FROM records WHERE seq = ?", (seq,)) or [])
    seen, unique = set(), []
    for row in rows:
        if row[1] not in seen:
            seen.add(row[1])
            unique.append(row)
    return unique, bad, max(counts) if counts else None


def repair(data_dir: str) -> list[dict]:
    """Set a damaged kiosk.db aside and rebuild it; [] when the database is whole."""
    data_dir = os.path.abspath(data_dir)
    path = os.path.join(data_dir, DB_NAME)
    if healthy(path):
        return []
    lock_fd = os.open(os.path.join(data_dir, "lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(*both("store.in_use", path=data_dir), data_dir) from None
        report = _rebuild(data_dir, path)
    finally:
        os.close(lock_fd)
    log.error("store repaired: %s kept, %s lost, damaged files set aside in %s", report["kept"], report["lost"],
              report["moved_to"])
    return [report]


def _rebuild(data_dir: str, path: str) -> dict:
    damaged = os.path.join(data_dir, "damaged")
    os.makedirs(damaged, mode=DIR_MODE, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    moved = os.path.join(damaged, f"{DB_NAME}.{stamp}")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, moved + suffix)
    fsync_dir(data_dir)
    hwm = HighWater(os.path.join(data_dir, HWM_NAME))
    reserved = dict(hwm.value)
    hwm.close()
    scratch = os.path.join(damaged, f".scratch-{stamp}")
    os.makedirs(scratch, mode=DIR_MODE)
    rows: list[tuple] = []
    bad, expected, meta = 0, None, {}
    try:
        for suffix in ("", "-wal"):
            if os.path.exists(moved + suffix):
                shutil.copyfile(moved + suffix, os.path.join(scratch, DB_NAME + suffix))
        try:
            conn = sqlite3.connect(os.path.join(scratch, DB_NAME))
            conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
            try:
                rows, bad, expected = _salvage(conn, max(reserved["intent"], 0))
                for key, text, crc in _try(conn, "SELECT key, value, crc FROM meta") or []:
                    try:
                        meta[key] = meta_value(key, text, crc)
                    except (ValueError, TypeError):
                        pass
            finally:
                conn.close()
        except (sqlite3.Error, ValueError):
            pass
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    kept = len(rows)
    if expected is None:  # nothing countable: estimate from the last seq the hwm file knew of
        expected = max(reserved["intent"], kept + bad)
    lost = max(bad, expected - kept)
    top = max([r[0] for r in rows] + [0])
    floor_old = meta.get("hwm_floor") or {"seq": 0, "numbers": {}}
    committed = (meta.get("hwm") or {}).get("numbers", {})
    numbers = {k: max(reserved["numbers"].get(k, 0), committed.get(k, 0), floor_old["numbers"].get(k, 0))
               for k in {*reserved["numbers"], *committed, *floor_old["numbers"]}}
    meta["hwm_floor"] = {"seq": max(reserved["seq"], top, floor_old["seq"]), "numbers": numbers}
    report = {"at": time.time(), "what": "repair", "kept": kept, "lost": lost, "moved_to": moved,
              "note": f"damaged database set aside; {kept} records kept, {lost} could not be recovered; "
                      f"identifiers continue above seq {meta['hwm_floor']['seq']}"}
    meta["reports"] = [*(meta.get("reports") or []), report]
    _write_fresh(path, rows, meta)
    return report


def _write_fresh(path: str, rows: list[tuple], meta: dict) -> None:
    tmp = path + ".rebuild"
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(tmp + suffix):
            os.unlink(tmp + suffix)
    os.close(os.open(tmp, os.O_RDWR | os.O_CREAT, FILE_MODE))
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        migrate(conn)
        conn.execute("BEGIN")
        conn.executemany(INSERT_RECORD, sorted(rows))
        conn.execute("UPDATE counters SET n = (SELECT count(*) FROM records WHERE acked = 1) WHERE key = 'archived'")
        conn.executemany("INSERT OR REPLACE INTO meta (key, value, crc) VALUES (?,?,?)",
                         [meta_row(k, v) for k, v in meta.items()])
        conn.execute("COMMIT")
    finally:
        conn.close()
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))
