"""Crash-safe file primitives under the store: TinyDB storage and the ack journal.

TinyDB's own JSONStorage rewrites one growing file in place (seek 0, write,
truncate): a power cut mid-write loses the whole database, and every insert
costs the size of the file. Here each TinyDB file is small (a segment of the
outbox) and is replaced atomically: temp file, fsync, rename, fsync of the
directory. A reader (another process) sees the old file or the new one, never
half of one.
"""

from __future__ import annotations

import errno
import json
import os
import re
import zlib
from typing import Any

from tinydb.storages import Storage

FILE_MODE = 0o600
DIR_MODE = 0o700


class StoreError(Exception):
    """Something went wrong storing records; ``message`` is zh-CN, ``message_en`` English."""

    def __init__(self, message: str, message_en: str, path: str | None = None):
        super().__init__(f"{message} / {message_en}")
        self.message = message
        self.message_en = message_en
        self.path = path


class StoreFull(StoreError):
    """The disk is full: nothing of the batch was stored, earlier records are intact."""


class StoreReadOnly(StoreError):
    """The card or directory is read-only (or the store was opened read-only)."""


class StoreCorrupt(StoreError):
    """A store file is damaged (truncated, garbage): named in ``path``; see ``Store.repair``."""

    def __init__(self, message: str, message_en: str, path: str, salvageable: int = 0):
        super().__init__(message, message_en, path)
        self.salvageable = salvageable


def os_error(exc: OSError, path: str) -> StoreError:
    """Translate an OSError of a write into the StoreError a volunteer can act on."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFull(
            f"存储卡已满，新的登记未保存（之前的记录完好）。请联系技术人员清理空间。({path})",
            f"Storage is full: the new registration was NOT saved (earlier records are intact). "
            f"Call the technician to free space. ({path})",
            path,
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreReadOnly(
            f"存储卡只读或无写权限，新的登记未保存（之前的记录完好）。请联系技术人员。({path})",
            f"Storage is read-only or not writable: the new registration was NOT saved "
            f"(earlier records are intact). Call the technician. ({path})",
            path,
        )
    return StoreError(
        f"存储写入失败：{exc.strerror}，新的登记未保存。({path})",
        f"Storage write failed: {exc.strerror}; the new registration was NOT saved. ({path})",
        path,
    )


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file.

    Raises OSError; the temp file is removed on failure and ``path`` is untouched.
    """
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(path) or ".")


def append_line(path: str, data: bytes) -> None:
    """Append one journal line (not fsynced: the store syncs journals in batches)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def encode(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class AtomicJSONStorage(Storage):
    """TinyDB storage: one small JSON file, cached in memory, replaced atomically.

    ``read`` hands TinyDB a shallow copy, so a failed write (disk full) leaves the
    cache equal to what is on disk.
    """

    def __init__(self, path: str, validate=None):
        self.path = path
        self._validate = validate
        self._cache: dict | None = None

    def read(self) -> dict | None:
        if self._cache is None:
            self._cache = load_json(self.path, self._validate)
        return dict(self._cache) if self._cache is not None else None

    def write(self, data: dict) -> None:
        self._write_payload(encode(data))
        self._cache = data

    def _write_payload(self, payload: bytes) -> None:
        try:
            write_atomic(self.path, payload)
        except OSError as exc:
            raise os_error(exc, self.path) from exc
        self.size = len(payload)

    def close(self) -> None:
        self._cache = None


def load_json(path: str, validate=None) -> dict | None:
    """Read one store file; None if absent. Damage raises StoreCorrupt naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        if validate:
            validate(data)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        salvaged = salvage_records(raw)
        raise StoreCorrupt(
            f"存储文件损坏：{path}（{exc}）。可恢复 {len(salvaged)} 条记录。"
            f"请运行 `swabkiosk status --repair` 保留完好记录并把损坏文件移到 damaged/。",
            f"Store file damaged: {path} ({exc}). {len(salvaged)} records can be recovered. "
            f"Run `swabkiosk status --repair` to keep the intact records and move the damaged "
            f"file to damaged/.",
            path,
            salvageable=len(salvaged),
        ) from exc
    return data


_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)  # json.dumps's, made once


def canonical(record: dict) -> bytes:
    """A record's canonical JSON: what its CRC covers and what the uplink publishes
    (so a record re-sent after a restart is byte for byte the same message)."""
    return _CANONICAL.encode(record).encode()


