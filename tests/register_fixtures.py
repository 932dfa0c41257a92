"""A sampling day made by the real station core (tests.station_fixtures.Table), stored in a
real Store: what the register, the XLSX and the CSV exports are tested on."""

from __future__ import annotations

import datetime as dt
import json

from firmware_app.idnumber import check_char
from firmware_app.store import Store
from tests.qr_fixtures import person_code
from tests.station_fixtures import Table

CST = dt.timezone(dt.timedelta(hours=8))
# 2026-11-23 08:00 China time: the sampling day
DAY0 = dt.datetime(2026, 11, 23, 8, 0, tzinfo=CST).timestamp()
DAY = "2026-11-23"


def resident_id(n: int, birth: str = "19800101", region: str = "440104") -> str:
    first17 = f"{region}{birth}{n % 1000:03d}"
    return first17 + check_char(first17)


def x_ids(count: int, start: int = 1) -> list[str]:
    """Valid resident ID numbers ending in X (the check character Excel loves to mangle)."""
    out, n = [], start
    while len(out) < count:
        number = resident_id(n)
        if number.endswith("X"):
            out.append(number)
        n += 1
    return out


def code(n: int, **kw) -> str:
    return person_code(id_number=kw.pop("id_number", resident_id(n)), name=kw.pop("name", f"市民{n}"),
                       issued_at=DAY0 - 3600, **kw)


def sampling_day() -> tuple[Table, dict]:
    """One table's day: a full 10混1 tube, a red code (single tube), a manual entry with a
    passport and a landline phone, a void, a broken tube replaced, a household tube, a box
    counted, closed and handed to a courier, and a second box left open. Returns the table
    and what a test checks against."""
    t = Table(mode="10", source="print", box_capacity=3, start=DAY0)
    t.sign_in(cert_id="V1", name="李志愿")
    xs = x_ids(3)
    # tube 1: ten people, the first three with an X check character
    for n in range(1, 11):
        t.scan(code(n, id_number=xs[n - 1] if n <= 3 else resident_id(n)), "camera")
    # a red code: separate tube, confirmed
    t.scan(code(11, colour="red", name="红码人"), "camera")
    t.card("SWABCMD:confirm")
    # tube 2: a manual passport entry with a landline (leading zero), then a person voided
    t.cmd("manual_entry", name="约翰", id_type="passport", id_number="0E1234567", phone="02087654321")
    t.scan(code(12, name="错录人"), "camera")
    t.cmd("void_last")
    t.scan(code(13, name="=HYPERLINK(1)", phone="+8613800000000"), "camera")
    # the tube broke: its people move to a new tube in one record
    t.cmd("replace_tube")
    t.cmd("close_tube")
    # household: one family, closed by hand
    t.cmd("switch_mode", mode="household")
    for n in (14, 15, 16):
        t.scan(code(n, name=f"家人{n}"), "camera")
    t.cmd("close_tube")
    boxes = [r for r in t.records if r["kind"] == "box_open"]
    first_box = boxes[0]["box_id"]
    listed = sum(1 for r in t.records if r["kind"] == "box_add" and r["box_id"] == first_box)
    t.card(f"SWABCMD:box_count:{listed}")
    t.cmd("close_box", box_id=first_box)
    t.card("SWABCMD:handover_box:顺丰张师傅")
    expect = {"x_ids": xs, "first_box": first_box}
    return t, expect


def store_day(path, table: Table) -> str:
    with Store(str(path)) as s:
        s.append([json.loads(json.dumps(r)) for r in table.records])
    return str(path)


def big_day(people: int, path) -> str:
    """A 10混1 table's day of ``people`` registrations straight from the station core (every
    200th a red code, every 97th voided), for the export timings."""
    t = Table(mode="10", source="print", box_capacity=50, start=DAY0)
    t.sign_in(cert_id="V1", name="李志愿")
    stored = list(t.records)
    for n in range(1, people + 1):
        steps = [lambda: t.scan(code(n, id_number=resident_id(n, birth=f"19{50 + n // 1000 % 50:02d}0101"),
                                     colour="red" if n % 200 == 0 else "green"), "camera")]
        if n % 200 == 0:
            steps.append(lambda: t.card("SWABCMD:confirm"))
        if n % 97 == 0:
            steps.append(lambda: t.cmd("void_last"))
        for do in steps:
            do()
            stored += t.new_records
        t.tick(-18)  # ~2 s a person (Table.do adds 20 s), so a day of 10,000 stays one day
        t.records = t.records[-300:]  # facts only need recent records: every person here is distinct
    with Store(str(path)) as s:
        for i in range(0, len(stored), 500):
            s.append(stored[i:i + 500])
    return str(path)
