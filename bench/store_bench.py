"""Per-write cost of the store at a given backlog, beside TinyDB's default JSONStorage.

    python -m bench.store_bench            # prints JSON for backlogs 0, 10,000, 50,000

Cost of one write = one ``append([record])`` (one person registered): wall time and
bytes passed to write(2) (``wchar`` in /proc/self/io), which is what wears an SD card.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

from bench.naive_store import NaiveStore

from firmware_app.model import record_id
from firmware_app.store import Store

CST = timezone(timedelta(hours=8))


def make_record(seq: int, device: str = "gd-dg-0001-t03") -> dict:
    """A sample record shaped like the station's (docs/records.md), ~560 bytes of JSON."""
    return {
        "schema": "swab.record/1",
        "record_id": record_id(device, seq),
        "seq": seq,
        "kind": "sample",
        "device_id": device,
        "district": "dongguan",
        "site": "guancheng-stadium",
        "table": "t03",
        "at": datetime.now(CST).isoformat(timespec="milliseconds"),
        "clock_synced": True,
        "operator": "op-0001",
        "tube_id": f"DG03261123{seq // 10:04d}",
        "position": seq % 10 + 1,
        "capacity": 10,
        "pool_mode": "10",
        "single_reason": None,
        "name": "张三丰",
        "id_type": "resident_id",
        "id_number": "11010519491231002X",
        "phone": "13800138000",
        "colour": "green",
        "key_person": False,
        "source": "idcard",
        "duplicate_of": None,
    }


def _wchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def _summary(times: list[float], wbytes: list[int]) -> dict:
    times = sorted(times)
    return {
        "writes": len(times),
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 3),
        "max_ms": round(times[-1] * 1000, 3),
        "bytes_per_write": int(statistics.mean(wbytes)),
    }


def measure(backlog: int, writes: int = 200, storage: str = "store", directory: str | None = None) -> dict:
    """Time ``writes`` single-record appends on top of ``backlog`` unacknowledged records.

    storage: "store" (firmware_app.store), "naive-sqlite" (SQLite as it comes, bench/naive_store.py) or
    "floor" (append + fsync of the same record to one file, for scale on this disk).
    """
    with tempfile.TemporaryDirectory(dir=directory) as d:
        if storage == "store":
            store = Store(d)
            for start in range(1, backlog + 1, 40):  # fill as the station does, in small batches
                store.append([make_record(s) for s in range(start, min(start + 40, backlog + 1))])

            def write(seq):
                store.append([make_record(seq)])
        elif storage == "naive-sqlite":
            naive = NaiveStore(os.path.join(d, "naive.db"))
            if backlog:
                naive.fill(make_record(s) for s in range(1, backlog + 1))

            def write(seq):
                naive.insert(make_record(seq))
        elif storage == "floor":  # append one JSON line + fsync: the least a durable write costs
            fd = os.open(os.path.join(d, "floor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

            def write(seq):
                os.write(fd, json.dumps(make_record(seq), ensure_ascii=False).encode() + b"\n")
                os.fsync(fd)
        else:
            raise ValueError(storage)
        times, wbytes = [], []
        for seq in range(backlog + 1, backlog + 1 + writes):
            w0, t0 = _wchar(), time.perf_counter()
            write(seq)
            times.append(time.perf_counter() - t0)
            wbytes.append(_wchar() - w0)
        result = {"storage": storage, "backlog": backlog, **_summary(times, wbytes)}
        if storage == "store":
            store.close()
        elif storage == "floor":
            os.close(fd)
        return result


def main(argv: list[str] | None = None) -> int:
    rows = []
    for backlog in (0, 10_000, 50_000):
        rows.append(measure(0, storage="floor"))
        rows.append(measure(backlog))
        rows.append(measure(backlog, writes=200 if backlog < 50_000 else 50, storage="naive-sqlite"))
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
