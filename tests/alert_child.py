"""A kiosk (firmware_app.daemon.Kiosk on mock devices) in a child process, for the alert test.

    python -m tests.alert_child WORKDIR BROKER_URL PEOPLE SEED

Signs in (unless a restored shift is still signed in), then registers PEOPLE people with a red
code by the camera path and the confirm card, printing ``OK <sample record_id> <unix time>``
after the step's effects said OK (the records are durable by then), then ``IDLE`` and waits
to be killed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from bench.common import KioskDriver, UniquePeople, shown


def main(workdir: str, broker: str, people: int, seed: int) -> None:
    from firmware_app.model import CodeScanned, Persist

    driver = KioskDriver(workdir, os.path.join(workdir, "data"), broker=broker, seed=seed).start()
    if not driver.kiosk.runtime.snapshot.get("operator"):
        driver.sign_in()
    print("READY", flush=True)
    crowd = UniquePeople(seed)
    for _ in range(people):
        person = dataclasses.replace(crowd.next(via="camera"), colour="red")
        level = shown(driver.step(CodeScanned(driver.table.code_for(person), "camera")))
        assert level == "confirm", level
        effects = driver.step(CodeScanned(driver.table.card_code("SWABCMD:confirm"), "scanner"))
        ok_at = time.time()
        assert shown(effects) == "ok", effects
        rid = next(e.record["record_id"] for e in effects if isinstance(e, Persist) and e.record["kind"] == "sample")
        print(f"OK {rid} {ok_at:.3f}", flush=True)
    print("IDLE", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
