"""A table session on simulated hardware, through the real drivers, station, store and uplink.

* ``swabkiosk simulate --people N --pool 10 [--broker URL] [--json]``: headless, as fast
  as the machine allows; waits until the broker acknowledged every record; prints a
  summary (people, tubes, labels, records acknowledged, time).
* ``swabkiosk simulate --days N --people-per-day M --data-dir D [--no-pacing] [--acked]``:
  fills D day after day on a simulated clock (firmware_app/simulate_days.py).
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
from urllib.parse import urlsplit

from firmware_app import config, logsetup, simulate_days
from firmware_app.catalogue import en
from firmware_app.compose import Kiosk, serve
from firmware_app.model import CardRead, CodeScanned, Command, DeviceError, DeviceStatus, Show
from firmware_app.sdnotify import Notifier

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
        runtime.observers.append(self._observe)

    def _observe(self, event: Any, effects: list) -> None:
        if not isinstance(event, (CardRead, CodeScanned, Command, DeviceError)):
            return
        shows = [e for e in effects if isinstance(e, Show)]
        with self._cond:
            self.handled += 1
            self.last_shows = shows
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
        raise SimulationError(en("simulate.devices_down", seconds=f"{timeout:.0f}", down=down))


def step(table: Any, tracker: Tracker, action, what: str) -> str:
    """Do one thing at the table and wait until the kiosk has handled it; the screen's level."""
    before = tracker.handled
    action()
    if not tracker.wait_past(before):
        raise SimulationError(en("simulate.no_reaction", what=what))
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
    groups: list[list[Any]] = []
    left, sizes = count, (3, 2, 4, 1, 5, 3)
    while left > 0:
        size = min(left, sizes[len(groups) % len(sizes)])
        groups.append([dataclasses.replace(g, via=next(via)) for g in table.people.household(size)])
        left -= size
    return groups


