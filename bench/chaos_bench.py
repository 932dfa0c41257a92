"""Broker chaos: Mosquitto SIGKILLed and restarted again and again while people register.

The kiosk (``firmware_app.daemon.Kiosk``: station loop, store, uplink) registers N people
(ID cards posted as the reader shell posts them); meanwhile the broker (our config:
persistence saved on every change) is SIGKILLed after a random 0.3-1.5 s of uptime and
restarted after a random 0.05-0.5 s of downtime, until the registrations end. Then the
broker stays up until the kiosk's outbox is empty. Lost = people the volunteer saw
accepted whose record never reached the district collector (QoS 1, persistent session).
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time

from bench.common import KioskDriver, UniquePeople, broker_url, sample_ids, shown, start_broker
from tests.broker import Collector

USER = "bench/chaos/t01"


def measure(people: int = 10_000, seed: int = 9) -> dict:
    from firmware_app.model import CardRead

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        broker = start_broker(os.path.join(d, "broker"))
        collector = Collector(broker.port, f"swab/v1/{USER}/records", client_id=f"bench-chaos-{os.getpid()}")
        driver = KioskDriver(os.path.join(d, "table"), os.path.join(d, "data"),
                             broker=broker_url(USER, broker.port)).start()
        stop = threading.Event()
        kills = [0]

        def chaos() -> None:
            while not stop.wait(rng.uniform(0.3, 1.5)):
                broker.kill()
                kills[0] += 1
                stop.wait(rng.uniform(0.05, 0.5))
                broker.start()

        accepted: list[str] = []
        refused = 0
        try:
            driver.sign_in()
            crowd = UniquePeople(seed)
            monkey = threading.Thread(target=chaos, name="broker-chaos", daemon=True)
            monkey.start()
            t0 = time.monotonic()
            for _ in range(people):
                effects = driver.step(CardRead(crowd.next().id_card()))
                if shown(effects) == "ok":
                    accepted += sample_ids(effects)
                else:
                    refused += 1
            seconds = time.monotonic() - t0
            stop.set()
            monkey.join(30)
            if broker.proc is None or broker.proc.poll() is not None:
                broker.start()
            store = driver.kiosk.store
            deadline = time.monotonic() + 300
            while (store.stats()["backlog"] or store.stats()["backlog_events"]) and time.monotonic() < deadline:
                time.sleep(0.05)
            want = set(accepted)
            collector.wait_for(lambda c: want <= {r["record_id"] for r in c.records()}, 120)
            received = collector.records()
            got = {r["record_id"] for r in received}
            return {"people": people, "accepted": len(want), "refused": refused, "broker_kills": kills[0],
                    "lost": len(want - got), "duplicate_deliveries": len(received) - len(got),
                    "register_s": round(seconds, 1), "backlog_left": store.stats()["backlog"]}
        finally:
            stop.set()
            driver.stop()
            collector.close()
            broker.kill()


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000), indent=1))
