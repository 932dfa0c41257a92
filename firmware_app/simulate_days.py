"""`swabkiosk simulate --days N --people-per-day M`: a month of a busy table in minutes.

Fills a data dir through the REAL station and store (``Runtime`` with its station, the
store's one transaction per step) on a simulated clock, one day after another, so a
technician can size an SD card and the bench can measure a month-old kiosk.

Each day, as a real site runs it:

* the volunteer signs in with a signed operator certificate (the demo authority keys of
  ``config/demo-*.pem``, so any station file with ``--allow-demo-keys`` keys reads them);
* M people arrive between 08:00 and 20:00 local time: ID cards mostly, signed personal
  codes some (scanner and camera), a few yellow codes (confirmed into single tubes), a few
  same-day duplicates (flagged, then confirmed), a few mistaken entries voided;
* tubes close when full and the next label "prints"; every ~20 closed tubes the packer
  counts the box, closes it and hands it to a courier; at the end of the queue the open
  tube closes, the last box is counted, closed and handed over, and the volunteer signs out.

What makes it fast: no device ptys, no printer, no screen, no uplink and no 3 s pacing:
events go straight into ``Runtime._step`` on this one thread (the loop thread's own
step: lookups -> store.facts -> station.handle -> one store.append). Codes are signed in
one batch per day (Ed25519 signing is ~50 us; ID cards carry no signature), people come
from ``hw_mocks.people``. ``--no-pacing`` also opens the store with ``durable=False``
(synchronous=OFF): the same rows and the same transactions, without a flush per step.
``--acked`` marks each day's records acknowledged (as if a broker had them all).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_app.catalogue import en
from firmware_app.model import CardRead, CodeScanned, Command, Persist, Show

log = logging.getLogger("swabkiosk.simulate")

ROOT = Path(__file__).resolve().parent.parent
DEMO_SAMPLING_PEM = ROOT / "config" / "demo-sampling.pem"
DEMO_OPERATOR_PEM = ROOT / "config" / "demo-operator.pem"
COURIER = "\u8f6c\u8fd0-\u5f20\u5e08\u5085"  # "transport - Master Zhang": the simulated courier
DAY_START_H, DAY_END_H = 8, 20  # the queue's hours, local time
BOX_EVERY = 20  # tubes per box handed to the courier (a real site's rhythm; the box holds 50)
# Of every 1,000 people: how they show up and what happens (the rest: ID card, green).
PER_MILLE = {"qr": 150, "yellow": 8, "duplicate": 5, "void": 3}
# The fill never pauses, so the store's PASSIVE checkpoints (run beside a writer that idles
# seconds between people) never catch up and the WAL would grow without bound (4.7 GB after 14
# days of 8,000). Between steps, every this many, the fill checkpoints it back to size.
CHECKPOINT_STEPS = 2000
SIM_DIR = "simulated"  # in the data dir: the station file and volunteer list the fill used


class FillError(RuntimeError):
    pass


def demo_authority() -> Any:
    """hw_mocks' Authority with the demo keys of config/ instead of throwaway ones."""
    from cryptography.hazmat.primitives import serialization

    from hw_mocks.people import Authority

    authority = Authority.__new__(Authority)
    authority.personal_key = _ed25519(serialization.load_pem_private_key(DEMO_SAMPLING_PEM.read_bytes(), None))
    authority.operator_key = _ed25519(serialization.load_pem_private_key(DEMO_OPERATOR_PEM.read_bytes(), None))
    return authority


def _ed25519(key: object) -> Ed25519PrivateKey:
    if not isinstance(key, Ed25519PrivateKey):
        raise FillError(en("simulate.bad_demo_key", kind=type(key).__name__))
    return key


def station_text(data_dir: str, workdir: Path, pool: str, authority: Any) -> str:
    """The simulated table's station file (the one `run --simulate` uses: device sim-t01,
    tubes SIM1-...), with no devices at all and the demo authority keys."""
    from hw_mocks.table import Table

    table = Table(workdir, devices=())
    table.authority = authority
    return table.station_file(data_dir, mode=pool)


