"""The store's files (firmware_app/store.py): the data dir and its lock, the database
connection with its pragmas, and the cheap check made at every open. Each raises a
StoreError (firmware_app.store_schema) in plain words, never a raw sqlite3 or OS error."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from typing import Any, Callable
from urllib.parse import quote

from firmware_app.atomic import DIR_MODE, FILE_MODE
from firmware_app.catalogue import both
from firmware_app.store_queries import _COLS
from firmware_app.store_schema import StoreError, corrupt_error, db_error, migrate, os_error


LOCK_NAME = "lock"  # in the data dir: flock held by the one writing process


def text_factory(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


LOCK_WAIT_S = 0.25  # a reader's probe (doctor: writer_running) holds it for microseconds


def _take_lock(lock_fd: int, data_dir: str) -> None:
    """The writer's exclusive lock; a second writer is refused. A probe that holds the lock
    shared for an instant is waited for, so a kiosk starting at that moment does not fail."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreError(*both("store_open.in_use", path=data_dir), data_dir) from None
            time.sleep(0.01)


def prepare_dirs(data_dir: str, path: str) -> int:
    """Make the data dir (0700) and the database file (0600) and take the writer's lock; its fd."""
    try:
        os.makedirs(data_dir, mode=DIR_MODE, exist_ok=True)
        os.chmod(data_dir, DIR_MODE)
        lock_fd = os.open(os.path.join(data_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise os_error(exc, data_dir) from exc
    try:
        _take_lock(lock_fd, data_dir)
        try:  # created 0600 here, so SQLite gives its -wal and -shm the same mode
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        except OSError as exc:
            raise os_error(exc, path) from exc
    except BaseException:
        os.close(lock_fd)
        raise
    return lock_fd


def connect(path: str, read_only: bool, durable: bool) -> sqlite3.Connection:
    """A connection to the database at ``path``: read-only beside the daemon, or the writer's
    (WAL, synchronous FULL unless not ``durable``, checkpoints left to the helper thread)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise os_error(exc, path) from exc
    if head and head != b"SQLite format 3\x00":
        raise corrupt_error(path, "not an SQLite database")
    try:
        if read_only:
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=5)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the helper thread checkpoints
            migrate(conn)
            conn.text_factory = text_factory
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.chmod(path + suffix, FILE_MODE)
    except sqlite3.Error as exc:
        err = db_error(exc, path)
        raise (corrupt_error(path, str(exc)) if type(err) is StoreError else err) from exc
    except (UnicodeDecodeError, ValueError) as exc:  # a damaged schema (its text is not UTF-8)
        raise corrupt_error(path, str(exc)) from exc
    conn.text_factory = text_factory
    return conn


def connect_immutable(path: str) -> sqlite3.Connection:
    """A read-only card: the WAL index cannot be made; the database file read as it is."""
    return sqlite3.connect(f"file:{quote(path)}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)


def check_open(conn: sqlite3.Connection, decode: Callable[[Any], Any]) -> None:
    """The cheap check at open (a 200 MB quick_check would hold start-up for seconds): the schema
    can be read, and the last records-table page and the meta table read back."""
    conn.execute("PRAGMA schema_version").fetchone()
    if conn.execute("PRAGMA user_version").fetchone()[0] < 1:
        raise sqlite3.DatabaseError("no schema")
    for row in conn.execute(f"SELECT {_COLS} FROM records ORDER BY seq DESC LIMIT 50"):
        decode(row)
    conn.execute("SELECT count(*) FROM meta").fetchone()


def writer_running(data_dir: str) -> bool:
    """Whether a writing process (the daemon) holds ``data_dir``'s lock, for a reader beside it
    (`doctor`): a shared lock tried on the lock file opened read-only (nothing is created) and let
    go at once. OSError (e.g. no permission to open the lock file) is the caller's."""
    try:
        fd = os.open(os.path.join(data_dir, LOCK_NAME), os.O_RDONLY)
    except FileNotFoundError:
        return False  # no writer ever ran here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing lets go of the shared lock
    return False
