"""One-time import of the old TinyDB segment layout into kiosk.db (no tinydb needed).

The old layout (firmware_app/segments.py before the SQLite store)::

    meta.json                  {"meta": {"<doc id>": {"key": k, "value": v, "v": version}}}
    segments/<first seq>.json  {"records": {"<seq>": {"crc": crc32(canonical(r)), "r": r}},
                                "meta": {k: {"v": version, "value": v, "crc": crc32(canonical({"v","value"}))}}}
    segments/<first seq>.acks  one JSON line {"at": t, "seqs": [...]} per ack (a torn line: resend)

Every record whose CRC holds is copied with its ack state; the newest version of each
meta key is carried; counts and checksums are verified in the same transaction that
marks the import done; then ``segments/`` and ``meta.json`` move to ``legacy/<time>/``
(never deleted) and the report is persisted (``Store.reports()``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import zlib
from typing import Any

from firmware_app.atomic import DIR_MODE, fsync_dir
from firmware_app.catalogue import both
from firmware_app.store_schema import INSERT_RECORD, StoreError, canonical, meta_row, row_values

log = logging.getLogger(__name__)
SEQ_GAP_AFTER_LOSS = 10_000  # as the old repair did: a lost tail may have held seqs we cannot see


MAX_DEPTH = 64  # a segment is {"records": {seq: {"crc", "r": record}}}: a few levels plus a record's


def _loads(raw: bytes | str) -> Any:
    """json.loads whose nesting is bounded first: a damaged file nested 5,000 deep is a ValueError
    (damage, reported and repaired), not a RecursionError that stops the kiosk starting."""
    from firmware_app.boundedjson import depth

    text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    if depth(text) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} deep")
    return json.loads(text)


def _load(path: str) -> Any:
    with open(path, "rb") as f:
        return _loads(f.read())


def read_segment(path: str) -> tuple[dict[int, dict], dict[str, tuple[int, Any]], int]:
    """(records by seq with a valid CRC, carried meta {key: (version, value)}, records lost)."""
    with open(path, "rb") as f:
        raw = f.read()
    good: dict[int, dict] = {}
    meta: dict[str, tuple[int, Any]] = {}
    try:
        data = _loads(raw)
        table = data["records"]
        if not isinstance(table, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return _salvage(raw)
    lost = 0
    for key, entry in table.items():
        rec = entry.get("r") if isinstance(entry, dict) else None
        if (isinstance(rec, dict) and key.isdigit() and rec.get("seq") == int(key)
                and isinstance(rec.get("record_id"), str) and entry.get("crc") == zlib.crc32(canonical(rec))):
            good[rec["seq"]] = rec
        else:
            lost += 1
    for key, entry in (data.get("meta") or {}).items() if isinstance(data.get("meta"), dict) else ():
        try:
            if entry["crc"] == zlib.crc32(canonical({"v": entry["v"], "value": entry["value"]})):
                meta[key] = (int(entry["v"]), entry["value"])
        except (KeyError, TypeError, ValueError):
            pass
    return good, meta, lost


def _salvage(raw: bytes) -> tuple[dict[int, dict], dict, int]:
    """Every record still whole in a damaged segment; lost = record entries seen minus those kept."""
    text = raw.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    good: dict[int, dict] = {}
    candidates = 0
    for m in re.finditer(r'"(\d+)":\s*\{"crc"', text):
        candidates += 1
        try:
            obj, _ = decoder.raw_decode(text, m.start() + len(m.group(0)) - len('{"crc"'))
        except (ValueError, RecursionError):
            continue
        rec = obj.get("r") if isinstance(obj, dict) else None
        if (isinstance(rec, dict) and rec.get("seq") == int(m.group(1)) and isinstance(rec.get("record_id"), str)
                and obj.get("crc") == zlib.crc32(canonical(rec))):
            good[rec["seq"]] = rec
    return good, {}, max(0, candidates - len(good))


def read_acks(path: str) -> dict[int, float]:
    """seq -> ack time from an ack journal; unreadable lines are skipped (those records are resent)."""
    out: dict[int, float] = {}
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            entry = _loads(line)
            at = float(entry["at"])
            out.update((int(s), at) for s in entry["seqs"] if isinstance(s, int))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def read_meta_file(path: str) -> tuple[dict[str, tuple[int, Any]], bool]:
    """meta.json's keys {key: (version, value)}, and whether the file was damaged."""
    try:
        data = _load(path)
        docs = data["meta"].values()
        saved = {d["key"]: (int(d.get("v", 0)), d["value"]) for d in docs}
        if not all(isinstance(key, str) for key in saved):
            raise TypeError("a meta key that is not a string")
        return saved, False
    except FileNotFoundError:
        return {}, False
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return {}, True


