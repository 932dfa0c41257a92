"""A month-old store, quickly: build it (durable=False), then time durable appends on it.

    python bench/store_month.py build DIR [--days 30] [--people 8000]
    python bench/store_month.py appends DIR [--n 500] [--on-path]   # --on-path: checkpoints in append's way
    python bench/store_month.py open DIR                            # RSS after opening + stats()

Prints one JSON line. Records are shaped like the station's (tests/store_fixtures.py).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from firmware_app import store as store_mod  # noqa: E402
from firmware_app.store import Store  # noqa: E402
from tests.store_fixtures import event, sample  # noqa: E402

DAY0 = 1793000000.0
GAP_S = float(os.environ.get("GAP_S", "0.002"))  # pause between appends (a table: one every few seconds)


def _tube(day: int, n: int) -> str:
    return f"DG{day:03d}{n:06d}"


def build(d: str, days: int, people: int) -> dict:
    t0 = time.monotonic()
    seq = 0
    with Store(d, durable=False) as s:
        for day in range(days):
            batch_ack = []
            for p in range(people):
                at = DAY0 + day * 86400 + p * 4
                tube = _tube(day, p // 10)
                if p % 10 == 0:
                    seq += 1
                    s.append([event(seq, "tube_open", tube=tube, at=at)])
                seq += 1
                rec = sample(seq, tube=tube, person=p, at=at, id_number=f"44190019{p % 90 + 10:02d}0101{p:04d}"[:18])
                s.append([rec], marks={"seq": seq, "numbers": {"DG": p // 10 + 1}})
                batch_ack.append(rec["record_id"])
                if p % 10 == 9:
                    seq += 1
                    s.append([event(seq, "tube_close", tube=tube, at=at, reason="full")])
                if len(batch_ack) >= 1000 and day < days - 1:
                    s.ack(batch_ack)
                    batch_ack = []
            if day < days - 1:
                s.ack(batch_ack)
        stats = s.stats()
    return {"records": seq, "build_s": round(time.monotonic() - t0, 1), "db_bytes": stats["bytes"],
            "backlog": stats["backlog"], "archived": stats["archived"]}


def io_written() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))


def appends(d: str, n: int, on_path: bool) -> dict:
    if on_path:  # what a plain WAL store does: SQLite's own checkpoint inside the committing append
        store_mod.CHECKPOINT_COMMITS = 1 << 60
        store_mod.CHECKPOINT_IDLE_S = 1e9
    s = Store(d)
    if on_path:
        s._conn.execute("PRAGMA wal_autocheckpoint=1000")
    seq = s.last_seq()
    times, w0 = [], io_written()
    for i in range(n):
        seq += 1
        rec = sample(seq, tube=f"BENCH{i // 10:06d}", person=i, at=time.time())
        t = time.perf_counter()
        s.append([rec], marks={"seq": seq, "numbers": {"BENCH": i // 10 + 1}})
        times.append(time.perf_counter() - t)
        time.sleep(GAP_S)
    written = io_written() - w0
    s.close()
    times_raw = list(times)
    times.sort()
    slow = [i for i, t in enumerate(times_raw) if t > 0.015]
    return {"slow_at": slow[:30], "n": n, "p50_ms": round(times[n // 2] * 1e3, 2), "p99_ms": round(times[int(n * 0.99)] * 1e3, 2),
            "max_ms": round(times[-1] * 1e3, 2), "bytes_written_per_append": written // n}


def open_rss(d: str) -> dict:
    t = time.perf_counter()
    with Store(d) as s:
        s.stats()
        s.facts(__import__("firmware_app.model", fromlist=["Lookups"]).Lookups(tubes=("DG029000001",)))
        opened = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return {"open_and_stats_s": round(opened, 3), "rss_mb": rss}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["build", "appends", "open"])
    p.add_argument("dir")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--people", type=int, default=8000)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--on-path", action="store_true")
    a = p.parse_args()
    out = build(a.dir, a.days, a.people) if a.what == "build" else appends(a.dir, a.n, a.on_path) \
        if a.what == "appends" else open_rss(a.dir)
    print(json.dumps(out))
