"""A table session on simulated hardware, through the real drivers, station, store and uplink.

* ``swabkiosk simulate --people N --pool 10 [--broker URL] [--json]``: headless, as fast
  as the machine allows; waits until the broker acknowledged every record; prints a
  summary (people, tubes, labels, records acknowledged, time).
* ``swabkiosk run --simulate`` (``run_watchable``): the same kiosk with people arriving
  at a human pace and a terminal view a newcomer can follow: sign-in, people
  registered (masked), tubes filling and closing, labels as text with their barcode,
  a yellow code sent to a single tube, a duplicate flagged and confirmed, and how many
  records wait for (or reached) the broker.

Nothing here stands between our own modules: ID cards go through the SAM codec over
pyserial on a pty, codes through the scanner pty or camera frames, labels as ESC/POS
bytes to a printer mock that parses them back.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any

from firmware_app import logsetup
from firmware_app.model import CardRead, CodeScanned, Command, DeviceError, Show

log = logging.getLogger("swabkiosk.simulate")

PERSON_TIMEOUT_S = 15.0  # a read that takes longer is a failure, not a slow machine
ACK_TIMEOUT_S = 120.0
LIVE_CAMERA = {"camera": {"loop": True}}  # replay the table's one frame file forever
VIA_CYCLE = ("card", "card", "scanner", "card", "scanner", "card", "card", "scanner", "card", "camera")


class SimulationError(RuntimeError):
    pass


class Tracker:
    """Observes the station loop: how many inputs were handled and what the screen said."""

    def __init__(self, runtime: Any) -> None:
        self._cond = threading.Condition()
        self.handled = 0
        self.last_shows: list[Show] = []
        self.errors: list[str] = []
        runtime.observers.append(self._observe)

    def _observe(self, event: Any, effects: list) -> None:
        if not isinstance(event, (CardRead, CodeScanned, Command, DeviceError)):
            return
        shows = [e for e in effects if isinstance(e, Show)]
        with self._cond:
            self.handled += 1
            self.last_shows = shows
            if isinstance(event, DeviceError):
                self.errors.append(event.reason)
            self._cond.notify_all()

    def wait_past(self, count: int, timeout: float = PERSON_TIMEOUT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.handled > count, timeout)

    def level(self) -> str:
        return self.last_shows[-1].level if self.last_shows else ""


def wait_devices(kiosk: Any, names: list[str], timeout: float = 20.0) -> None:
    def up(snap: dict) -> bool:
        devices = snap.get("devices", {})
        return all(devices.get(n, {}).get("ok") for n in names)

    if not kiosk.runtime.wait_for(up, timeout):
        down = {n: s.reason for n, s in kiosk.supervisors.items() if not s.ok}
        raise SimulationError(f"devices not up after {timeout:.0f} s: {down}")


def step(table: Any, tracker: Tracker, action, what: str) -> str:
    """Do one thing at the table and wait until the kiosk has handled it; the screen's level."""
    before = tracker.handled
    action()
    if not tracker.wait_past(before):
        raise SimulationError(f"the kiosk did not react to: {what}")
    return tracker.level()


def present(table: Any, tracker: Tracker, person: Any) -> str:
    level = step(table, tracker, lambda: table.present(person), repr(person))
    table.take_away(person)
    return level


# --------------------------------------------------------------------------
# swabkiosk simulate (headless)
# --------------------------------------------------------------------------