def run_session(people: int, pool: str, *, broker: str = "", printer: str | None = None,
                data_dir: str | None = None) -> dict[str, Any]:
    from hw_mocks.table import Table

    workdir = tempfile.mkdtemp(prefix="swabkiosk-sim-")  # the store stays here unless --data-dir
    data_dir = data_dir or os.path.join(workdir, "data")
    # Fresh people each run: a store kept with --data-dir must not see the same people again.
    table = Table(workdir, printer_target=printer, seed=int.from_bytes(os.urandom(4), "big")).start()
    kiosk = None
    try:
        cfg = config.parse_text(table.station_file(data_dir, broker=broker, mode=pool, poll_ms=50, camera_fps=20))
        # The printer mock has printed a label when it answers the status query after it; a
        # real printer (--printer) gets the shell's time to feed the label out.
        overrides: dict[str, dict] = {**LIVE_CAMERA, **({"printer": {"settle_s": 0.0}} if table.printer is not None else {})}
        kiosk = Kiosk(cfg, use_ui=False, notifier=Notifier({}), device_overrides=overrides)
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
    raise SimulationError(en("simulate.no_acks", seconds=f"{ACK_TIMEOUT_S:.0f}", stats=kiosk.store.stats(),
                             uplink=kiosk.uplink.state()))


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
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def human(summary: dict[str, Any]) -> str:
    sizes = summary["tube_sizes"]
    size_text = ", ".join(f"{sizes.count(n)}×{n}" for n in sorted(set(sizes), reverse=True))
    lines = [
        en("simulate.sum_people", people=summary["people"], registered=summary["registered"])
        + (en("simulate.sum_refused", refused=summary["refused"]) if summary["refused"] else ""),
        en("simulate.sum_tubes", tubes=summary["tubes"], sizes=size_text, closed=summary["tubes_closed"]),
        en("simulate.sum_labels", labels=summary["labels"]),
        en("simulate.sum_records", records=summary["records"])
        + (en("simulate.sum_acked", acked=summary["acknowledged"], broker=summary["broker"]) if summary["broker"] else
           en("simulate.sum_offline", waiting=summary["waiting"])),
        en("simulate.sum_time", seconds=f"{summary['seconds']:.2f}", rate=summary["people_per_s"]),
        en("simulate.sum_data", path=summary["data_dir"]),
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
    simulate_days.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.days is not None:  # a month in minutes: the real station and store on a simulated clock
        logsetup.setup(logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
        return simulate_days.run(args, ap)
    if args.people < 1:
        ap.error(en("simulate.people_min"))
    logsetup.setup(logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        summary = run_session(args.people, args.pool, broker=args.broker, printer=args.printer,
                              data_dir=os.path.abspath(args.data_dir) if args.data_dir else None)
    except SimulationError as exc:
        print(en("simulate.failed", problem=exc), file=sys.stderr)
        return 1
    print(json.dumps(summary, ensure_ascii=False) if args.json else human(summary))
    ok = summary["registered"] == args.people and (not args.broker or summary["waiting"] == 0)
    return 0 if ok else 1


# --------------------------------------------------------------------------
# swabkiosk run --simulate (watchable)
# --------------------------------------------------------------------------

LEVEL_MARK = {"ok": ("✔", "32"), "confirm": ("?", "33"), "error": ("✖", "31"), "info": ("·", "36")}


class Console:
    """What a newcomer watches: each action at the table, the kiosk's answer, labels."""

    def __init__(self, stream=None) -> None:
        self.out = stream or sys.stdout
        self.colour = hasattr(self.out, "isatty") and self.out.isatty() and not os.environ.get("NO_COLOR")
        self._lock = threading.Lock()

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def line(self, text: str = "", mark: str = " ", code: str = "0") -> None:
        with self._lock:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp}  {self.paint(mark, code)} {text}", file=self.out, flush=True)

    def action(self, text: str) -> None:
        self.line(self.paint(text, "2"), "▶", "2")

    def observe(self, event: Any, effects: list) -> None:
        """Runtime observer: the screen's messages, and the tube filling."""
        for show in (e for e in effects if isinstance(e, Show)):
            if isinstance(event, DeviceStatus) and show.level == "info":
                continue  # "device ready" lines are noise in the demo
            mark, code = LEVEL_MARK.get(show.level, ("·", "0"))
            self.line(f"{show.message}\n{' ' * 12}{self.paint(show.message_en, '2')}", mark, code)

    def tube(self, snap: dict) -> None:
        tube = snap.get("tube")
        if not tube:
            return
        filled = "■" * tube["count"] + "□" * (tube["capacity"] - tube["count"])
        self.line(self.paint(en("simulate.tube_line", tube=tube["id"], bar=filled, count=tube["count"],
                                capacity=tube["capacity"]), "2"))

    def label(self, label: Any) -> None:
        """A label as the printer mock parsed it back: text lines and the barcode it printed."""
        with self._lock:
            bar = self.paint("│", "35")
            print(f"{time.strftime('%H:%M:%S')}  {self.paint('⎙', '35')} {en('simulate.label_printed')}", file=self.out)
            for text in label.lines:
                print(f"{' ' * 12}{bar} {text}", file=self.out)
            for _symbology, data in label.barcodes:
                for row in ascii_barcode(data):
                    print(f"{' ' * 12}{bar} {row}", file=self.out)
                print(f"{' ' * 12}{bar} {data}", file=self.out)
            self.out.flush()


def ascii_barcode(data: str, height: int = 2) -> list[str]:
    """Code 128 bars of ``data`` drawn with half blocks (two modules per character)."""
    import numpy as np
    import zxingcpp

    barcode = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.Code128)
    image = np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=1, add_quiet_zones=False))
    row = list(image[image.shape[0] // 2] < 128) + [False]
    chars = {(True, True): "█", (True, False): "▌", (False, True): "▐", (False, False): " "}
    line = "".join(chars[(bool(a), bool(b))] for a, b in zip(row[0::2], row[1::2]))
    return [line] * height


def watch_labels(printer: Any, console: Console, stop: threading.Event) -> None:
    seen = len(printer.labels)
    while not stop.is_set():
        labels = printer.wait_for(seen + 1, timeout=0.5)
        for label in labels[seen:]:
            console.label(label)
        seen = max(seen, len(labels))


def scenario(table: Any, index: int, earlier: list) -> tuple[Any, str | None]:
    """Who comes next, and the command card the volunteer scans after the kiosk asks.

    Mostly green people by card, scanner or camera; every 25 people one with a yellow
    code (forced into a single tube) and one who was already sampled today (flagged;
    the volunteer confirms after checking)."""
    turn = index % 25  # both come early, so a newcomer sees them within the first half minute
    if turn == 3:
        return table.people.person(colour="yellow", via="camera"), "confirm_single"
    if turn == 7 and len(earlier) >= 5:
        return earlier[-5], "confirm_duplicate"
    return table.people.person(via=VIA_CYCLE[index % len(VIA_CYCLE)]), None


def describe_person(person: Any) -> str:
    how = en(f"simulate.via_{person.via}")  # card | scanner | camera
    colour = en("simulate.code_colour", colour=person.colour) if person.via != "card" else ""
    return f"{person.masked} {how}{colour}"


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc), to report start-up honestly."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def run_watchable(args: argparse.Namespace) -> int:
    """`swabkiosk run --simulate`: the daemon on simulated devices, people at a human pace."""
    from hw_mocks.table import Table

    if not args.verbose:  # the console view tells the story; warnings and errors still show
        logging.getLogger().setLevel(logging.WARNING)
    console = Console()
    data_dir = os.path.abspath(args.data_dir or os.path.join("var", "sim"))
    workdir = tempfile.mkdtemp(prefix="swabkiosk-sim-")
    table = Table(workdir, seed=int(time.time())).start()
    ui_port = args.ui_port or 8080
    # A real reader's poll rate (~300 ms): the demo idles like a kiosk at a table would.
    cfg = config.parse_text(table.station_file(data_dir, broker=args.broker, ui_port=ui_port, poll_ms=300))
    kiosk = Kiosk(cfg, data_dir=data_dir, ui_port=ui_port, device_overrides=LIVE_CAMERA, any_ui_port=True)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(kiosk, table, console, args, stop), name="simulated-people",
                              daemon=True)

    def started(k: Any) -> None:
        age = process_age()
        since = (en("simulate.ready_after_start", seconds=f"{age:.2f}") if age is not None
                 else en("simulate.ready_in", seconds=f"{k.ready_s:.2f}"))
        console.line(en("simulate.ready", since=since, path=data_dir))
        console.line(en("simulate.broker", broker=public_url(args.broker) or en("simulate.no_broker")))
        if k.ui is not None:
            console.line(en("simulate.screen", url=k.ui.url))
        console.line(en("simulate.ctrl_c"))
        k.runtime.observers.append(console.observe)
        if table.printer is not None:
            threading.Thread(target=watch_labels, args=(table.printer, console, stop), daemon=True).start()
        feeder.start()

    try:
        code = serve(kiosk, stop, started)
        stats = kiosk.final_stats
        if stats:
            console.line(en("simulate.stopped", waiting=stats.get("backlog", 0) + stats.get("backlog_events", 0),
                            acked=stats.get("archived", 0), path=data_dir))
        return code
    finally:
        stop.set()
        if feeder.is_alive():
            feeder.join(timeout=5)
        table.stop()


