"""A kiosk reduced to Store + Uplink, run as a child process and SIGKILLed by tests.

    python -m tests.uplink_child DATA_DIR PORT PER_RUN TOTAL

Appends up to PER_RUN new sample records (batches of 1-5, never beyond TOTAL),
printing "APPENDED <seq>" after each durable append, then keeps the uplink
running until the outbox is empty and prints "DONE".
"""

from __future__ import annotations

import random
import sys
import time

from firmware_app.store import Store
from firmware_app.uplink import Uplink, UplinkSettings
from tests.broker import PASSWORDS, STATION_A
from tests.store_fixtures import sample


def main(data_dir: str, port: int, per_run: int, total: int) -> None:
    store = Store(data_dir)
    district, site, table = STATION_A.split("/")
    settings = UplinkSettings(url=f"mqtt://127.0.0.1:{port}", device_id="kill-test-kiosk", district=district,
                              site=site, table=table, username=STATION_A, password=PASSWORDS[STATION_A],
                              backoff_min_s=0.05, backoff_max_s=0.5, window=16)
    uplink = Uplink(store, settings, on_command=lambda c: None)
    uplink.start()
    seq = store.last_seq()
    stop = min(total, seq + per_run)
    while seq < stop:
        n = min(random.randint(1, 5), stop - seq)
        store.append([sample(s, tube=f"T{(s - 1) // 10:04d}", person=s) for s in range(seq + 1, seq + n + 1)])
        seq += n
        uplink.wake()
        print(f"APPENDED {seq}", flush=True)
    deadline = time.monotonic() + 60
    while (store.stats()["backlog"] or store.stats()["backlog_events"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    print("DONE", flush=True)
    uplink.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