def crowd(table: Any, count: int, pool: str) -> list[list[Any]]:
    """People in arrival groups: households for "household", else one group."""
    via = iter(VIA_CYCLE * (count // len(VIA_CYCLE) + 1))
    if pool != "household":
        return [[table.people.person(via=next(via)) for _ in range(count)]]
    groups, left, sizes = [], count, (3, 2, 4, 1, 5, 3)
    while left > 0:
        size = min(left, sizes[len(groups) % len(sizes)])
        groups.append([dataclasses.replace(g, via=next(via)) for g in table.people.household(size)])
        left -= size
    return groups


def run_session(people: int, pool: str, *, broker: str = "", printer: str | None = None,
                data_dir: str | None = None, workdir: str | None = None) -> dict[str, Any]:
    from firmware_app import config
    from firmware_app.daemon import Kiosk
    from firmware_app.sdnotify import Notifier
    from hw_mocks.table import Table

    workdir = workdir or tempfile.mkdtemp(prefix="swabkiosk-sim-")
    data_dir = data_dir or os.path.join(workdir, "data")
    table = Table(workdir, printer_target=printer).start()
    kiosk = None
    try:
        cfg = config.parse_text(table.station_file(data_dir, broker=broker, mode=pool, poll_ms=50, camera_fps=20))
        kiosk = Kiosk(cfg, use_ui=False, notifier=Notifier({}), device_overrides=LIVE_CAMERA)
        kiosk.start()
        tracker = Tracker(kiosk.runtime)
        seq_before = kiosk.store.last_seq()
        wait_devices(kiosk, [d for d in table.devices if d != "printer" or table.printer is not None])
        t0 = time.monotonic()
        if not (kiosk.runtime.snapshot.get("operator")):
            step(table, tracker, table.sign_in, "operator sign-in")
        refused = 0
        for group in crowd(table, people, pool):
            for person in group:
                if present(table, tracker, person) == "error":
                    refused += 1
            if pool == "household":
                step(table, tracker, lambda: table.command("close_tube"), "close_tube")
        step(table, tracker, lambda: table.command("end_of_queue"), "end_of_queue")
        records = [r for r in kiosk.store.iter_records() if r.get("seq", 0) > seq_before]
        labels = wait_labels(table, kiosk, records)
        acked = wait_acks(kiosk) if broker else 0
        elapsed = time.monotonic() - t0
        return summarise(records, labels, acked, elapsed, people, refused, kiosk, broker, data_dir)
    finally:
        if kiosk is not None:
            kiosk.stop()
        table.stop()


def wait_labels(table: Any, kiosk: Any, records: list[dict]) -> list[Any]:
    """Labels that came out of the printer mock (parsed back), or those the shell sent out."""
    expected = sum(1 for r in records if r.get("kind") == "label")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and kiosk.runtime.labels_waiting():
        time.sleep(0.05)
    if table.printer is not None:
        return table.printer.wait_for(expected, timeout=max(0.1, deadline - time.monotonic()))
    return []


def wait_acks(kiosk: Any) -> int:
    deadline = time.monotonic() + ACK_TIMEOUT_S
    kiosk.uplink.wake()
    while time.monotonic() < deadline:
        stats = kiosk.store.stats()
        if stats.get("backlog", 0) == 0 and stats.get("backlog_events", 0) == 0:
            return stats.get("archived", 0)
        time.sleep(0.05)
    raise SimulationError(f"broker did not acknowledge every record in {ACK_TIMEOUT_S:.0f} s: "
                          f"{kiosk.store.stats()} / {kiosk.uplink.state()}")


def summarise(records: list[dict], labels: list, acked: int, elapsed: float, presented: int, refused: int,
              kiosk: Any, broker: str, data_dir: str) -> dict[str, Any]:
    voided = {r.get("voided_record_id") for r in records if r.get("kind") == "void"}
    samples = [r for r in records if r.get("kind") == "sample" and r["record_id"] not in voided]
    tubes: dict[str, int] = {}
    for r in samples:
        tubes[r["tube_id"]] = tubes.get(r["tube_id"], 0) + 1
    closed = {r["tube_id"] for r in records if r.get("kind") == "tube_close"}
    stats = kiosk.store.stats()
    return {
        "people": presented,
        "registered": len(samples),
        "refused": refused,
        "tubes": len(tubes),
        "tube_sizes": sorted(tubes.values(), reverse=True),
        "tubes_closed": len(closed & set(tubes)),
        "labels": len(labels) if labels else sum(1 for r in records if r.get("kind") == "label"),
        "label_barcodes": [lab.barcode for lab in labels],
        "records": len(records),
        "acknowledged": acked,
        "waiting": stats.get("backlog", 0) + stats.get("backlog_events", 0),
        "broker": public_url(broker) or None,
        "seconds": round(elapsed, 3),
        "people_per_s": round(presented / elapsed, 2) if elapsed > 0 else None,
        "data_dir": data_dir,
    }


def public_url(url: str) -> str:
    """The broker URL without its credentials, for output."""
    from urllib.parse import urlsplit

    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def human(summary: dict[str, Any]) -> str:
    sizes = summary["tube_sizes"]
    size_text = ", ".join(f"{sizes.count(n)}×{n}" for n in sorted(set(sizes), reverse=True))
    lines = [
        f"people      {summary['people']} presented, {summary['registered']} registered"
        + (f", {summary['refused']} refused" if summary["refused"] else ""),
        f"tubes       {summary['tubes']} ({size_text}), {summary['tubes_closed']} closed",
        f"labels      {summary['labels']} printed",
        f"records     {summary['records']} stored"
        + (f", {summary['acknowledged']} acknowledged by {summary['broker']}" if summary["broker"] else
           f", {summary['waiting']} waiting for a broker (offline)"),
        f"time        {summary['seconds']:.2f} s ({summary['people_per_s']} people/s)",
        f"data        {summary['data_dir']}",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="swabkiosk simulate",
                                 description="A whole table session, headless, on simulated devices.")
    ap.add_argument("--people", type=int, default=95)
    ap.add_argument("--pool", choices=("1", "10", "20", "household"), default="10")
    ap.add_argument("--broker", default="", help="publish to this broker, e.g. mqtt://127.0.0.1:1883")
    ap.add_argument("--printer", help="send labels to this printer (tcp://HOST:9100, serial:/dev/...) "
                                      "instead of the printer mock")
    ap.add_argument("--data-dir", help="keep the store here (default: a temporary directory)")
    ap.add_argument("--json", action="store_true", help="the summary as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="the daemon's log on stderr")
    args = ap.parse_args(argv)
    if args.people < 1:
        ap.error("--people must be at least 1")
    logsetup.setup(logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        summary = run_session(args.people, args.pool, broker=args.broker, printer=args.printer,
                              data_dir=os.path.abspath(args.data_dir) if args.data_dir else None)
    except SimulationError as exc:
        print(f"swabkiosk simulate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, ensure_ascii=False) if args.json else human(summary))
    ok = summary["registered"] == args.people and (not args.broker or summary["waiting"] == 0)
    return 0 if ok else 1