def record_crc(record: dict) -> int:
    """CRC-32 of a record's canonical JSON: catches a flipped byte that still parses."""
    return zlib.crc32(canonical(record))


def meta_crc(entry: dict) -> int:
    """CRC-32 of a meta value carried in a segment (a pending label holds a tube's barcode)."""
    return record_crc({"v": entry["v"], "value": entry["value"]})


def _check_wrapped(data: dict, payloads: dict[int, bytes] | None = None) -> None:
    """Validate a segment; ``payloads`` (if given) receives each record's canonical JSON
    by seq, computed for the checksum anyway, so the uplink need not encode it again."""
    table = data.get("records")
    if "records" not in data or not set(data) <= {"records", "meta"} or not isinstance(table, dict):
        raise ValueError("not a segment: expected {\"records\": {...}} and optionally \"meta\"")
    for key, entry in data.get("meta", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("v"), int) or "value" not in entry:
            raise ValueError(f"meta {key!r} is malformed")
        if entry.get("crc") != meta_crc(entry):
            raise ValueError(f"meta {key!r} fails its checksum")
    for key, entry in table.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("r"), dict):
            raise ValueError(f"record {key!r} is malformed")
        rec = entry["r"]
        if rec.get("seq") != int(key) or not isinstance(rec.get("record_id"), str):
            raise ValueError(f"record {key!r} is malformed")
        body = canonical(rec)
        if entry.get("crc") != zlib.crc32(body):
            raise ValueError(f"record {key!r} fails its checksum")
        if payloads is not None:
            payloads[rec["seq"]] = body


def check_meta(data: dict) -> None:
    """meta.json: {"meta": {"<doc id>": {"key": ..., "value": ...}}} and nothing else."""
    if not set(data) <= {"meta"} or not all(
        isinstance(d, dict) and isinstance(d.get("key"), str) for d in data.get("meta", {}).values()
    ):
        raise ValueError("not a meta file: expected {\"meta\": {...}}")


class SegmentStorage(AtomicJSONStorage):
    """A segment of records: each stored as {"crc": CRC-32, "r": record} so that a
    damaged byte inside a record (an ID number!) is detected, and a damaged file can
    be salvaged record by record. TinyDB sees plain records.

    ``meta`` ({key: {"v": version, "value": ...}}) is written in the same file
    replace as the records: a step's records and its meta change (the printer's
    label queue) become durable in ONE atomic write. The store decides which
    version of a key wins (see ``Store.append``)."""

    def __init__(self, path: str):
        super().__init__(path, _check_wrapped)
        self._crcs: dict[str, int] = {}
        self.meta: dict[str, dict] = {}
        self.payloads: dict[int, bytes] = {}  # canonical JSON of the records read from disk, by seq

    def read(self) -> dict | None:
        if self._cache is None:
            self.payloads = {}
            raw = load_json(self.path, lambda data: _check_wrapped(data, self.payloads))
            if raw is None:
                return None
            table = raw.get("records", {})
            self._crcs = {k: e["crc"] for k, e in table.items()}
            self._cache = {"records": {k: e["r"] for k, e in table.items()}}
            self.meta = {k: {"v": e["v"], "value": e["value"]} for k, e in raw.get("meta", {}).items()}
        return dict(self._cache)

    def write(self, data: dict) -> None:
        table = data.get("records", {})
        crcs = {k: self._crcs[k] if k in self._crcs else record_crc(doc) for k, doc in table.items()}
        wrapped: dict[str, Any] = {"records": {k: {"crc": crcs[k], "r": doc} for k, doc in table.items()}}
        if self.meta:
            wrapped["meta"] = {k: {**e, "crc": meta_crc(e)} for k, e in self.meta.items()}
        self._write_payload(encode(wrapped))
        self._cache = data
        self._crcs = crcs


def salvage_records(raw: bytes) -> dict[int, dict]:
    """Every record in a damaged segment that is still whole and passes its checksum."""
    text = raw.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    found: dict[int, dict] = {}
    for m in re.finditer(r'"(\d+)":\s*\{', text):
        try:
            obj, _ = decoder.raw_decode(text, m.end() - 1)
        except ValueError:
            continue
        rec = obj.get("r") if isinstance(obj, dict) else None
        if (isinstance(rec, dict) and rec.get("seq") == int(m.group(1)) and isinstance(rec.get("record_id"), str)
                and obj.get("crc") == record_crc(rec)):
            found[rec["seq"]] = rec
    return found