def write_volunteers(workdir: Path) -> None:
    from hw_mocks.table import OPERATOR  # the simulated volunteer: one for the table and the fill

    doc = {"volunteers": [{"cert_id": OPERATOR[0], "name": OPERATOR[1], "expires": "2099-12-31"}]}
    (workdir / "volunteers.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def dir_bytes(path: str) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(base, name))
            except OSError:
                pass
    return total


def write_bytes() -> int | None:
    """This process's bytes sent to storage so far (/proc/self/io), None where there is none."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Day:
    """One day's arrivals: a list of (kind, person) in queue order."""

    def __init__(self, people: Any, count: int, rng: random.Random) -> None:
        self.arrivals: list[tuple[str, Any]] = []
        cards: list[Any] = []
        for _ in range(count):
            roll = rng.randrange(1000)
            if roll < PER_MILLE["yellow"]:
                self.arrivals.append(("yellow", people.person(colour="yellow", via="scanner")))
            elif roll < PER_MILLE["yellow"] + PER_MILLE["duplicate"] and cards:
                self.arrivals.append(("duplicate", rng.choice(cards)))
            elif roll < PER_MILLE["yellow"] + PER_MILLE["duplicate"] + PER_MILLE["qr"]:
                self.arrivals.append(("qr", people.person(via=rng.choice(("scanner", "camera")))))
            else:
                person = people.person(via="card")
                kind = "void" if rng.randrange(1000) < PER_MILLE["void"] else "card"
                if kind == "card":  # a voided person's next visit today is no duplicate
                    cards.append(person)
                self.arrivals.append((kind, person))


class Filler:
    def __init__(self, data_dir: str, *, pool: str = "10", durable: bool = True, acked: bool = False,
                 seed: int = 2022, archive_days: int = 30) -> None:
        from firmware_app import config, pushed, station
        from firmware_app.runtime import Runtime
        from firmware_app.store import Store

        self.data_dir = os.path.abspath(data_dir)
        self.workdir = Path(self.data_dir) / SIM_DIR
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.authority = demo_authority()
        text = station_text(self.data_dir, self.workdir, pool, self.authority)
        (self.workdir / "station.toml").write_text(text, encoding="utf-8")
        write_volunteers(self.workdir)
        self.cfg = config.parse_text(text, allow_demo_keys=True)  # simulation: the demo authority
        self.tz = dt.timezone(dt.timedelta(hours=self.cfg.station.utc_offset_hours))
        self.acked = acked
        self.rng = random.Random(seed)
        self.seed = seed
        self.t = 0.0  # the simulated clock (unix seconds)
        self.store = Store(self.data_dir, archive_days=archive_days, durable=durable)
        volunteers = pushed.load_volunteers(self.data_dir, self.cfg.volunteers.get("list_file", ""))
        self.runtime = Runtime(self.store, lambda: station.Station(self.cfg, volunteers), clock_fn=lambda: self.t)
        self.runtime._rebuild_station()  # what Runtime.start does before its loop thread (not started here)
        self.day_ids: list[str] = []
        self.counts = {"steps": 0, "records": 0, "people": 0, "registered": 0, "duplicates": 0, "voids": 0,
                       "singles": 0, "boxes": 0, "refused": 0}

    # ---------------------------------------------------------------- steps
    def step(self, event: Any, dt_s: float = 0.5) -> tuple[str, list]:
        """One event through the runtime's own step; the screen's level and the effects."""
        self.t += dt_s
        effects = self.runtime._step(event)
        self.counts["steps"] += 1
        if self.counts["steps"] % CHECKPOINT_STEPS == 0:
            self.checkpoint()
        records = [e.record for e in effects if isinstance(e, Persist)]
        self.counts["records"] += len(records)
        self.day_ids += [r["record_id"] for r in records]
        shows = [e for e in effects if isinstance(e, Show)]
        level = shows[-1].level if shows else ""
        if shows and isinstance(shows[-1].detail, dict) and shows[-1].detail.get("store_error"):
            raise FillError(en("simulate.step_refused", reason=shows[-1].message_en))
        if any(r["kind"] == "tube_close" for r in records):
            self._maybe_hand_over()
        return level, effects

    def checkpoint(self) -> None:
        """WAL back into the database and truncated, from a connection of our own, between steps
        (this thread is the only writer, so nothing waits on it)."""
        import sqlite3

        conn = sqlite3.connect(self.store.path, isolation_level=None, timeout=10)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()

    def command(self, name: str, **args: Any) -> str:
        level, _ = self.step(Command(name, args, source="scanner"))
        if level == "error":
            raise FillError(en("simulate.command_refused", name=name, reason=self.runtime.station.snapshot().get("message_en")))
        return level

    def _maybe_hand_over(self, at_least: int = BOX_EVERY) -> None:
        box = self.runtime.station.snapshot().get("box")
        if box and box["tubes"] >= at_least:
            self.hand_over(box)

    def hand_over(self, box: dict) -> None:
        """The packer counts the tubes on the table (they match), closes the box, the courier takes it."""
        self.command("box_count", count=str(box["tubes"]))
        self.command("close_box")
        self.command("handover_box", courier=COURIER)
        self.counts["boxes"] += 1

    def present(self, kind: str, person: Any, code: str | None) -> None:
        event = CardRead(person.id_card()) if code is None else CodeScanned(code, person.via)
        self.counts["people"] += 1
        level, _ = self.step(event, dt_s=0.0)
        if kind == "duplicate":
            if level != "confirm":
                raise FillError(en("simulate.duplicate_missed", level=level))
            self.command("confirm_duplicate")
            self.counts["duplicates"] += 1
        elif kind == "yellow":
            if level != "confirm":
                raise FillError(en("simulate.single_missed", level=level))
            self.command("confirm_single")
            self.counts["singles"] += 1
        elif level != "ok":
            self.counts["refused"] += 1
            raise FillError(en("simulate.not_registered", person=repr(person),
                               reason=self.runtime.station.snapshot().get("message_en")))
        self.counts["registered"] += 1
        if kind == "void":
            self.command("void_last", reason="mistaken_entry")
            self.counts["voids"] += 1

    # ----------------------------------------------------------------- days
    def day(self, date: dt.date, people_per_day: int) -> None:
        from hw_mocks.people import People

        start = dt.datetime.combine(date, dt.time(DAY_START_H), self.tz).timestamp()
        self.t = max(self.t, start - 300)
        people = People(self.rng.randrange(1 << 30), today=date)
        arrivals = Day(people, people_per_day, self.rng).arrivals
        # the day's personal codes, signed in one batch (issued an hour before the queue opens)
        codes = {id(p): self.authority.sampling_code(p, issued_at=start - 3600)
                 for kind, p in arrivals if kind in ("qr", "yellow")}
        from hw_mocks.table import OPERATOR

        cert = self.authority.operator_cert(*OPERATOR, issued_at=start - 86400)
        if self.runtime.station.snapshot().get("operator") is None:
            self.step(CodeScanned(cert, "scanner"))
        gap = (DAY_END_H - DAY_START_H) * 3600 / max(1, people_per_day)
        self.t = max(self.t, start)
        for kind, person in arrivals:
            self.t += gap
            self.present(kind, person, codes.get(id(person)))
        tube = self.runtime.station.snapshot().get("tube")
        if tube and tube["count"]:
            self.command("end_of_queue")
        box = self.runtime.station.snapshot().get("box")
        if box and box["tubes"]:
            self.hand_over(box)
        self.command("sign_out")
        if self.acked and self.day_ids:
            self.store.ack(self.day_ids)
        self.day_ids = []
        self.checkpoint()

    def close(self) -> None:
        self.store.close()


def fill(data_dir: str, days: int, people_per_day: int, *, pool: str = "10", pacing: bool = True,
         acked: bool = False, seed: int = 2022, last_day: dt.date | None = None,
         progress: Callable[[int, dt.date, float], None] | None = None) -> dict[str, Any]:
    """Fill data_dir with `days` days ending on last_day (default: yesterday); a summary."""
    t0 = time.monotonic()
    io0 = write_bytes()
    filler = Filler(data_dir, pool=pool, durable=pacing, acked=acked, seed=seed, archive_days=max(30, days + 1))
    try:
        first_seq = filler.store.last_seq()
        last_day = last_day or (dt.datetime.now(filler.tz).date() - dt.timedelta(days=1))
        dates = [last_day - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]
        for n, date in enumerate(dates, 1):
            filler.day(date, people_per_day)
            if progress is not None:
                progress(n, date, time.monotonic() - t0)
        stats = filler.store.stats()
        last_seq = filler.store.last_seq()
    finally:
        filler.close()
    elapsed = time.monotonic() - t0
    io1 = write_bytes()
    size = dir_bytes(filler.data_dir)
    written = io1 - io0 if io0 is not None and io1 is not None else None
    return {
        "days": days,
        "people_per_day": people_per_day,
        "first_day": dates[0].isoformat() if dates else None,
        "last_day": dates[-1].isoformat() if dates else None,
        **filler.counts,
        "seq_range": [first_seq + 1, last_seq],
        "acknowledged": bool(acked),
        "backlog": stats.get("backlog", 0) + stats.get("backlog_events", 0),
        "db_bytes": size,
        "mb_per_day": round(size / max(1, days) / 1e6, 2),
        "bytes_per_record": round(size / max(1, filler.counts["records"])),
        "written_bytes": written,
        "pacing": pacing,
        "seconds": round(elapsed, 1),
        "steps_per_s": round(filler.counts["steps"] / elapsed) if elapsed > 0 else None,
        "data_dir": filler.data_dir,
        "station_file": str(filler.workdir / "station.toml"),
    }


def human(s: dict[str, Any]) -> str:
    month = s["db_bytes"] / max(1, s["days"]) * 30  # the archive keeps 30 days (store.archive_days)
    state = en("simulate.month_acked") if s["acknowledged"] else en("simulate.month_backlog", backlog=s["backlog"])
    written = s.get("written_bytes") or 0
    return "\n".join([
        en("simulate.month_days", days=s["days"], first=s["first_day"], last=s["last_day"], per_day=s["people_per_day"]),
        en("simulate.month_people", registered=s["registered"], duplicates=s["duplicates"], singles=s["singles"],
           voids=s["voids"], boxes=s["boxes"]),
        en("simulate.month_records", records=s["records"], first=s["seq_range"][0], last=s["seq_range"][1], state=state),
        en("simulate.month_store", mb=f"{s['db_bytes'] / 1e6:.1f}", per_day=f"{s['mb_per_day']:.1f}",
           per_record=s["bytes_per_record"], month=f"{month / 1e6:.0f}"),
        *([en("simulate.month_written", mb=f"{written / 1e6:.0f}",
              per_person=f"{written / max(1, s['registered']) / 1e3:.1f}")] if written else []),
        en("simulate.month_time", seconds=f"{s['seconds']:.1f}", rate=s["steps_per_s"],
           how=en("simulate.month_no_pacing" if not s["pacing"] else "simulate.month_pacing")),
        en("simulate.month_data", path=s["data_dir"], station_file=s["station_file"]),
    ])


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--days", type=int, help="fill --data-dir with this many days, one after another "
                                             "(a simulated clock, ending yesterday), then stop")
    ap.add_argument("--people-per-day", type=int, default=8000, help="with --days: people a day (default 8000)")
    ap.add_argument("--no-pacing", action="store_true",
                    help="with --days: no flush per step (store opened durable=False): fill as fast as the CPU allows")
    ap.add_argument("--acked", action="store_true", help="with --days: mark every record acknowledged by a broker")
    ap.add_argument("--seed", type=int, default=2022, help="with --days: the same seed makes the same people")


def run(args: argparse.Namespace, ap: argparse.ArgumentParser) -> int:
    if args.days < 1 or args.people_per_day < 1:
        ap.error(en("simulate.days_min"))
    if not args.data_dir:
        ap.error(en("simulate.days_dir"))
    if args.pool == "household":
        ap.error(en("simulate.days_pool"))
    if args.broker or args.printer:
        ap.error(en("simulate.days_alone"))

    def progress(n: int, date: dt.date, elapsed: float) -> None:
        if not args.json:
            print(en("simulate.day_done", n=n, days=args.days, date=date, seconds=f"{elapsed:.0f}"), file=sys.stderr,
                  flush=True)

    try:
        summary = fill(args.data_dir, args.days, args.people_per_day, pool=args.pool, pacing=not args.no_pacing,
                       acked=args.acked, seed=args.seed, progress=progress)
    except FillError as exc:
        print(en("simulate.failed", problem=exc), file=sys.stderr)
        return 1
    print(json.dumps(summary, ensure_ascii=False) if args.json else human(summary))
    return 0 if summary["registered"] == args.days * args.people_per_day else 1

