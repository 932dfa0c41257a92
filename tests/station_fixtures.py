"""A station on a fixed config and volunteer list, driven through its public API."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import weakref

from firmware_app import config
from firmware_app.station import state as table_state
from firmware_app.idnumber import check_char
from firmware_app.model import NO_FACTS, CodeScanned, Command, Now, Persist, PrintLabel, Say, Show
from firmware_app.store import Store
from firmware_app.station import Station
from firmware_app.volunteers import Volunteer
from firmware_app import commands
from tests.qr_fixtures import OPERATOR_KEY, OPERATOR_PUB, SAMPLING_PUB, T0, operator_code

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


class Shelf:
    """The real store (firmware_app.store.Store, SQLite) in a temporary directory, holding what
    the runtime would write: each step's records and the state rows it changed, in one append."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="station-")
        self.store = Store(self.dir, durable=False)
        weakref.finalize(self, _drop, self.store, self.dir)

    def keep(self, station: Station, effects: list) -> list[dict]:
        records = [e.record for e in effects if isinstance(e, Persist)]
        changes = station.changes()
        if records:
            self.store.append(records, meta=changes, marks=station.marks())
        return records

    def rows(self) -> dict:
        return self.store.meta_items(table_state.PREFIX)


def _drop(store, directory) -> None:
    store.close()
    shutil.rmtree(directory, ignore_errors=True)


def handle(station: Station, event, now: Now, shelf: Shelf) -> list:
    """station.handle as the runtime does it: the facts its lookups ask for, from the store."""
    lookups = station.lookups(event, now)
    return station.handle(event, now, shelf.store.facts(lookups) if lookups else NO_FACTS)


class Table:
    """A station plus a clock and the records it asked to persist (the 'store')."""

    def __init__(self, mode="10", source="print", box_capacity=50, start=T0):
        self.cfg = make_config(mode, source, box_capacity)
        self.station = Station(self.cfg, VOLUNTEERS)
        self.now = Now(start, True)
        self.synced = True  # set False to act as a Pi whose clock NTP has not set yet
        self.records: list[dict] = []
        self.shelf = Shelf()
        self.effects: list = []

    def tick(self, seconds: float = 20) -> None:
        self.now = Now(self.now.at + seconds, self.synced)

    def do(self, event) -> list:
        self.tick()
        self.effects = handle(self.station, event, self.now, self.shelf)
        self.records += self.shelf.keep(self.station, self.effects)
        return self.effects

    def scan(self, text: str, source="scanner") -> list:
        return self.do(CodeScanned(text, source))

    def card(self, text: str, confirm: bool = True) -> list:
        """Scan a command card signed for this site with the demo operator key; a destructive
        one (held for a confirm) is then confirmed with the signed confirm card, unless not ``confirm``."""
        st = self.cfg.station
        effects = self.scan(signed_card(text, st.district, st.site))
        name = text[len("SWABCMD:"):].partition(":")[0]
        spec = commands.COMMANDS.get(name)
        pending = self.station.snapshot().get("pending") or {}
        if confirm and spec is not None and spec.confirm and pending.get("kind") == "command":
            effects = self.scan(signed_card("SWABCMD:confirm", st.district, st.site))
        return effects

    def cmd(self, command: str, /, **args) -> list:
        return self.do(Command(command, args))

    def sign_in(self, cert_id="V1", name="李志愿") -> list:
        return self.scan(operator_code(cert_id=cert_id, name=name))

    def restart(self) -> None:
        self.station = Station(self.cfg, VOLUNTEERS)
        self.station.restore(self.rows, self.shelf.store.high_water(), now=self.now)

    @property
    def rows(self) -> dict:
        return self.shelf.rows()

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


def signed_card(text: str, district: str = "dongguan", site: str = "guancheng", key=OPERATOR_KEY) -> str:
    """A printed command card: ``text`` signed for the site with the demo operator key."""
    return commands.sign_card(key, text, district, site)
