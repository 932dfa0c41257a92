"""Records shaped like the station's, for the store, uplink and CLI tests."""

from __future__ import annotations

import time

from firmware_app.model import record_id

DEVICE = "gd-dg-0001-t03"
ID_NUMBERS = ["11010519491231002X", "440301199001011234", "44190019851212345X"]
NAMES = ["张三丰", "李四", "王小明"]


def sample(seq: int, tube: str = "DG032611230001", person: int = 0, at: float | None = None, **extra) -> dict:
    return {
        "schema": "swab.record/1",
        "record_id": record_id(DEVICE, seq),
        "seq": seq,
        "kind": "sample",
        "at": time.time() if at is None else at,
        "synced": True,
        "tube_id": tube,
        "person": {"name": NAMES[person % 3], "id_type": "resident", "id_number": ID_NUMBERS[person % 3],
                   "phone": "13800138000"},
        "source": "idcard",
        "colour": "green",
        "operator": "op-0001",
        **extra,
    }


def event(seq: int, kind: str, tube: str = "DG032611230001", at: float | None = None, **extra) -> dict:
    return {
        "schema": "swab.record/1",
        "record_id": record_id(DEVICE, seq),
        "seq": seq,
        "kind": kind,
        "at": time.time() if at is None else at,
        "synced": True,
        "tube_id": tube,
        **extra,
    }
