"""The kiosk's durable record store: TinyDB in small, atomically replaced segments.

Layout of ``data_dir`` (dirs 0700, files 0600)::

    lock                      flock held by the one writing process
    meta.json                 TinyDB table "meta": small durable key-value
    segments/0000000001.json  TinyDB table "records", doc_id = record seq
    segments/0000000001.acks  ack journal: one JSON line {"at": t, "seqs": [...]} per ack
    damaged/                  files set aside by ``Store.repair`` (never deleted)

Why segments: a write replaces only the current segment (at most
``SEGMENT_BYTES`` plus the batch), so its cost does not grow with the backlog,
and a power cut leaves each file whole (temp + fsync + rename + dir fsync).
A record is in the *outbox* until the uplink acks it (broker PUBACK); it then
stays in its segment as *archived* until the whole segment is acknowledged
and older than ``archive_days``, when the segment is deleted.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from datetime import datetime
from typing import Any, Iterator

from tinydb import Query, TinyDB
from tinydb.table import Document

from firmware_app.model import RECORD_KINDS
from firmware_app.segments import (
    DIR_MODE,
    FILE_MODE,
    AtomicJSONStorage,
    SegmentStorage,
    check_meta,
    StoreCorrupt,
    StoreError,
    StoreFull,
    StoreReadOnly,
    append_line,
    canonical,
    encode,
    fsync_dir,
    load_json,
    os_error,
    salvage_records,
)

log = logging.getLogger(__name__)

__all__ = ["Store", "StoreError", "StoreFull", "StoreReadOnly", "StoreCorrupt", "record_day", "record_time"]

SEGMENT_BYTES = 16 * 1024  # start a new segment once the current one is this big
SEQ_GAP_AFTER_REPAIR = 10_000  # a repaired newest segment may have lost its tail: never reuse a seq
PRUNE_EVERY_S = 3600.0
ACK_SYNC_S = 1.0  # ack journals are fsynced at most this often (see sync_acks)
PARSED_CACHE = 8  # older segments kept parsed in memory (the uplink reads them page by page)
JOURNALS_AHEAD = 32  # ack journals created ahead of the acks, on a helper thread (see ack)


def record_day(record: dict) -> str:
    """The record's local calendar day (YYYY-MM-DD): ``day``, else the date of ``at``.

    ``at`` is the station's ISO 8601 local time ("2026-11-18T19:09:10.000+08:00"),
    whose first 10 characters are the kiosk's own date; unix seconds are accepted too.
    """
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


def _read_segment(path: str) -> dict:
    """A segment's records (checked, checksums verified); StoreCorrupt names a damaged file."""
    return SegmentStorage(path).read() or {}


def _make_journals(paths: list[str]) -> None:
    for path in paths:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE))
        except OSError:
            return  # ack() creates it itself, and reports a real problem


def _sorted_records(data: dict) -> list[dict]:
    return sorted(data.get("records", {}).values(), key=lambda r: r["seq"])


KIND_CODES = {kind: n for n, kind in enumerate(RECORD_KINDS, 1)}  # 0: a kind not listed
KIND_NAMES = {n: kind for kind, n in KIND_CODES.items()}
ACKED = 0x80  # flag bit in a segment's per-record byte (the low bits are the kind code)


class _Seqs:
    """A segment's record seqs in order: (first, count) runs, one run when they are contiguous."""

    __slots__ = ("starts", "counts")

    def __init__(self) -> None:
        self.starts = array("q")
        self.counts = array("q")

    def append(self, seq: int) -> None:
        if self.starts and self.starts[-1] + self.counts[-1] == seq:
            self.counts[-1] += 1
        else:
            self.starts.append(seq)
            self.counts.append(1)

    def __len__(self) -> int:
        return sum(self.counts)

    def __getitem__(self, i: int) -> int:
        if i != -1 or not self.starts:
            raise IndexError(i)
        return self.starts[-1] + self.counts[-1] - 1

    def __iter__(self):
        for start, count in zip(self.starts, self.counts):
            yield from range(start, start + count)

    def index(self, seq: int) -> int:
        """Position of seq in the segment, or -1."""
        pos = 0
        for start, count in zip(self.starts, self.counts):
            if start <= seq < start + count:
                return pos + seq - start
            pos += count
        return -1


