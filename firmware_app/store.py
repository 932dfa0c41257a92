"""The kiosk's durable record store: one SQLite database (stdlib sqlite3, WAL).

Layout of ``data_dir`` (dirs 0700, files 0600)::

    lock           flock held by the one writing process
    kiosk.db       records, meta (the station's state rows, label queue, uplink state), counters
    kiosk.db-wal   the write-ahead log (checkpointed by a helper thread, off the volunteer's path)
    hwm            identifier high-water marks, kept apart from the database (store_schema.HighWater)
    damaged/       databases set aside by ``Store.repair`` (never deleted)
    legacy/<time>/ the old TinyDB segment layout, kept after its one-time import

A record is in the *outbox* until the uplink acks it (broker PUBACK); it then
stays as *archived* until ``prune`` deletes it ``archive_days`` after its ack.
Every record body is its canonical JSON (the MQTT payload) with a CRC-32 that
every read verifies: a damaged record is reported and left out, never passed on.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Any

from firmware_app.catalogue import both
from firmware_app.model import RECORD_KINDS
from firmware_app.store_files import check_open, connect, connect_immutable, prepare_dirs, writer_running
from firmware_app.store_legacy import import_legacy
from firmware_app.store_meta import StoreMeta
from firmware_app.store_queries import _chunks, _marks
from firmware_app.store_repair import repair as repair_store
from firmware_app.store_reserve import Reservations, _bounded
from firmware_app.store_schema import (
    DB_NAME, HWM_NAME, INSERT_RECORD, HighWater, StoreCorrupt, StoreError, StoreFull, StoreNotReady,
    StoreReadOnly, canonical, corrupt_error, db_error, meta_row, os_error, record_day, record_time, row_values,
)

log = logging.getLogger(__name__)

__all__ = ["Store", "StoreError", "StoreFull", "StoreReadOnly", "StoreCorrupt", "StoreNotReady", "record_day", "record_time"]

PRUNE_BATCH = 5000
PRUNE_EVERY_S = 3600.0
CHECKPOINT_COMMITS = 100  # checkpoint after this many commits (~4 MB of WAL at ~40 KB a registration) ...
CHECKPOINT_IDLE_S = 20.0  # ... or once the writer has been idle this long
WAL_VALVE_BYTES = 64 << 20


class Store(Reservations, StoreMeta):
    """Durable records and outbox. Thread-safe; one writing process per ``data_dir``.

    ``read_only=True`` opens beside the running daemon (``status``, ``tube``, ``export``,
    ``doctor``) without the lock and without blocking it; writes then raise ``StoreReadOnly``.
    ``durable=False`` (synchronous=OFF) is only for ``simulate --days`` filling a data dir fast.
    """

    def __init__(self, data_dir: str, archive_days: int = 30, read_only: bool = False, *, durable: bool = True):
        self.data_dir = os.path.abspath(data_dir)
        self.path = os.path.join(self.data_dir, DB_NAME)
        self.archive_days, self.read_only, self.durable = archive_days, read_only, durable
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._hwm: HighWater | None = None
        self._damage: list[str] = []
        self._stop = threading.Event()
        self._wake = threading.Event()  # the helper has work now (a reservation is half used)
        self._checkpointer: threading.Thread | None = None
        self._commits = 0
        self._since_size_check = 0
        self._hwm_lock = threading.Lock()
        self._ahead: tuple[int, dict] | None = None  # marks near the reservation: the helper reserves further
        self._committed = 0  # the newest committed seq
        self._last_write = time.monotonic()
        self._last_prune = time.time()
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- opening

    def _open(self) -> None:
        if self.read_only:
            if not os.path.exists(self.path) and not os.path.isdir(os.path.join(self.data_dir, "segments")):
                raise StoreError(*both("store_open.not_found", path=self.data_dir), self.data_dir)
            if not os.path.exists(self.path):
                raise StoreError(*both("store_open.not_imported", path=self.data_dir), self.data_dir)
            self._conn = self._connect(True)
            self._refuse_unmade()
        else:
            self._prepare_dirs()
            self._conn = self._connect(False)
        try:
            try:
                self._check_open()
            except sqlite3.OperationalError as exc:
                if not self.read_only or (getattr(exc, "sqlite_errorcode", 0) & 0xFF) != sqlite3.SQLITE_CANTOPEN:
                    raise
                # a read-only card: the WAL index cannot be made; read the database file as it is
                self._conn.close()
                self._conn = connect_immutable(self.path)
                if os.path.exists(self.path + "-wal") and os.path.getsize(self.path + "-wal"):
                    self._damage.append("read-only card: the newest records (in kiosk.db-wal) are not shown")
                self._check_open()
        except sqlite3.Error as exc:
            err = db_error(exc, self.path)
            raise (corrupt_error(self.path, str(exc)) if type(err) is StoreError else err) from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise corrupt_error(self.path, str(exc)) from exc
        hwm_path = os.path.join(self.data_dir, HWM_NAME)
        if self.read_only:
            if os.path.exists(hwm_path):
                self._hwm = HighWater(hwm_path, read_only=True)
            return
        try:
            self._hwm = HighWater(hwm_path)
        except OSError as exc:
            raise os_error(exc, hwm_path) from exc
        if os.path.isdir(os.path.join(self.data_dir, "segments")):
            import_legacy(self)
        self._check_tail()
        self._committed = self._db_last_seq()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="store-checkpoint", daemon=True)
        self._checkpointer.start()

    def _refuse_unmade(self) -> None:
        """A reader beside a daemon that is creating the database finds an empty file, or one with
        no schema and nothing else: that is a store being made, not a damaged one (which would
        send a technician to --repair)."""
        assert self._conn is not None
        try:
            made = self._conn.execute("PRAGMA user_version").fetchone()[0] > 0
            empty = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        except sqlite3.Error:
            return  # _check_open says what is wrong
        if not made and empty:
            self._conn.close()
            self._conn = None
            try:
                key = "store_open.being_created" if writer_running(self.data_dir) else "store_open.not_made"
            except OSError:
                key = "store_open.being_created"
            raise StoreNotReady(*both(key, path=self.data_dir), self.data_dir)

    def _prepare_dirs(self) -> None:
        self._lock_fd = prepare_dirs(self.data_dir, self.path)

    def _connect(self, read_only: bool, path: str | None = None) -> sqlite3.Connection:
        return connect(path or self.path, read_only, self.durable)

    def _check_open(self) -> None:
        assert self._conn is not None
        check_open(self._conn, self._decode)

    def _check_tail(self) -> None:
        """A db ending below the seq the hwm file last said was being committed lost its newest
        transactions (restored copy, lost WAL): continue above the reservation, and say so."""
        hw, last = self._high_water.value, self._db_last_seq()
        if hw["intent"] > last:
            floor = self.get_meta("hwm_floor") or {"seq": 0, "numbers": {}}
            if floor["seq"] < hw["seq"]:
                self.add_report({"what": "recovery", "kept": self._count(), "lost": hw["intent"] - last,
                                 "moved_to": None, "note": f"the store ends at seq {last} but seq {hw['intent']} "
                                 f"was written: up to {hw['intent'] - last} records lost; identifiers continue "
                                 f"above the reserved marks (seq {hw['seq']})"},
                                floor=hw)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._checkpointer is not None and self._checkpointer is not threading.current_thread():
            self._checkpointer.join()
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
                self._conn = None
            if self._hwm is not None:
                self._hwm.close()
                self._hwm = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints on a connection of its own, never in an append's way. The first commit
        into a fully checkpointed WAL rewrites the WAL header, one more flush: this thread makes that
        commit itself (a checkpoint counter), so an append still costs one flush."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
        except sqlite3.Error as exc:
            log.warning("store: no checkpoint connection: %s", exc)
            return
        try:
            while True:
                self._wake.wait(1.0)  # a reservation half used wakes it at once, not after up to 1 s
                self._wake.clear()
                if self._stop.is_set():
                    break
                ahead, self._ahead = self._ahead, None
                if ahead is not None:
                    try:
                        self._write_reservation(*ahead, self._committed)
                    except StoreError as exc:  # append writes it itself when it must
                        log.warning("store: %s", exc.message_en)
                idle = time.monotonic() - self._last_write >= CHECKPOINT_IDLE_S
                if self._commits >= CHECKPOINT_COMMITS or (self._commits and idle):
                    self._commits = 0
                    try:
                        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        if busy == 0 and frames > 0 and done == frames:
                            # The checkpoint above flushed the database file (synchronous FULL on this
                            # connection). The WAL header this commit rewrites needs no flush of its
                            # own: the next append's flush of the WAL covers it, and until then the
                            # WAL holds nothing the database file lacks. Without a flush here an
                            # append waits microseconds for this commit, not two SD-card flushes.
                            with self._lock:
                                if self._commits == 0:
                                    conn.execute("PRAGMA synchronous=OFF")
                                    try:
                                        conn.execute("INSERT INTO counters VALUES ('checkpoints', 1) "
                                                     "ON CONFLICT(key) DO UPDATE SET n = n + 1")
                                    finally:
                                        conn.execute("PRAGMA synchronous=FULL")
                    except sqlite3.Error as exc:
                        log.warning("store: checkpoint failed: %s", exc)
        finally:
            conn.close()

    # ---------------------------------------------------------------- writing

    def _writable(self) -> sqlite3.Connection:
        if self.read_only or self._conn is None:
            raise StoreReadOnly(*both("store_open.opened_read_only"), self.data_dir)
        return self._conn

    def _transaction(self, work, sync: str | None = None) -> None:
        """Run ``work(conn)`` in one IMMEDIATE transaction; sqlite3 errors become StoreErrors, nothing kept."""
        conn = self._writable()
        if sync and self.durable:
            conn.execute(f"PRAGMA synchronous={sync}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            work(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error):
                err = db_error(exc, self.path)
                if isinstance(err, StoreCorrupt):
                    self._damage.append(err.message_en)
                raise err from exc
            if isinstance(exc, OSError):
                raise os_error(exc, self.path) from exc
            raise
        finally:
            if sync and self.durable:
                conn.execute("PRAGMA synchronous=FULL")
        self._commits += 1
        self._last_write = time.monotonic()
        self._since_size_check += 1
        if self._since_size_check >= 500:  # a safety valve for bulk writing (simulate --days): a writer that
            self._since_size_check = 0  # never pauses never lets a PASSIVE checkpoint reset the WAL
            try:
                if os.path.getsize(self.path + "-wal") > WAL_VALVE_BYTES:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except (OSError, sqlite3.Error) as exc:
                log.warning("store: WAL checkpoint failed: %s", exc)

    def append(self, records: list[dict], meta: dict[str, Any] | None = None,
               marks: dict[str, Any] | None = None) -> None:
        """Store a step durably in ONE transaction (one WAL flush): the records, the meta changes
        ({key: value, None deletes}) and the identifier marks. All of it, or (on an error) none."""
        self._writable()
        with self._lock:
            rows = self._validate(records)
            try:
                meta_rows = [(k, v if v is None else meta_row(k, v)) for k, v in (meta or {}).items()]
                top = records[-1]["seq"] if records else self.last_seq()
                numbers = {str(k): int(v) for k, v in ((marks or {}).get("numbers") or {}).items()}
                mark_seq = max(top, int((marks or {}).get("seq") or 0))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"meta or marks not storable: {exc}") from exc
            committed = self.get_meta("hwm") or {"seq": 0, "numbers": {}}
            numbers = _bounded({**committed["numbers"], **{k: max(v, committed["numbers"].get(k, 0))
                                                            for k, v in numbers.items()}}, numbers)
            self._reserve(mark_seq, numbers, top)

            def work(conn: sqlite3.Connection) -> None:
                conn.executemany(INSERT_RECORD, rows)
                for key, row in meta_rows:
                    self._put_meta(conn, key, row)
                if marks is not None:
                    self._put_meta(conn, "hwm", meta_row("hwm", {"seq": mark_seq, "numbers": numbers}))
            try:
                self._transaction(work)
                self._committed = top
            except StoreError:
                if self._high_water.value["intent"] > self._db_last_seq():
                    try:  # not a lost tail: this batch was refused
                        with self._hwm_lock:
                            self._high_water.write(self._high_water.value["seq"], self._high_water.value["numbers"], self._db_last_seq())
                    except OSError:
                        pass
                raise

    @staticmethod
    def _put_meta(conn: sqlite3.Connection, key: str, row: tuple | None) -> None:
        if row is None:
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            conn.execute("INSERT OR REPLACE INTO meta (key, value, crc) VALUES (?,?,?)", row)

    def _validate(self, records: list[dict]) -> list[tuple]:
        last, rows, ids = self.last_seq(), [], set()
        for r in records:
            if not isinstance(r, dict):
                raise ValueError("a record must be a dict")
            seq, rid, kind = r.get("seq"), r.get("record_id"), r.get("kind")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq <= last:
                raise ValueError(f"record seq must be an int above {last}, got {seq!r}")
            if not isinstance(rid, str) or not rid or rid in ids:
                raise ValueError(f"record_id missing or repeated: {rid!r}")
            if kind not in RECORD_KINDS:
                raise ValueError(f"unknown record kind {kind!r}")
            try:
                body = canonical(r)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"record {rid} is not JSON-able: {exc}") from exc
            last = seq
            ids.add(rid)
            rows.append(row_values(r, body))
        for chunk in _chunks(sorted(ids)):
            found = self._writable().execute(f"SELECT record_id FROM records WHERE record_id IN ({_marks(len(chunk))})",
                                       chunk).fetchone()
            if found:
                raise ValueError(f"record_id already stored: {found[0]!r}")
        return rows

    def ack(self, record_ids) -> int:
        """The broker acknowledged these records: one batched UPDATE (synchronous=NORMAL: a lost
        ack only means a resend). Unknown or acknowledged ids are ignored; returns how many were new."""
        self._writable()
        ids = [r for r in dict.fromkeys(record_ids) if isinstance(r, str)]
        done = 0
        if not ids:
            return 0
        now = time.time()
        with self._lock:
            def work(conn: sqlite3.Connection) -> None:
                nonlocal done
                for chunk in _chunks(ids, 30000):
                    done += conn.execute(f"UPDATE records SET acked = 1, acked_at = ? WHERE acked = 0 AND record_id "
                                         f"IN ({_marks(len(chunk))})", [now, *chunk]).rowcount
                conn.execute("UPDATE counters SET n = n + ? WHERE key = 'archived'", (done,))
                self._put_meta(conn, "last_ack_at", meta_row("last_ack_at", now))
            self._transaction(work, sync="NORMAL")
            if now - self._last_prune > PRUNE_EVERY_S:
                self.prune(now)
        return done

    def prune(self, now: float | None = None) -> int:
        """Delete up to PRUNE_BATCH records acknowledged more than ``archive_days`` ago (never the newest
        record: it carries the last seq). The freed pages are reused by later writes."""
        self._writable()
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            self._last_prune = now

            def work(conn: sqlite3.Connection) -> None:
                nonlocal removed
                removed = conn.execute(
                    "DELETE FROM records WHERE seq IN (SELECT seq FROM records WHERE acked = 1 AND acked_at < ? "
                    "AND seq < (SELECT max(seq) FROM records) LIMIT ?)",
                    (now - self.archive_days * 86400, PRUNE_BATCH)).rowcount
                conn.execute("UPDATE counters SET n = n - ? WHERE key = 'archived'", (removed,))
            self._transaction(work, sync="NORMAL")
        return removed

    def set_meta(self, key: str, value: Any, *, flush: bool = True) -> None:
        """Set (None: delete) one meta key, in its own transaction. ``flush=False``: no flush of
        its own (synchronous NORMAL): durable with the next flushed commit, e.g. the printer
        marking a label as sent, which must not add an SD-card round trip per label."""
        self._writable()
        row = None if value is None else meta_row(key, value)
        with self._lock:
            self._transaction(lambda conn: self._put_meta(conn, key, row), sync=None if flush else "NORMAL")

    def add_report(self, report: dict, floor: dict | None = None) -> None:
        """Persist a repair/import report (``reports()``) and raise the identifier floor to ``floor``."""
        report = {"at": time.time(), "what": "", "kept": 0, "lost": 0, "moved_to": None, "note": "", **report}
        log.error("store %s: %s kept, %s lost, set aside in %s; %s", report["what"], report["kept"], report["lost"],
                  report["moved_to"], report["note"])
        with self._lock:
            reports = [*self.reports(), report]
            old = self.get_meta("hwm_floor") or {"seq": 0, "numbers": {}}
            meta: dict[str, Any] = {"reports": reports}
            if floor is not None:
                nums = dict(old["numbers"])
                for k, v in floor.get("numbers", {}).items():
                    nums[k] = max(v, nums.get(k, 0))
                meta["hwm_floor"] = {"seq": max(old["seq"], floor.get("seq", 0)), "numbers": nums}
            self.append([], meta=meta)

    @staticmethod
    def repair(data_dir: str) -> list[dict]:
        """Set a damaged database aside in ``damaged/`` (never deleted) and rebuild it from every
        readable record; returns the reports (see store_repair)."""
        return repair_store(data_dir)
