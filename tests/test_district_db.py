"""The district database, SQLite and PostgreSQL through one code path: exactly once by record_id,
coverage runs merged on insert whatever the arrival order, gaps, tube queries, migrations."""

from __future__ import annotations

import json
import random

import pytest

from district.db import MIGRATIONS, SCHEMA_VERSION, DistrictDB, parse_record
from tests.broker import PASSWORDS, RECEIVER, STATION_A, password_broker  # noqa: F401 - fixture
from tests.pg import fresh_database, postgres_url  # noqa: F401 - fixture
from tests.store_fixtures import event, sample


def _rec(seq, tube="T1", device="gd-dg-0001-t03", **extra):
    r = sample(seq, tube=tube, person=seq, **extra)
    r["device_id"] = device
    r["record_id"] = f"{device}-{seq:010d}"
    return parse_record("swab/v1/dongguan/guancheng/t03/records", json.dumps(r).encode())


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    if request.param == "sqlite":
        d = DistrictDB(str(tmp_path / "district.db"))
    else:
        url = request.getfixturevalue("postgres_url")
        d = DistrictDB(fresh_database(url, f"t_{random.randrange(10**9)}"))
    yield d
    d.close()


def test_exactly_once_and_coverage_in_any_order(db):
    rng = random.Random(3)
    seqs = list(range(1, 301))
    rng.shuffle(seqs)
    holes = {17, 18, 19, 200}
    batches = [seqs[i:i + 37] for i in range(0, len(seqs), 37)]
    total_new = 0
    for b in batches:
        total_new += db.insert([_rec(s) for s in b if s not in holes])
        total_new += db.insert([_rec(s) for s in b[:5] if s not in holes])  # duplicates: nothing new
    assert total_new == 300 - len(holes)
    st = db.stations()["gd-dg-0001-t03"]
    assert st["records"] == 296 and st["last_seq"] == 300
    assert st["gaps"] == [[17, 19], [200, 200]]
    assert db.rows("SELECT count(*) FROM coverage")[0][0] == 3
    db.insert([_rec(s) for s in holes])
    st = db.stations()["gd-dg-0001-t03"]
    assert st["gaps"] == [] and db.rows("SELECT lo, hi FROM coverage") == [(1, 300)]
    assert db.rows("SELECT count(*) FROM records")[0][0] == 300


def test_watermark_makes_the_tail_a_gap_and_pruned_ranges_are_unrecoverable(db):
    db.insert([_rec(s) for s in range(5, 11)])
    db.set_status("gd-dg-0001-t03", "dongguan/guancheng/t03",
                  {"watermark": {"last_seq": 15, "first_seq": 3}, "backlog": 0, "backlog_events": 0})
    st = db.stations()["gd-dg-0001-t03"]
    assert st["gaps"] == [[1, 4], [11, 15]]
    assert st["open_gaps"] == [[3, 4], [11, 15]]  # 1-2 are older than the station's archive
    db.add_unrecoverable("gd-dg-0001-t03", [[3, 4]], "pruned")
    st = db.stations()["gd-dg-0001-t03"]
    assert st["open_gaps"] == [[11, 15]] and st["unrecoverable"] == [[1, 4]]


def test_availability_before_the_first_record_is_kept(db):
    db.set_online("dongguan/guancheng/t03", True)
    assert db.stations() == {}
    db.insert([_rec(1)], {"gd-dg-0001-t03": "dongguan/guancheng/t03"})
    assert db.stations()["gd-dg-0001-t03"]["online"] is True
    db.set_online("dongguan/guancheng/t03", False)
    assert db.stations()["gd-dg-0001-t03"]["online"] is False


def test_a_version_1_database_is_migrated(tmp_path):
    import sqlite3

    from district import db as dbmod
    path = str(tmp_path / "v1.db")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for st in dbmod.MIGRATIONS[0][1]:
        conn.execute(st.format(BIGINT="INTEGER", FLOAT="REAL"))
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.commit()
    conn.close()
    d = DistrictDB(path)
    assert d.rows("SELECT max(version) FROM schema_version")[0][0] == SCHEMA_VERSION
    d.set_online("a/b/c", True)
    d.close()


def test_tube_follows_replacements_and_voids(db):
    a = sample(1, tube="TA", person=1)
    b = sample(2, tube="TA", person=2)
    void = event(3, "void", voided_record_id=a["record_id"], tube="TA")
    rep = event(4, "tube_replace", old_tube_id="TA", tube="TB")
    c = sample(5, tube="TB", person=5)
    other = sample(6, tube="TC", person=6)
    recs = []
    for r in (a, b, void, rep, c, other):
        leaf = "tubes" if r["kind"] == "tube_replace" else "records"
        recs.append(parse_record(f"swab/v1/dongguan/guancheng/t03/{leaf}", json.dumps(r).encode()))
    db.insert(recs)
    got = {r["record_id"] for r in db.tube("TB")}
    assert got == {a["record_id"], b["record_id"], void["record_id"], rep["record_id"], c["record_id"]}


