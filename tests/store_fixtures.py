"""Records shaped like the station's (docs/records.md, schema swab.record/1)."""

from __future__ import annotations

import datetime as dt
import time

from firmware_app.model import record_id

DEVICE = "gd-dg-0001-t03"
ID_NUMBERS = ["11010519491231002X", "440301199001011234", "44190019851212345X"]
NAMES = ["张三丰", "李四", "王小明"]
CST = dt.timezone(dt.timedelta(hours=8))


def iso(at: float | None = None) -> str:
    """The station's `at`: ISO 8601 local time with offset and milliseconds."""
    return dt.datetime.fromtimestamp(time.time() if at is None else at, CST).isoformat(timespec="milliseconds")


def _base(seq: int, kind: str, at: float | None) -> dict:
    return {
        "schema": "swab.record/1",
        "record_id": record_id(DEVICE, seq),
        "seq": seq,
        "kind": kind,
        "device_id": DEVICE,
        "district": "dongguan",
        "site": "guancheng",
        "table": "t03",
        "at": iso(at),
        "clock_synced": True,
        "operator": "op-0001",
    }


def sample(seq: int, tube: str = "DG032611230001", person: int = 0, at: float | None = None, **extra) -> dict:
    return {
        **_base(seq, "sample", at),
        "tube_id": tube,
        "position": 1,
        "capacity": 10,
        "pool_mode": "10",
        "single_reason": None,
        "name": NAMES[person % 3],
        "id_type": "resident_id",
        "id_number": ID_NUMBERS[person % 3],
        "phone": "13800138000",
        "colour": "green",
        "key_person": False,
        "source": "idcard",
        "duplicate_of": None,
        **extra,
    }


def event(seq: int, kind: str, tube: str | None = "DG032611230001", at: float | None = None, **extra) -> dict:
    return {**_base(seq, kind, at), "tube_id": tube, **extra}


def in_tube_order(received: list[dict]) -> bool:
    """Each tube's records arrived first in seq order (repeats after a reconnect aside)."""
    first_seen: dict[str, list[int]] = {}
    seen: set[str] = set()
    for r in received:
        if r["record_id"] not in seen:
            seen.add(r["record_id"])
            first_seen.setdefault(r["tube_id"], []).append(r["seq"])
    return all(v == sorted(v) for v in first_seen.values())