class _Segments:
    """Every segment's outbox index as columns: ~32 B a segment and 1 B a record, no
    object per segment (a site offline for a day has ~5,000 of them). Rows in seq order;
    a ``_Segment`` is a view of one row. The flag bytes (kind code | ACKED) of all
    records lie in one bytearray, segment after segment: only the newest one grows."""

    __slots__ = ("dir", "firsts", "counts", "sizes", "acked", "last_ack", "starts", "flags", "gaps",
                 "damage", "version")

    def __init__(self, seg_dir: str) -> None:
        self.dir = seg_dir
        self.firsts = array("q")  # file name: seq of its first record when written
        self.counts = array("I")  # records
        self.sizes = array("I")  # bytes on disk
        self.acked = array("I")  # records acknowledged
        self.last_ack = array("d")
        self.starts = array("I")  # where its flag bytes begin in ``flags``
        self.flags = bytearray()
        # first -> seqs of a segment whose seqs are not first, first + 1, ... (after a repair)
        self.gaps: dict[int, _Seqs] = {}
        self.damage: dict[int, str] = {}  # first -> damaged line in its ack journal
        self.version = 0  # changes when rows move (views look their row up again)

    def row(self, first: int) -> int:
        i = bisect_left(self.firsts, first)
        if i == len(self.firsts) or self.firsts[i] != first:
            raise KeyError(first)
        return i

    def end(self, i: int) -> int:
        return self.starts[i + 1] if i + 1 < len(self.starts) else len(self.flags)

    def _new_row(self, first: int) -> None:
        if self.firsts and first <= self.firsts[-1]:
            raise ValueError(f"segment {first} is not after the last one")
        self.firsts.append(first)
        for column in (self.counts, self.sizes, self.acked):
            column.append(0)
        self.last_ack.append(0.0)
        self.starts.append(len(self.flags))

    # the list-like part the store uses
    def __len__(self) -> int:
        return len(self.firsts)

    def __bool__(self) -> bool:
        return bool(self.firsts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [_Segment(self.firsts[k], table=self, row=k) for k in range(*i.indices(len(self.firsts)))]
        k = range(len(self.firsts))[i]
        return _Segment(self.firsts[k], table=self, row=k)

    def __iter__(self):
        return iter(self[:])

    def total_size(self) -> int:
        return sum(self.sizes)

    def append(self, seg: _Segment) -> None:
        """Take over a segment built on its own (its row moves here)."""
        own, i = seg._t, seg._row()
        self._new_row(seg.first)
        for name in ("counts", "sizes", "acked", "last_ack"):
            getattr(self, name)[-1] = getattr(own, name)[i]
        self.flags += own.flags[own.starts[i] : own.end(i)]
        if seg.first in own.gaps:
            self.gaps[seg.first] = own.gaps[seg.first]
        if seg.first in own.damage:
            self.damage[seg.first] = own.damage[seg.first]
        seg._t, seg._ver = self, -1

    def remove(self, seg: _Segment) -> None:
        """Drop a segment's row; the view keeps a copy of it (on its own, as before append)."""
        i = self.row(seg.first)
        own = _Segments(self.dir)
        own.append(_Segment(seg.first, table=self))  # copies the row and rebinds that view only
        seg._t, seg._ver = own, -1
        begin, end = self.starts[i], self.end(i)
        del self.flags[begin:end]
        for column in (self.firsts, self.counts, self.sizes, self.acked, self.last_ack, self.starts):
            del column[i]
        for k in range(i, len(self.starts)):
            self.starts[k] -= end - begin
        self.gaps.pop(seg.first, None)
        self.damage.pop(seg.first, None)
        self.version += 1


class _SegmentSeqs:
    """A segment's record seqs (the ``_Seqs`` API): its first + position, else ``gaps``."""

    __slots__ = ("_seg",)

    def __init__(self, seg: _Segment) -> None:
        self._seg = seg

    def append(self, seq: int) -> None:
        t, i = self._seg._t, self._seg._row()
        n, first = t.counts[i], self._seg.first
        gaps = t.gaps.get(first)
        if gaps is None and seq != first + n:  # not contiguous from first (after a repair): runs
            gaps = t.gaps[first] = _Seqs()
            if n:
                gaps.starts.append(first)
                gaps.counts.append(n)
        if gaps is not None:
            gaps.append(seq)
        t.counts[i] = n + 1

    def __len__(self) -> int:
        return self._seg._t.counts[self._seg._row()]

    def __getitem__(self, k: int) -> int:
        t, i = self._seg._t, self._seg._row()
        if k != -1 or not t.counts[i]:
            raise IndexError(k)
        gaps = t.gaps.get(self._seg.first)
        return gaps[-1] if gaps is not None else self._seg.first + t.counts[i] - 1

    def __iter__(self):
        t, i = self._seg._t, self._seg._row()
        gaps = t.gaps.get(self._seg.first)
        return iter(gaps) if gaps is not None else iter(range(self._seg.first, self._seg.first + t.counts[i]))

    def index(self, seq: int) -> int:
        """Position of seq in the segment, or -1."""
        t, i = self._seg._t, self._seg._row()
        gaps = t.gaps.get(self._seg.first)
        if gaps is not None:
            return gaps.index(seq)
        pos = seq - self._seg.first
        return pos if 0 <= pos < t.counts[i] else -1


class _SegmentFlags:
    """A segment's flag bytes, by position in its seqs (a window on ``_Segments.flags``)."""

    __slots__ = ("_seg",)

    def __init__(self, seg: _Segment) -> None:
        self._seg = seg

    def _span(self) -> tuple[_Segments, int, int]:
        t = self._seg._t
        i = self._seg._row()
        return t, t.starts[i], t.end(i)

    def __len__(self) -> int:
        _t, begin, end = self._span()
        return end - begin

    def __getitem__(self, pos: int) -> int:
        t, begin, end = self._span()
        if not 0 <= pos < end - begin:
            raise IndexError(pos)
        return t.flags[begin + pos]

    def __setitem__(self, pos: int, value: int) -> None:
        t, begin, end = self._span()
        if not 0 <= pos < end - begin:
            raise IndexError(pos)
        t.flags[begin + pos] = value

    def append(self, value: int) -> None:
        t, _begin, end = self._span()
        if end != len(t.flags):
            raise ValueError("only the newest segment takes new records")
        t.flags.append(value)

    def __bytes__(self) -> bytes:
        t, begin, end = self._span()
        return bytes(t.flags[begin:end])


class _Segment:
    """One segment file and its outbox index (a row of ``_Segments``): a byte per record
    (kind code | ACKED), no per-record objects."""

    __slots__ = ("first", "_t", "_ver", "_i")

    def __init__(self, first: int, path: str | None = None, table: _Segments | None = None,
                 row: int | None = None) -> None:
        self.first = first  # seq of its first record (also its file name)
        if table is None:  # a new segment, on its own until Store appends it to its table
            table = _Segments(os.path.dirname(path or ""))
            table._new_row(first)
        self._t, self._ver, self._i = table, -1, 0
        if row is not None:  # handed out by the table: its row is known
            self._ver, self._i = table.version, row

    def _row(self) -> int:
        if self._ver != self._t.version:
            self._i, self._ver = self._t.row(self.first), self._t.version
        return self._i

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Segment) and other.first == self.first and other._t is self._t

    def __hash__(self) -> int:
        return self.first

    @property
    def path(self) -> str:
        return os.path.join(self._t.dir, f"{self.first:010d}.json")

    @property
    def seqs(self) -> _SegmentSeqs:
        return _SegmentSeqs(self)

    @property
    def flags(self) -> _SegmentFlags:
        return _SegmentFlags(self)

    def _column(name: str):  # type: ignore[misc]
        def get(self):
            return getattr(self._t, name)[self._row()]

        def put(self, value):
            getattr(self._t, name)[self._row()] = value

        return property(get, put)

    size = _column("sizes")
    n_acked = _column("acked")
    last_ack_at = _column("last_ack")

    @property
    def ack_damage(self) -> str:
        """A damaged line in the ack journal (records are re-sent: safe)."""
        return self._t.damage.get(self.first, "")

    @ack_damage.setter
    def ack_damage(self, value: str) -> None:
        self._t.damage[self.first] = value

    @property
    def acks_path(self) -> str:
        return self.path[: -len(".json")] + ".acks"

    @property
    def done(self) -> bool:
        return self.n_acked >= len(self.flags)

    def unacked(self, after_seq: int = 0):
        """(position, seq) of the records not yet acknowledged, in seq order."""
        flags = bytes(self.flags)
        for pos, seq in enumerate(self.seqs):
            if seq > after_seq and not flags[pos] & ACKED:
                yield pos, seq