def test_migrations_are_recorded_and_run_once(tmp_path):
    path = str(tmp_path / "d.db")
    DistrictDB(path).close()
    d = DistrictDB(path)  # opening again migrates nothing
    assert d.rows("SELECT version FROM schema_version ORDER BY version") == [(v,) for v, _ in MIGRATIONS]
    d.close()


@pytest.mark.parametrize("payload", [b"{}", b"[]", b"\xff", b'{"record_id": "x-0000000001", "seq": 2, "device_id": "x"}',
                                     b'{"record_id": "x-0000000001", "seq": true, "device_id": "x"}',
                                     b"[" * 100000])
def test_what_is_not_a_record_is_refused(payload):
    assert parse_record("swab/v1/a/b/c/records", payload) is None


class _Station:
    """The station's side of cmd/resend on a real broker: logged in as the station (its ACL: read
    its own cmd/+, write cmd/+/response), it keeps every request it is sent and answers when told."""

    def __init__(self, broker):
        import threading

        import paho.mqtt.client as mqtt

        self.asked: list[dict] = []
        self.cond = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=STATION_A, clean_session=True)
        self.client.username_pw_set(STATION_A, PASSWORDS[STATION_A])
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"swab/v1/{STATION_A}/cmd/resend", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(10), "the station could not subscribe"

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.asked.append(json.loads(msg.payload))
            self.cond.notify_all()

    def wait_asked(self, n, timeout=20.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.asked) >= n, timeout), self.asked
            return list(self.asked)

    def answer(self, request, data):
        body = {"txn": request["txn"], "ok": True, "device_id": "gd-dg-0001-t03", "data": data}
        self.client.publish(f"swab/v1/{STATION_A}/cmd/resend/response", json.dumps(body), qos=1).wait_for_publish(10)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def test_reconcile_asks_each_gap_and_a_stuck_one_does_not_hold_back_the_next(tmp_path, password_broker):
    # the real receiver on the district listener of a real broker, the station on its own
    import threading
    import time

    from district.receiver import Receiver, ReceiverSettings

    path = str(tmp_path / "r.db")
    d = DistrictDB(path)
    d.insert([_rec(s) for s in range(1, 80) if not (s == 10 or 50 <= s <= 60)],
             {"gd-dg-0001-t03": "dongguan/guancheng/t03"})
    d.set_status("gd-dg-0001-t03", "dongguan/guancheng/t03", {"watermark": {"last_seq": 79, "first_seq": 1},
                                                               "backlog": 0, "backlog_events": 0})
    d.close()
    station = _Station(password_broker)
    user, password = password_broker.district_login(RECEIVER)
    rx = Receiver(ReceiverSettings(broker=f"mqtt://127.0.0.1:{password_broker.district_port}", db=path,
                                   username=user, password=password, grace_s=0.0, retry_s=60.0, check_every_s=0.05))
    runner = threading.Thread(target=rx.run, daemon=True)
    runner.start()
    try:
        first, _ = station.wait_asked(2)  # 10 was asked and is not due again: the next gap goes
        time.sleep(0.5)  # ten more checks: nothing is asked again before its retry delay (60 s)
        asked = [(m["args"]["from_seq"], m["args"]["to_seq"]) for m in station.asked]
        assert asked == [(10, 10), (50, 60)]
        # the station answers that 10 is set aside (its broker refuses it): recorded, asked no more
        station.answer(first, {"sent": 0, "set_aside": [10], "not_in_archive": [], "last_seq": 79, "first_seq": 1})
        deadline = time.monotonic() + 10
        while True:
            with _Reader(path) as db:
                st = db.stations()["gd-dg-0001-t03"]
            if [10, 10] in st["unrecoverable"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert st["open_gaps"] == [[50, 60]] and [10, 10] in st["unrecoverable"]
        time.sleep(0.3)
        assert len(station.asked) == 2  # 10 is not asked again
    finally:
        rx.stop.set()
        runner.join(10)
        station.close()
    assert not runner.is_alive()


class _Reader:
    def __init__(self, path):
        self.db = DistrictDB(path)

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        self.db.close()


def test_alerts_are_records_too_so_they_leave_no_gap_and_are_listed(db):
    # a red-code alert has a seq like every record: a receiver that did not take its topic saw
    # a gap at every alert that no resend could ever fill (the resend republishes on .../alerts)
    person = _rec(1)
    alert = {"schema": "swab.record/1", "record_id": "gd-dg-0001-t03-0000000002", "seq": 2, "kind": "alert",
             "device_id": "gd-dg-0001-t03", "at": "2026-11-18T10:00:00.000+08:00", "reason": "red_code",
             "sample_record_id": person.record_id, "tube_id": "T1", "colour": "red"}
    db.insert([person, parse_record("swab/v1/dongguan/guancheng/t03/alerts", json.dumps(alert).encode()), _rec(3)])
    assert db.stations()["gd-dg-0001-t03"]["gaps"] == []
    [listed] = db.alerts()
    assert listed["reason"] == "red_code" and listed["sample"]["record_id"] == person.record_id