def feed(kiosk: Any, table: Any, console: Console, args: argparse.Namespace, stop: threading.Event) -> None:
    tracker = Tracker(kiosk.runtime)
    try:
        wait_devices(kiosk, [n for n in ("idcard", "scanner", "camera") if n in table.devices])
    except SimulationError as exc:
        console.line(str(exc), "✖", "31")
        return
    try:
        if not kiosk.runtime.snapshot.get("operator"):
            from hw_mocks.table import OPERATOR

            console.action(en("simulate.sign_in", name=OPERATOR[1]))
            step(table, tracker, table.sign_in, "sign-in")
        else:
            console.line(en("simulate.still_signed_in"))
            console.tube(kiosk.runtime.snapshot)
        earlier: list = []
        index = 0
        while not stop.is_set() and (not args.people or index < args.people):
            if stop.wait(args.pace):
                return
            person, confirm = scenario(table, index, earlier)
            again = en("simulate.again") if confirm == "confirm_duplicate" else ""
            console.action(describe_person(person) + again)
            level = step(table, tracker, lambda: table.present(person), repr(person))
            if level == "confirm" and confirm:
                if stop.wait(min(args.pace, 1.5)):
                    return
                console.action(en("simulate.confirm_card", card=confirm))
                step(table, tracker, lambda: table.command(confirm), confirm)
            table.take_away(person)
            console.tube(kiosk.runtime.snapshot)
            earlier = [*earlier[-9:], person]  # enough to pick a returning person from
            index += 1
            if index % 10 == 0:
                report_backlog(kiosk, console, args.broker)
        if args.people:
            console.action(en("simulate.end_of_queue"))
            step(table, tracker, lambda: table.command("end_of_queue"), "end_of_queue")
            report_backlog(kiosk, console, args.broker)
    except SimulationError as exc:
        console.line(str(exc), "✖", "31")


def report_backlog(kiosk: Any, console: Console, broker: str) -> None:
    stats = kiosk.store.stats()
    waiting = stats.get("backlog", 0) + stats.get("backlog_events", 0)
    if broker:
        state = kiosk.uplink.state()
        link = (en("simulate.broker_connected") if state.get("connected")
                else en("simulate.broker_not_connected", error=state.get("error_en") or "…"))
        console.line(en("simulate.broker_line", link=link, acked=stats.get("archived", 0), waiting=waiting), "⇅", "34")
    else:
        console.line(en("simulate.offline_line", waiting=waiting), "⇅", "34")