class Store:
    """Durable records and outbox. Thread-safe; one writing process per ``data_dir``.

    ``read_only=True`` opens without the lock for another process (``swabkiosk
    status``) while the daemon runs; writes then raise ``StoreReadOnly``.
    """

    def __init__(self, data_dir: str, archive_days: int = 30, read_only: bool = False):
        self.data_dir = os.path.abspath(data_dir)
        self.archive_days = archive_days
        self.read_only = read_only
        self._lock = threading.RLock()
        self._seg_dir = os.path.join(self.data_dir, "segments")
        self._segments = _Segments(self._seg_dir)
        # The outbox index lives in the segments (one byte per record); record ids are
        # f"{device}-{seq:010d}", so they map back to a seq without a dict per record.
        self._unacked = 0
        self._by_kind: dict[str, int] = {}
        self._prefix: str | None = None  # the device part of the record ids
        self._odd_ids: dict[str, int] = {}  # record ids of another form -> seq (none from the station)
        self._oldest: tuple[int, float | None] | None = None  # (seq, time) of the oldest unsent record
        self._archived = 0
        self._last_ack_at: float | None = None
        self._current: TinyDB | None = None
        self._parsed: OrderedDict[str, tuple[list[dict], dict[int, bytes]]] = OrderedDict()
        self._lock_fd: int | None = None
        self._last_prune = 0.0
        self._unsynced_acks: set[str] = set()
        self._acks_synced_at = 0.0
        self._ack_syncer: threading.Thread | None = None
        self._journals_upto = 0  # first seq of the last segment whose ack journal was created ahead
        self._journal_maker: threading.Thread | None = None
        # Meta written by append(meta=...) lives in the newest segment: key -> (version, value),
        # only for keys whose newest version is there (set_meta's meta.json copy is older).
        self._carried: dict[str, tuple[int, Any]] = {}
        self._meta_v = 0  # versions order meta writes across meta.json and segments
        if read_only:
            if not os.path.isdir(self._seg_dir):
                raise StoreError(
                    f"没有找到数据目录：{self.data_dir}", f"No store found in {self.data_dir}", self.data_dir
                )
        else:
            self._prepare_dirs()
        self._meta = TinyDB(os.path.join(self.data_dir, "meta.json"), storage=AtomicJSONStorage, validate=check_meta)
        try:
            self._load()
            if not read_only:
                self.prune()
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- opening

    def _prepare_dirs(self) -> None:
        try:
            for d in (self.data_dir, self._seg_dir):
                os.makedirs(d, mode=DIR_MODE, exist_ok=True)
                os.chmod(d, DIR_MODE)
            self._lock_fd = os.open(os.path.join(self.data_dir, "lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise os_error(exc, self.data_dir) from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StoreError(
                f"数据目录正被另一个进程使用：{self.data_dir}（是否已在运行 swabkiosk run？）",
                f"The store {self.data_dir} is in use by another process (is `swabkiosk run` already running?)",
                self.data_dir,
            ) from None
        for name in os.listdir(self._seg_dir):
            path = os.path.join(self._seg_dir, name)
            if name.endswith(".tmp"):  # a write that never committed (crash before rename)
                os.unlink(path)
            elif os.stat(path).st_mode & 0o077:
                os.chmod(path, FILE_MODE)

    def _segment_files(self) -> list[str]:
        names = [n for n in os.listdir(self._seg_dir) if n.endswith(".json") and n[:-5].isdigit()]
        return sorted(names, key=lambda n: int(n[:-5]))

    def _load(self) -> None:
        load_json(self._meta.storage.path, check_meta)  # a damaged meta file is reported, like a segment
        carried: dict[str, tuple[int, Any]] = {}
        for name in self._segment_files():
            seg = _Segment(first=int(name[:-5]), path=os.path.join(self._seg_dir, name))
            storage = SegmentStorage(seg.path)
            data = storage.read() or {}
            for key, entry in storage.meta.items():
                if entry["v"] > carried.get(key, (0, None))[0]:
                    carried[key] = (entry["v"], entry["value"])
            seg.size = os.path.getsize(seg.path)
            records = _sorted_records(data)
            for rec in records:
                seg.seqs.append(rec["seq"])
                self._track(seg, rec)
            self._load_acks(seg)
            self._segments.append(seg)
        saved = {d["key"]: d.get("v", 0) for d in self._meta.table("meta").all()}
        self._carried = {k: vv for k, vv in carried.items() if vv[0] > saved.get(k, 0)}
        self._meta_v = max([0, *saved.values(), *(v for v, _ in carried.values())])

    def _load_acks(self, seg: _Segment) -> None:
        try:
            with open(seg.acks_path, "rb") as f:
                lines = f.read().split(b"\n")
        except FileNotFoundError:
            return
        for n, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                entry = json.loads(line)
                seqs, at = entry["seqs"], float(entry["at"])
            except (ValueError, KeyError, TypeError):
                # A torn last line is a crash mid-ack: those records are simply re-sent.
                if n < len(lines):
                    seg.ack_damage = f"{seg.acks_path} line {n}"
                continue
            self._mark_acked(seg, seqs)
            seg.last_ack_at = max(seg.last_ack_at, at)
        if seg.last_ack_at:
            self._last_ack_at = max(self._last_ack_at or 0.0, seg.last_ack_at)

    def _track(self, seg: _Segment, rec: dict) -> None:
        """Index a record just added to seg (its seq already in seg.seqs) as unsent."""
        seq, rid = rec["seq"], rec["record_id"]
        code = KIND_CODES.get(rec.get("kind", ""), 0)
        seg.flags.append(code)
        kind = KIND_NAMES.get(code, "")
        self._by_kind[kind] = self._by_kind.get(kind, 0) + 1
        if self._unacked == 0:
            self._oldest = (seq, record_time(rec))
        self._unacked += 1
        if self._prefix is None and rid.endswith(f"-{seq:010d}"):
            self._prefix = rid[: -11]
        if rid != f"{self._prefix}-{seq:010d}":
            self._odd_ids[rid] = seq

    def _mark_acked(self, seg: _Segment, seqs) -> int:
        """Mark these seqs of seg acknowledged; returns how many were newly acked."""
        done = 0
        table, begin, _end = seg.flags._span()  # the row looked up once, not per record
        flags, index = table.flags, seg.seqs.index
        for seq in seqs:
            pos = index(seq) if isinstance(seq, int) else -1
            if pos < 0 or flags[begin + pos] & ACKED:
                continue
            flags[begin + pos] |= ACKED
            self._by_kind[KIND_NAMES.get(flags[begin + pos] & ~ACKED, "")] -= 1
            done += 1
        seg.n_acked += done
        self._unacked -= done
        self._archived += done
        if done and self._oldest is not None and self._oldest[0] in seqs:
            self._oldest = None  # looked up again when asked (stats)
        return done

    def _find(self, record_id: str) -> tuple[_Segment, int] | None:
        """(segment, seq) of a stored record, by its record id."""
        seq = self._odd_ids.get(record_id)
        if seq is None:
            prefix, _, digits = record_id.rpartition("-")
            if prefix != self._prefix or len(digits) != 10 or not digits.isdigit():
                return None
            seq = int(digits)
        i = bisect_right(self._segments.firsts, seq) - 1
        if i < 0 or self._segments[i].seqs.index(seq) < 0:
            return None
        if record_id not in self._odd_ids and seq in self._odd_ids.values():
            return None  # that seq's record has another id
        return self._segments[i], seq

    def _is_unacked(self, found: tuple[_Segment, int] | None) -> bool:
        if found is None:
            return False
        seg, seq = found
        return not seg.flags[seg.seqs.index(seq)] & ACKED

    def close(self) -> None:
        for helper in (self._journal_maker, self._ack_syncer):
            if helper is not None:
                helper.join()
        with self._lock:
            if self._unsynced_acks and not self.read_only:
                try:
                    self.sync_acks()
                except StoreError as exc:  # only means some records are sent once more
                    log.warning("store: %s", exc.message_en)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- writing

    def _writable(self) -> None:
        if self.read_only:
            raise StoreReadOnly("数据以只读方式打开", "The store was opened read-only", self.data_dir)

    def append(self, records: list[dict], meta: dict[str, Any] | None = None) -> None:
        """Store a batch durably and atomically: all of it, or (on a raised StoreError) none.

        ``meta`` ({key: value}) is committed in the same atomic file replace as the
        records (one durable write, not two): afterwards ``get_meta(key)`` returns it,
        also after a crash and restart, until a later ``set_meta``/``append(meta=)``
        replaces it. Used for the printer's label queue, written with the step that
        made the label.
        """
        if not records:
            if meta:
                for key, value in meta.items():
                    self.set_meta(key, value)
            return
        self._writable()
        with self._lock:
            self._validate(records)
            carried = dict(self._carried)
            if meta:
                encode(meta)  # not JSON-able -> ValueError before anything is written
                for key, value in meta.items():
                    self._meta_v += 1
                    carried[key] = (self._meta_v, value)
            seg = self._segments[-1] if self._segments else None
            if seg is None or seg.size >= SEGMENT_BYTES:
                first = records[0]["seq"]
                seg = _Segment(first=first, path=os.path.join(self._seg_dir, f"{first:010d}.json"))
                db = TinyDB(seg.path, storage=SegmentStorage)
                new = True
            else:
                db = self._current_db(seg)
                new = False
            db.storage.read()  # load the segment (and its meta) before choosing what the write carries
            # every carried key goes into the newest segment, so pruning older ones never loses one
            before, db.storage.meta = db.storage.meta, {k: {"v": v, "value": val} for k, (v, val) in carried.items()}
            try:
                db.table("records").insert_multiple(Document(r, doc_id=r["seq"]) for r in records)
            except BaseException:
                db.storage.meta = before
                raise
            self._carried = carried
            seg.size = db.storage.size
            # a segment read (and cached) before this write must never be served stale later
            self._parsed.pop(seg.path, None)
            if new:
                self._segments.append(seg)
            self._current = db
            for r in records:
                seg.seqs.append(r["seq"])
                self._track(seg, r)

    def _current_db(self, seg: _Segment) -> TinyDB:
        if self._current is None or self._current.storage.path != seg.path:
            self._current = TinyDB(seg.path, storage=SegmentStorage)
        return self._current

    def _validate(self, records: list[dict]) -> None:
        last = self.last_seq()
        for r in records:
            if not isinstance(r, dict):
                raise ValueError("a record must be a dict")
            seq, rid, kind = r.get("seq"), r.get("record_id"), r.get("kind")
            if not isinstance(seq, int) or seq <= last:
                raise ValueError(f"record seq must be an int above {last}, got {seq!r}")
            if not isinstance(rid, str) or not rid or self._is_unacked(self._find(rid)):
                raise ValueError(f"record_id missing or already stored: {rid!r}")
            if kind not in RECORD_KINDS:
                raise ValueError(f"unknown record kind {kind!r}")
            last = seq
        encode(records)  # not JSON-able -> ValueError/TypeError before anything is written

    def ack(self, record_ids) -> int:
        """The broker acknowledged these records: move them from the outbox to the archive.

        Unknown or already acknowledged ids are ignored. Returns how many were newly acked.
        """
        self._writable()
        now = time.time()
        with self._lock:
            by_seg: dict[int, tuple[_Segment, list[int]]] = {}
            for rid in dict.fromkeys(record_ids):
                found = self._find(rid) if isinstance(rid, str) else None
                if self._is_unacked(found):
                    by_seg.setdefault(found[0].first, (found[0], []))[1].append(found[1])
            done = 0
            for seg, seqs in by_seg.values():
                try:
                    append_line(seg.acks_path, encode({"at": now, "seqs": seqs}) + b"\n")
                except OSError as exc:
                    raise os_error(exc, seg.acks_path) from exc
                self._unsynced_acks.add(seg.acks_path)
                done += self._mark_acked(seg, seqs)
                seg.last_ack_at = now
                self._last_ack_at = now
            if by_seg:
                self._make_journals_ahead(max(by_seg))
            if now - self._acks_synced_at >= ACK_SYNC_S and not (self._ack_syncer and self._ack_syncer.is_alive()):
                # fsync the journals beside the uplink, not in its way (a drain touches ~30 a second)
                self._acks_synced_at = now
                self._ack_syncer = threading.Thread(target=self._sync_acks_quietly, name="ack-sync", daemon=True)
                self._ack_syncer.start()
            if now - self._last_prune > PRUNE_EVERY_S:
                self.prune()
            return done

    def _make_journals_ahead(self, acked_first: int) -> None:
        """Create the next segments' (empty) ack journals on a helper thread, half a batch at a
        time: creating a file costs more than the rest of an ack (~0.5 ms here, more on an SD
        card) and a drain acks ~25 segments a second. An empty journal acks nothing."""
        i = bisect_right(self._segments.firsts, acked_first)
        ahead = self._segments[i:i + JOURNALS_AHEAD]
        if not ahead or ahead[len(ahead) // 2].first <= self._journals_upto:
            return
        if self._journal_maker is not None and self._journal_maker.is_alive():
            return
        paths = [seg.acks_path for seg in ahead if seg.first > self._journals_upto]
        self._journals_upto = ahead[-1].first
        self._journal_maker = threading.Thread(target=_make_journals, args=(paths,), name="ack-journals", daemon=True)
        self._journal_maker.start()

    def sync_acks(self) -> None:
        """fsync the ack journals written since the last sync (ack() does it every ACK_SYNC_S).

        Acks are fsynced lazily: an ack lost to a power cut only means the record is
        sent once more (same record_id), and a drain is not held up by one fsync per batch.
        """
        with self._lock:  # the fsyncs run outside the lock: appends and acks go on meanwhile
            paths, self._unsynced_acks = sorted(self._unsynced_acks), set()
            self._acks_synced_at = time.time()
        try:
            for path in paths:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:  # pruned meanwhile
                    continue
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise os_error(exc, path) from exc
                finally:
                    os.close(fd)
            if paths:
                fsync_dir(self._seg_dir)  # a journal created since the last sync
        except BaseException:
            with self._lock:
                self._unsynced_acks.update(paths)  # tried again next time
            raise

    def _sync_acks_quietly(self) -> None:
        try:
            self.sync_acks()
        except Exception as exc:  # only means some records are sent once more after a power cut
            log.warning("store: ack journal not synced: %s", getattr(exc, "message_en", exc))

    def prune(self, now: float | None = None) -> int:
        """Delete segments wholly acknowledged more than ``archive_days`` ago (never the newest)."""
        self._writable()
        now = time.time() if now is None else now
        cutoff = now - self.archive_days * 86400
        removed = 0
        with self._lock:
            self._last_prune = now
            for seg in list(self._segments[:-1]):
                if seg.done and seg.last_ack_at < cutoff:
                    for path in (seg.path, seg.acks_path):
                        try:
                            os.unlink(path)
                        except FileNotFoundError:
                            pass
                    self._segments.remove(seg)
                    self._parsed.pop(seg.path, None)
                    self._archived -= seg.n_acked
                    removed += len(seg.flags)
                    self._odd_ids = {rid: q for rid, q in self._odd_ids.items() if seg.seqs.index(q) < 0}
        return removed

    # ---------------------------------------------------------------- reading

    def _records_of(self, seg: _Segment) -> list[dict]:
        return self._read(seg)[0]

    def _read(self, seg: _Segment) -> tuple[list[dict], dict[int, bytes]]:
        """A segment's records in seq order, and the canonical JSON of those read from disk."""
        if self._current is not None and self._current.storage.path == seg.path:
            return _sorted_records(self._current.storage.read() or {}), {}
        # only the newest segment ever changes: older ones are cached while the uplink drains them
        parsed = self._parsed.get(seg.path)
        if parsed is None:
            storage = SegmentStorage(seg.path)
            parsed = (_sorted_records(storage.read() or {}), storage.payloads)
            self._parsed[seg.path] = parsed
            if len(self._parsed) > PARSED_CACHE:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(seg.path)
        return parsed

    def iter_records(self, day: str | None = None) -> Iterator[dict]:
        """Every stored record (outbox and archive) in seq order, optionally of one day."""
        with self._lock:
            segments = list(self._segments)
        for seg in segments:
            with self._lock:
                records = self._records_of(seg)
            for rec in records:
                if day is None or record_day(rec) == day:
                    yield rec

    def records(self, record_ids) -> list[dict]:
        """The stored records (outbox or archive) with these ids, in seq order; ids the
        store does not have are left out. For the station's Recall (a rare path)."""
        with self._lock:
            found = [f for f in (self._find(rid) for rid in dict.fromkeys(record_ids) if isinstance(rid, str)) if f]
            out: list[dict] = []
            for seg, seq in sorted(found, key=lambda f: f[1]):
                current = self._current is not None and self._current.storage.path == seg.path
                try:
                    if current or seg.path in self._parsed:
                        records = self._records_of(seg)
                    else:  # read, not cached: the cache is the uplink's, and a Recall is rare
                        records = _sorted_records(_read_segment(seg.path))
                except StoreCorrupt as exc:  # left out, as lost; `status --repair` names the file
                    log.warning("store: %s", exc.message_en)
                    continue
                out += [r for r in records if r["seq"] == seq]
            return out

    def outbox(self, limit: int = 100, after_seq: int = 0) -> list[dict]:
        """Up to ``limit`` unacknowledged records, oldest first (seq order = per-table order).

        ``after_seq``: only records after it (the uplink's cursor on one connection).
        """
        with self._lock:
            out: list[dict] = []
            # start at the segment holding after_seq: a drain reads page by page through a long backlog
            start = max(0, bisect_right(self._segments.firsts, after_seq) - 1)
            for seg in self._segments[start:]:
                if len(out) >= limit:
                    break
                if seg.done or seg.seqs[-1] <= after_seq:
                    continue
                seqs = set()
                for _pos, seq in seg.unacked(after_seq):
                    if len(out) + len(seqs) >= limit:
                        break
                    seqs.add(seq)
                if seqs:
                    out += [r for r in self._records_of(seg) if r["seq"] in seqs]
            return out

    def outbox_messages(self, limit: int = 100, after_seq: int = 0) -> list[tuple[dict, bytes]]:
        """``outbox`` with each record's MQTT payload, its canonical JSON (``segments.canonical``):
        reused from the checksum check of the segment read, so a drain encodes each record once."""
        with self._lock:
            records = self.outbox(limit, after_seq)
            cached: dict[int, bytes] = {}
            for _records, payloads in self._parsed.values():  # the segments outbox() just read
                cached.update(payloads)
            return [(r, cached.get(r["seq"]) or canonical(r)) for r in records]

    def is_sent(self, record_id: str) -> bool:
        """True once the broker acknowledged this stored record."""
        with self._lock:
            return not self._is_unacked(self._find(record_id))

    def last_seq(self) -> int:
        with self._lock:
            last = self._segments[-1].seqs[-1] if self._segments and self._segments[-1].seqs else 0
            return max(last, int(self.get_meta("seq_floor", 0)))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            oldest = self._oldest_unsent_at()
            backlog = self._by_kind.get("sample", 0)
            total_unacked = self._unacked
            damage = [d for d in self._segments.damage.values() if d]
            size = self._segments.total_size()
            last_seq = self.last_seq()
        try:
            free = shutil.disk_usage(self.data_dir).free
        except OSError:
            free = None
        return {
            "backlog": backlog,  # sample records (one per person) not yet acknowledged
            "backlog_events": total_unacked - backlog,  # voids, tube/box/shift events
            "archived": self._archived,
            "oldest_unsent_age_s": (
                round(time.time() - oldest, 1) if oldest is not None else None
            ),
            "last_ack_at": self._last_ack_at,
            "last_seq": last_seq,
            "segments": len(self._segments),
            "bytes": size,
            "free_bytes": free,
            "damage": damage,
        }

    def _oldest_unsent_at(self) -> float | None:
        """Time of the oldest unsent record (read from its segment once, then remembered)."""
        if self._unacked == 0:
            return None
        if self._oldest is None:
            for seg in self._segments:
                first = next(seg.unacked(), None)
                if first is not None:
                    rec = next(r for r in self._records_of(seg) if r["seq"] == first[1])
                    self._oldest = (first[1], record_time(rec))
                    break
        return self._oldest[1] if self._oldest is not None else None

    # ---------------------------------------------------------------- meta

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            if key in self._carried:
                return self._carried[key][1]
            doc = self._meta.table("meta").get(Query().key == key)
            return default if doc is None else doc["value"]

    def set_meta(self, key: str, value: Any) -> None:
        self._writable()
        with self._lock:
            self._meta.table("meta").upsert({"key": key, "value": value, "v": self._meta_v + 1}, Query().key == key)
            self._meta_v += 1
            self._carried.pop(key, None)  # meta.json now holds the newest version

    # ---------------------------------------------------------------- repair

    @staticmethod
    def repair(data_dir: str) -> list[dict]:
        """Set damaged files aside in ``damaged/`` and keep every record that is still whole.

        Returns one entry per damaged file: {"file", "moved_to", "recovered", "note"}.
        Never deletes a damaged file. After a damaged newest segment, sequence numbers
        jump by SEQ_GAP_AFTER_REPAIR so no record id is ever reused.
        """
        data_dir = os.path.abspath(data_dir)
        seg_dir = os.path.join(data_dir, "segments")
        damaged_dir = os.path.join(data_dir, "damaged")
        report: list[dict] = []
        names = sorted((n for n in os.listdir(seg_dir) if n.endswith(".json")), key=lambda n: int(n[:-5]))
        floor = 0
        for i, name in enumerate(names):
            path = os.path.join(seg_dir, name)
            try:
                _read_segment(path)
                continue
            except StoreCorrupt:
                pass
            with open(path, "rb") as f:
                raw = f.read()
            found = salvage_records(raw)
            os.makedirs(damaged_dir, mode=DIR_MODE, exist_ok=True)
            moved = os.path.join(damaged_dir, f"{name}.{int(time.time())}")
            shutil.copy2(path, moved)
            os.chmod(moved, FILE_MODE)
            repaired = SegmentStorage(path)
            repaired.write({"records": {str(s): found[s] for s in sorted(found)}})
            first = int(name[:-5])
            note = "intact records kept; records after the damage may be lost"
            if i == len(names) - 1:
                floor = max(floor, max(found, default=first) + SEQ_GAP_AFTER_REPAIR)
                note += f"; sequence continues from {floor} so no record id is reused"
            report.append({"file": path, "moved_to": moved, "recovered": len(found), "note": note})
        meta_path = os.path.join(data_dir, "meta.json")
        try:
            load_json(meta_path, check_meta)
        except StoreCorrupt:
            os.makedirs(damaged_dir, mode=DIR_MODE, exist_ok=True)
            moved = os.path.join(damaged_dir, f"meta.json.{int(time.time())}")
            os.replace(meta_path, moved)
            report.append(
                {"file": meta_path, "moved_to": moved, "recovered": 0, "note": "meta reset (pending labels, uplink state)"}
            )
        if floor:
            store = Store(data_dir)
            try:
                store.set_meta("seq_floor", max(floor, int(store.get_meta("seq_floor", 0))))
            finally:
                store.close()
        return report