def import_legacy(store) -> dict | None:
    """Import ``store.data_dir``'s segment layout into the (writable, open) store, one segment at a
    time (memory does not grow with the archive), in ONE transaction; None when there is nothing to
    import. Idempotent: a crash before the commit starts over, after it only repeats the move."""
    seg_dir = os.path.join(store.data_dir, "segments")
    meta_path = os.path.join(store.data_dir, "meta.json")
    if store.get_meta("legacy_import") is not None:
        return _move_aside(store, seg_dir, meta_path, store.get_meta("legacy_import"))
    names = sorted((n for n in os.listdir(seg_dir) if n.endswith(".json") and n[:-5].isdigit()),
                   key=lambda n: int(n[:-5]))
    moved = os.path.join(store.data_dir, "legacy", time.strftime("%Y%m%d-%H%M%S"))
    saved, meta_damaged = read_meta_file(meta_path)
    from firmware_app.sdnotify import Notifier
    notifier = Notifier()  # a month of segments takes a while on a Pi: keep systemd's start timeout away
    tally: dict[str, Any] = {"kept": 0, "lost": 0, "acked": 0, "crc": 0, "top": 0}  # and "report" at the end
    damaged: list[str] = []

    def work(conn) -> None:
        carried: dict[str, tuple[int, Any]] = {}
        for i, name in enumerate(names):
            if i % 500 == 0:
                notifier.send("EXTEND_TIMEOUT_USEC=60000000", f"STATUS=importing old records: {i}/{len(names)} files")
            good, meta, bad = read_segment(os.path.join(seg_dir, name))
            acks = read_acks(os.path.join(seg_dir, name[:-5] + ".acks"))
            if bad:
                damaged.append(name)
            tally["lost"] += bad
            for key, (v, value) in meta.items():
                if v > carried.get(key, (-1, None))[0]:
                    carried[key] = (v, value)
            for seq in sorted(good):
                rec, at = good[seq], acks.get(seq)
                row = row_values(rec, canonical(rec), 1 if at is not None else 0, at)
                if conn.execute(INSERT_RECORD.replace("INSERT", "INSERT OR IGNORE", 1), row).rowcount != 1:
                    tally["lost"] += 1  # the same seq or record id twice: the first one is kept
                    continue
                tally["kept"] += 1
                tally["acked"] += row[8]
                tally["crc"] += row[-1]
                tally["top"] = max(tally["top"], seq)
        for key, (v, value) in saved.items():
            if v >= carried.get(key, (-1, None))[0]:
                carried[key] = (v, value)
        values: dict[str, Any] = {k: value for k, (_v, value) in carried.items()}
        floor_seq = int(values.pop("seq_floor", 0) or 0)
        if tally["lost"]:
            floor_seq = max(floor_seq, tally["top"] + SEQ_GAP_AFTER_LOSS)
        n, total = conn.execute("SELECT count(*), total(crc) FROM records").fetchone()
        if n != tally["kept"] or int(total) != tally["crc"]:
            raise StoreError(*both("store.legacy_check_failed"), raw=f"{n} rows, expected {tally['kept']}")
        for body, crc in conn.execute("SELECT body, crc FROM records"):
            if zlib.crc32(body) != crc:
                raise StoreError(*both("store.legacy_check_failed"), raw="a checksum differs")
        note = f"imported from the segment layout ({len(names)} segment files)"
        if damaged:
            note += f"; damaged segments: {', '.join(damaged[:20])}"
        if meta_damaged:
            note += "; meta.json was damaged (its keys reset)"
        tally["report"] = {"at": time.time(), "what": "import", "kept": tally["kept"], "lost": tally["lost"],
                           "moved_to": moved, "note": note}
        conn.execute("UPDATE counters SET n = ? WHERE key = 'archived'", (tally["acked"],))
        values.update({"legacy_import": moved, "reports": [*store.reports(), tally["report"]]})
        if floor_seq:
            values["hwm_floor"] = {"seq": floor_seq, "numbers": {}}
        for key, value in values.items():
            conn.execute("INSERT OR REPLACE INTO meta (key, value, crc) VALUES (?,?,?)", meta_row(key, value))

    with store._lock:
        if store.last_seq() or store._count():
            raise StoreError(*both("store.legacy_and_db"), store.data_dir)
        try:
            store._transaction(work)
        finally:
            notifier.close()
    (log.error if tally["lost"] or meta_damaged else log.warning)(
        "store import: %s records kept, %s lost; old files moved to %s", tally["kept"], tally["lost"], moved)
    return _move_aside(store, seg_dir, meta_path, moved, tally["report"])


def _move_aside(store, seg_dir: str, meta_path: str, moved: str, report: dict | None = None) -> dict | None:
    os.makedirs(moved, mode=DIR_MODE, exist_ok=True)
    if os.path.isdir(seg_dir):
        os.replace(seg_dir, os.path.join(moved, "segments"))
    if os.path.exists(meta_path):
        os.replace(meta_path, os.path.join(moved, "meta.json"))
    fsync_dir(moved)
    fsync_dir(store.data_dir)
    return report
