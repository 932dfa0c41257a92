"""A station on a fixed config and volunteer list, driven through its public API."""

from __future__ import annotations

import datetime as dt
import json

from firmware_app import config
from firmware_app.idnumber import check_char
from firmware_app.model import CodeScanned, Command, Facts, Now, Persist, PrintLabel, Say, Show, sample_person_key
from firmware_app.station import Station
from firmware_app.volunteers import Volunteer
from tests.qr_fixtures import OPERATOR_PUB, SAMPLING_PUB, T0, operator_code

STATION_TOML = f"""
[station]
device_id = "gd-dg-0001-t03"
district = "dongguan"
site = "guancheng"
table = "t03"
site_name = "莞城体育馆 3号台"

[sampling]
mode = "{{mode}}"
tubes_source = "{{source}}"
tube_prefix = "DG03"
tube_pattern = "^(LAB[0-9]{{{{6}}}}|[0-9]{{{{18}}}})$"
box_capacity = {{box_capacity}}

[authority]
sampling_code_keys = ["{SAMPLING_PUB}"]
operator_keys = ["{OPERATOR_PUB}"]
max_code_age_hours = 720
"""

VOLUNTEERS = {
    "V1": Volunteer("V1", "李志愿", dt.date(2027, 6, 30)),
    "V2": Volunteer("V2", "王过期", dt.date(2026, 1, 31)),  # certification lapsed
    "V3": Volunteer("V3", "赵撤销", dt.date(2027, 6, 30), revoked=True),
}


def make_config(mode="10", source="print", box_capacity=50):
    return config.parse_text(STATION_TOML.format(mode=mode, source=source, box_capacity=box_capacity), allow_demo_keys=True)


def make_id(n: int, birth="19800101") -> str:
    first17 = f"440104{birth}{n % 1000:03d}"
    return first17 + check_char(first17)


def facts_for(lookups, stored: list[dict]) -> Facts:
    """What a store holding these records answers (firmware_app.store.Store.facts does the same
    with indexes; tests/test_store.py checks the two agree)."""
    by_id = {r["record_id"]: r for r in stored}
    voids = {r["voided_record_id"] for r in stored if r["kind"] == "void"}
    samples = [r for r in stored if r["kind"] == "sample"]
    people = {(key, day): tuple(r for r in samples if sample_person_key(r) == key and r["at"][:10] == day
                                and r["record_id"] not in voids) for key, day in lookups.people}

    def in_tube(tube_id: str, depth: int = 0) -> tuple:
        if depth > 50 or any(r["kind"] == "tube_replace" and r["old_tube_id"] == tube_id for r in stored):
            return ()
        mine = tuple(r for r in samples if r["tube_id"] == tube_id)
        for r in stored:
            if r["kind"] == "tube_replace" and r["tube_id"] == tube_id:
                mine = in_tube(r["old_tube_id"], depth + 1) + mine
        return tuple(sorted(mine, key=lambda r: r["seq"]))

    tubes = {t: in_tube(t) for t in lookups.tubes}
    used = frozenset(t for t in lookups.tubes if any(
        r["kind"] in ("sample", "tube_replace") and r["tube_id"] == t or r["kind"] == "tube_replace" and r["old_tube_id"] == t
        for r in stored))
    records = {rid: by_id.get(rid) for rid in lookups.records}
    answered = {r["record_id"] for rs in [*people.values(), *tubes.values()] for r in rs} | set(records)
    return Facts(people=people, records=records, tubes=tubes, tubes_used=used, voided=frozenset(answered & voids))


def handle(station: Station, event, now: Now, stored: list[dict]) -> list:
    """station.handle as the runtime does it: the facts its lookups ask for, from the stored records."""
    return station.handle(event, now, facts_for(station.lookups(event, now), stored))


class Table:
    """A station plus a clock and the records it asked to persist (the 'store')."""

    def __init__(self, mode="10", source="print", box_capacity=50, start=T0):
        self.cfg = make_config(mode, source, box_capacity)
        self.station = Station(self.cfg, VOLUNTEERS)
        self.now = Now(start, True)
        self.synced = True  # set False to act as a Pi whose clock NTP has not set yet
        self.records: list[dict] = []
        self.rows: dict = {}  # the state rows as the store keeps them
        self.effects: list = []

    def tick(self, seconds: float = 20) -> None:
        self.now = Now(self.now.at + seconds, self.synced)

    def do(self, event) -> list:
        self.tick()
        self.effects = handle(self.station, event, self.now, self.records)
        self.records += [e.record for e in self.effects if isinstance(e, Persist)]
        for key, row in self.station.changes().items():  # written with the records
            if row is None:
                self.rows.pop(key, None)
            else:
                self.rows[key] = json.loads(json.dumps(row))
        return self.effects

    def scan(self, text: str, source="scanner") -> list:
        return self.do(CodeScanned(text, source))

    def cmd(self, command: str, /, **args) -> list:
        return self.do(Command(command, args))

    def sign_in(self, cert_id="V1", name="李志愿") -> list:
        return self.scan(operator_code(cert_id=cert_id, name=name))

    def restart(self) -> None:
        self.station = Station(self.cfg, VOLUNTEERS)
        self.station.restore(json.loads(json.dumps(self.rows)))

    # what the volunteer sees and hears
    @property
    def show(self) -> Show:
        return [e for e in self.effects if isinstance(e, Show)][-1]

    @property
    def said(self) -> list[str]:
        return [e.text for e in self.effects if isinstance(e, Say)]

    @property
    def prints(self) -> list[PrintLabel]:
        return [e for e in self.effects if isinstance(e, PrintLabel)]

    @property
    def new_records(self) -> list[dict]:
        return [e.record for e in self.effects if isinstance(e, Persist)]

    def kinds(self) -> list[str]:
        return [r["kind"] for r in self.new_records]

    def samples(self) -> list[dict]:
        return [r for r in self.records if r["kind"] == "sample"]
