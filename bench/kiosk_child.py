"""A kiosk in a child process, for the kill test and the memory measurement.

    python -m bench.kiosk_child ours  WORKDIR PORT DEVICE_ID SEED   register until killed
    python -m bench.kiosk_child drain WORKDIR PORT DEVICE_ID        restart; exit when all is acked
    python -m bench.kiosk_child naive WORKDIR PORT DEVICE_ID SEED [offline]  the naive stack, until killed
    python -m bench.kiosk_child rss   WORKDIR TOTAL WARMUP          offline; VmRSS as JSON
    python -m bench.kiosk_child month WORKDIR DATA_DIR PEOPLE       on a filled store: RSS at READY and
                                                                    after PEOPLE more, write p99, flushes, bytes

"ours" is firmware_app.daemon.Kiosk (station loop, store, uplink) with ID cards posted as
the reader shell posts them. It prints ``READY`` once signed in, then ``OK <record_id>``
for each person only after the step's effects said OK (the record is durable by then):
what the volunteer saw accepted.

"naive" is the obvious build: the same station, paho's in-memory queue (publish QoS 1
straight from memory) and SQLite as it comes (bench/naive_store.py) written after the publish, the
station's facts found by reading every stored record; it prints ``OK`` after both calls
returned.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from bench.common import KioskDriver, UniquePeople, broker_url, sample_ids, shown, station_text

USER = "bench/kill/t01"
MAX_PEOPLE = 100_000


def ours(workdir: str, port: int, device_id: str, seed: int) -> None:
    from firmware_app.model import CardRead

    driver = KioskDriver(workdir, os.path.join(workdir, "data"), broker=broker_url(USER, port),
                         device_id=device_id).start()
    driver.sign_in()
    print("READY", flush=True)
    crowd = UniquePeople(seed)
    for _ in range(MAX_PEOPLE):
        effects = driver.step(CardRead(crowd.next().id_card()))
        if shown(effects) == "ok":
            for rid in sample_ids(effects):
                print(f"OK {rid}", flush=True)


def drain(workdir: str, port: int, device_id: str, timeout: float = 120.0) -> None:
    driver = KioskDriver(workdir, os.path.join(workdir, "data"), broker=broker_url(USER, port),
                         device_id=device_id).start()
    store = driver.kiosk.store
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = store.stats()
        if stats["backlog"] == 0 and stats["backlog_events"] == 0:
            print("DONE", flush=True)
            break
        time.sleep(0.02)
    driver.stop()


def naive(workdir: str, port: int, device_id: str, seed: int, offline: bool = False) -> None:
    import paho.mqtt.client as mqtt
    from firmware_app import config, volunteers
    from firmware_app.model import NO_FACTS, RECORD_KINDS, CardRead, CodeScanned, Now, Persist
    from firmware_app.station import Station
    from hw_mocks.table import OPERATOR as VOLUNTEER
    from hw_mocks.table import Table

    from bench.common import STATION_PASSWORD

    table = Table(workdir, devices=()).start()
    cfg = config.parse_text(station_text(table, os.path.join(workdir, "data"), broker=broker_url(USER, port),
                                         device_id=device_id))
    station = Station(cfg, volunteers.load(cfg.volunteers["list_file"]))
    from bench.naive_store import NaiveStore

    records = NaiveStore(os.path.join(workdir, "naive.db"))  # SQLite as it comes
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id, clean_session=True)
    client.username_pw_set(USER, STATION_PASSWORD)
    connected = threading.Event()
    client.on_connect = lambda c, u, flags, reason, props: connected.set()
    client.connect_async("127.0.0.1", port)
    client.loop_start()
    # fair start: registrations begin on a live connection, as ours (unless the broker is away)
    if not offline and not connected.wait(30):
        raise SystemExit("naive stack could not connect")
    root = "swab/v1/{district}/{site}/{table}/".format(**cfg.station)

    def handle(event):
        now = Now(time.time(), True)
        lookups = station.lookups(event, now)  # a same-day duplicate check, a void: read the whole db
        effects = station.handle(event, now, records.facts(lookups) if lookups else NO_FACTS)
        persisted = [e.record for e in effects if isinstance(e, Persist)]
        for record in persisted:
            client.publish(root + RECORD_KINDS[record["kind"]], json.dumps(record, ensure_ascii=False), qos=1)
        for record in persisted:
            records.insert(record)
        return effects

    handle(CodeScanned(table.authority.operator_cert(*VOLUNTEER, issued_at=time.time() - 60), "scanner"))
    print("READY", flush=True)
    crowd = UniquePeople(seed)
    for _ in range(MAX_PEOPLE):
        effects = handle(CardRead(crowd.next().id_card()))
        if shown(effects) == "ok":
            for rid in sample_ids(effects):
                print(f"OK {rid}", flush=True)


def vm_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class CountedPeople:
    """Distinct synthetic people numbered by a counter (region, birth date, sequence digits).

    ``UniquePeople`` remembers every ID number it handed out (twice: its own set and
    hw_mocks.people's), ~350 B per person in this process: the memory figure would
    count the harness's bookkeeping as the kiosk's. This keeps nothing per person."""

    def __init__(self, seed: int) -> None:
        import datetime as dt
        import random

        self.rng = random.Random(seed)
        self.today = dt.date.today()
        self.n = 0

    def next(self):
        import datetime as dt

        from firmware_app.idnumber import check_char
        from hw_mocks.people import GIVEN, REGIONS, STREETS, SURNAMES, Person

        regions = sorted(REGIONS)
        k, self.n = self.n, self.n + 1
        region = regions[k % len(regions)]
        seq = (k // len(regions)) % 1000  # the sequence digits: odd for men, even for women
        birth = self.today - dt.timedelta(days=20 * 365 + k // len(regions) // 1000)
        first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
        rng = self.rng
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        address = f"{REGIONS[region]}{rng.choice(STREETS)}{rng.randrange(1, 300)}号"
        phone = "1" + rng.choice("3589") + "".join(rng.choice("0123456789") for _ in range(9))
        return Person(name, "1" if seq % 2 else "2", f"{birth:%Y%m%d}", first17 + check_char(first17), address, phone)


def rss(workdir: str, total: int, warmup: int) -> None:
    """Offline kiosk (the broker URL points at a closed port): records pile up in the store."""
    import gc
    import socket

    from firmware_app.model import CardRead

    with socket.socket() as s:  # a port nobody listens on: the uplink retries, records wait
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = KioskDriver(workdir, os.path.join(workdir, "data"), broker=broker_url(USER, port)).start()
    driver.sign_in()
    crowd = CountedPeople(7)
    ok = 0
    t0 = time.monotonic()
    steady = None
    for i in range(warmup + total):
        if i == warmup:
            gc.collect()
            steady = vm_rss_mb()
            t0 = time.monotonic()
        ok += shown(driver.step(CardRead(crowd.next().id_card()))) == "ok"
    gc.collect()
    end = vm_rss_mb()
    seconds = time.monotonic() - t0
    stats = driver.kiosk.store.stats()
    print(json.dumps({"warmup": warmup, "registrations": total, "ok": ok, "rss_mb_steady": round(steady, 1),
                      "rss_mb_end": round(end, 1), "growth_mb": round(end - steady, 1),
                      "seconds": round(seconds, 1), "backlog": stats["backlog"],
                      **state_rows(driver.kiosk.runtime.station),
                      "uplink_connected": bool(driver.kiosk.uplink.state().get("connected"))}), flush=True)
    driver.stop()


def state_rows(station) -> dict:
    """What the station holds in memory instead of history: its state rows (the shift, open
    tubes and boxes, counters), as many and as big as they are stored."""
    rows = station.state.rows()
    return {"station_state_rows": len(rows),
            "station_state_bytes": len(json.dumps(rows, ensure_ascii=False, default=str).encode())}


def write_bytes() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def flush_counter():
    """fsync + fdatasync so far, from bench/flushcount.c when it is preloaded, else None."""
    import ctypes

    try:
        fn = ctypes.CDLL(None).swab_flushes
    except AttributeError:
        return None
    fn.restype = ctypes.c_long
    return fn


def month(workdir: str, data_dir: str, people: int) -> None:
    """The daemon assembly (offline) on a filled store: RSS at READY, then ``people`` more
    registered as a site does (boxes counted, closed and handed over every 20 tubes), with
    every durable write (store.append on the station loop) timed, flushes counted and the
    bytes this process sent to storage."""
    import gc

    from bench.common import percentile
    from firmware_app.model import CardRead, Command

    t0 = time.perf_counter()
    driver = KioskDriver(workdir, data_dir).start()
    ready_s = time.perf_counter() - t0
    gc.collect()
    rss_ready = vm_rss_mb()
    rows_ready = state_rows(driver.kiosk.runtime.station)
    store = driver.kiosk.store
    appends: list[float] = []
    per_append: dict[int, int] = {}  # flushes on the loop thread during one append -> how many appends
    append = store.append
    flushes = flush_counter()

    def timed(*args, **kwargs):
        t, f = time.perf_counter(), flushes() if flushes else 0
        try:
            return append(*args, **kwargs)
        finally:
            appends.append((time.perf_counter() - t) * 1000)
            if flushes:  # (a checkpoint on the store's own thread at the same moment counts too)
                n = flushes() - f
                per_append[n] = per_append.get(n, 0) + 1

    store.append = timed
    driver.sign_in()
    crowd = CountedPeople(11)
    f0, w0, ok = flushes() if flushes else None, write_bytes(), 0
    per_append.clear()
    t1 = time.monotonic()
    people_appends: list[float] = []
    steps: list[float] = []
    for _ in range(people):
        before, card = len(appends), CardRead(crowd.next().id_card())
        t = time.perf_counter()
        ok += shown(driver.step(card)) == "ok"
        steps.append((time.perf_counter() - t) * 1000)  # posted -> effects seen: the loop's whole step
        people_appends += appends[before:]
        box = driver.kiosk.runtime.snapshot.get("box")
        if box and box["tubes"] >= 20:
            for command in (Command("box_count", {"count": str(box["tubes"])}), Command("close_box"),
                            Command("handover_box", {"courier": "转运-张师傅"})):
                if shown(driver.step(command)) == "error":
                    raise RuntimeError(f"{command.name} refused")
    seconds = time.monotonic() - t1
    f1, w1 = flushes() if flushes else None, write_bytes()
    gc.collect()
    rss_end = vm_rss_mb()
    stats = store.stats()
    print(json.dumps({
        "people": people, "ok": ok, "ready_s": round(ready_s, 3), "seconds": round(seconds, 1),
        "rss_mb_ready": round(rss_ready, 1), "rss_mb_end": round(rss_end, 1),
        "state_at_ready": rows_ready, "state_at_end": state_rows(driver.kiosk.runtime.station),
        "append_p50_ms": round(percentile(people_appends, 50), 3),
        "append_p99_ms": round(percentile(people_appends, 99), 3),
        "append_max_ms": round(max(people_appends), 3),
        "step_p50_ms": round(percentile(steps, 50), 3), "step_p99_ms": round(percentile(steps, 99), 3),
        "flushes_per_registration": round((f1 - f0) / people, 3) if flushes else None,
        "flushes_per_append": {str(k): v for k, v in sorted(per_append.items())},
        "write_bytes_per_registration": round((w1 - w0) / people),
        "last_seq": stats["last_seq"], "db_bytes": stats["bytes"],
    }), flush=True)
    driver.stop()


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "ours":
        ours(args[0], int(args[1]), args[2], int(args[3]))
    elif mode == "drain":
        drain(args[0], int(args[1]), args[2])
    elif mode == "naive":
        naive(args[0], int(args[1]), args[2], int(args[3]), offline=args[4:] == ["offline"])
    elif mode == "rss":
        rss(args[0], int(args[1]), int(args[2]))
    elif mode == "month":
        month(args[0], args[1], int(args[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")
