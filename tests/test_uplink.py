"""The uplink against a real Mosquitto (our config, password listener): topics, order, commands."""

from __future__ import annotations

import json
import queue
import random
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from firmware_app.model import CommandResult
from firmware_app.store import Store
from firmware_app.uplink import Uplink, UplinkSettings, validate_command
from tests.broker import OPERATOR, PASSWORDS, STATION_A, Collector, password_broker  # noqa: F401 - fixture
from tests.store_fixtures import event, in_tube_order, sample

ROOT = f"swab/v1/{STATION_A}/"


def settings_for(port, **kw) -> UplinkSettings:
    district, site, table = STATION_A.split("/")
    base = dict(url=f"mqtt://127.0.0.1:{port}", device_id="gd-dg-0001-t03", district=district, site=site,
                table=table, username=STATION_A, password=PASSWORDS[STATION_A], backoff_min_s=0.05, backoff_max_s=0.5)
    return UplinkSettings(**{**base, **kw})


def wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def kiosk(password_broker, tmp_path):
    commands: queue.Queue = queue.Queue()
    store = Store(tmp_path / "data")
    uplink = Uplink(store, settings_for(password_broker.port), on_command=commands.put)
    yield store, uplink, commands
    uplink.stop()
    store.close()


def test_records_go_to_their_topics_and_leave_the_outbox(password_broker, kiosk):
    store, uplink, _ = kiosk
    collector = Collector(password_broker.port)
    try:
        store.append([event(1, "tube_open"), sample(2), sample(3), event(4, "tube_close", reason="full"),
                      event(5, "shift_start", tube=None)])
        uplink.start()
        assert collector.wait_for(lambda c: len(c.records()) >= 5)
        topics = [t for t, _, _ in collector.messages if t.split("/")[-1] in ("records", "tubes", "shifts")]
        assert topics == [ROOT + "tubes", ROOT + "records", ROOT + "records", ROOT + "tubes", ROOT + "shifts"]
        first = collector.records("records")[0]
        assert first["record_id"] == "gd-dg-0001-t03-0000000002" and first["tube_id"] == "DG032611230001"
        assert wait(lambda: store.stats()["backlog"] == 0 and store.stats()["backlog_events"] == 0)
        assert store.stats()["archived"] == 5
        state = uplink.state()
        assert state["connected"] and state["commands"] and state["acked"] == 5
        # `swabkiosk status` in another process reads this
        assert store.get_meta("uplink")["connected"] is True
    finally:
        collector.close()


def test_availability_and_status_are_retained(password_broker, kiosk):
    store, uplink, _ = kiosk
    store.append([sample(1), sample(2)])
    uplink.set_status({"devices": {"printer": {"ok": False, "reason": "paper out"}}})
    uplink.start()
    assert wait(lambda: store.stats()["backlog"] == 0)
    late = Collector(password_broker.port, ROOT + "+", client_id="late-joiner")  # joins after: sees retained
    try:
        assert late.wait_for(lambda c: {t for t, _, r in c.messages if r} >= {ROOT + "availability", ROOT + "status"})
        retained = {t: p for t, p, r in late.messages if r}
        assert retained[ROOT + "availability"] == b"online"
        status = json.loads(retained[ROOT + "status"])
        assert status["devices"]["printer"]["reason"] == "paper out"
        assert "backlog" in status and status["versions"]["swabkiosk"]
        uplink.stop()
        assert late.wait_for(lambda c: (ROOT + "availability", b"offline", False) in c.messages)
    finally:
        late.close()


def _operator():
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="operator")
    client.username_pw_set(OPERATOR, PASSWORDS[OPERATOR])
    return client


def test_commands_are_validated_and_answered_with_their_txn(password_broker, kiosk):
    store, uplink, commands = kiosk
    uplink.start()
    assert wait(lambda: uplink.state()["commands"])  # SUBACKed: a command sent now reaches us
    responses = Collector(password_broker.port, ROOT + "cmd/+/response", client_id="responses")
    op = _operator()
    op.connect("127.0.0.1", password_broker.district_port)  # the district consumers' listener
    op.loop_start()
    try:
        op.publish(ROOT + "cmd/reprint_label", json.dumps({"txn": "t-1", "args": {"tube_id": "DG03"}}), qos=1)
        cmd = commands.get(timeout=10)
        assert (cmd.name, cmd.args, cmd.source, cmd.txn) == ("reprint_label", {"tube_id": "DG03"}, "mqtt", "t-1")
        uplink.respond(CommandResult("reprint_label", "t-1", True, "已重打 / reprinted"))
        op.publish(ROOT + "cmd/reprint_label", b"\xff not json", qos=1)
        op.publish(ROOT + "cmd/self_destruct", json.dumps({"txn": "t-2"}), qos=1)
        op.publish(ROOT + "cmd/push_volunteers", json.dumps({"txn": "t-3", "args": {"volunteers": "x"}}), qos=1)
        assert responses.wait_for(lambda c: len(c.messages) >= 4)
        answers = [json.loads(p) for _, p, _ in responses.messages]
        by_txn = {a["txn"]: a for a in answers}
        assert by_txn["t-1"]["ok"] is True
        assert by_txn["t-2"]["ok"] is False and "unknown command" in by_txn["t-2"]["message_en"]
        assert by_txn["t-3"]["ok"] is False and "volunteers" in by_txn["t-3"]["message_en"]
        assert by_txn[None]["ok"] is False and "JSON" in by_txn[None]["message_en"]
        assert commands.empty()  # nothing invalid reached the station
    finally:
        op.loop_stop()
        op.disconnect()
        responses.close()


@pytest.mark.parametrize("payload", [b"", b"[]", b'{"txn": 5}', b'{"txn": "a b"}', b'{"txn": "t", "args": []}',
                                     b'{"txn": "t", "args": {"tube_id": 3}}', b'{"txn": "t", "args": {"rm": "-rf"}}'])
def test_malformed_commands_are_refused(payload):
    command, _, (err, err_en) = validate_command("reprint_label", payload)
    assert command is None and err and err_en


@pytest.mark.timeout(120)
def test_broker_killed_and_restarted_while_2000_records_are_registered(password_broker, tmp_path):
    rng = random.Random(7)
    collector = Collector(password_broker.port, ROOT + "#")
    store = Store(tmp_path / "data")
    uplink = Uplink(store, settings_for(password_broker.port), on_command=lambda c: None)
    uplink.start()
    total = 2000

    def register():
        seq = 0
        while seq < total:
            n = min(rng.randint(1, 10), total - seq)
            store.append([sample(s, tube=f"T{(s - 1) // 10:04d}", person=s) for s in range(seq + 1, seq + n + 1)])
            seq += n
            uplink.wake()
            time.sleep(0.001)

    station = threading.Thread(target=register)
    station.start()
    try:
        restarts = 0
        for _ in range(5):
            time.sleep(rng.uniform(0.2, 0.6))
            password_broker.kill()
            assert wait(lambda: not uplink.state()["connected"], 10)
            assert uplink.state()["error_en"]  # the broker state is visible while it is down
            time.sleep(rng.uniform(0.05, 0.3))
            password_broker.start()
            restarts += 1
        station.join(60)
        assert collector.wait_for(lambda c: len({r["record_id"] for r in c.records()}) >= total, 90)
        received = collector.records()
        ids = {r["record_id"] for r in received}
        assert len(ids) == total
        assert sorted(r["seq"] for r in store.iter_records()) == list(range(1, total + 1))
        assert in_tube_order(received)
        assert wait(lambda: store.stats()["backlog"] == 0, 30)
        print(f"\n{restarts} broker SIGKILLs: {total} records, {len(received) - total} duplicate deliveries")
    finally:
        uplink.stop()
        store.close()
        collector.close()


def test_wrong_password_is_explained_and_nothing_is_forgotten(password_broker, tmp_path):
    store = Store(tmp_path / "data")
    store.append([sample(1)])
    uplink = Uplink(store, settings_for(password_broker.port, password="wrong"), on_command=lambda c: None)
    uplink.start()
    try:
        assert wait(lambda: uplink.state()["error_en"])
        assert "refused the login" in uplink.state()["error_en"]
        assert store.stats()["backlog"] == 1
    finally:
        uplink.stop()
        store.close()


def test_offline_station_keeps_records_waiting(tmp_path):
    store = Store(tmp_path / "data")
    district, site, table = STATION_A.split("/")
    uplink = Uplink(store, UplinkSettings(url="", device_id="d", district=district, site=site, table=table),
                    on_command=lambda c: None)
    uplink.start()
    try:
        store.append([sample(1), sample(2)])
        uplink.wake()
        beat = uplink.heartbeat
        assert wait(lambda: uplink.heartbeat > beat)  # alive for the watchdog while offline
        assert store.stats()["backlog"] == 2 and not uplink.state()["connected"]
    finally:
        uplink.stop()
        store.close()


def test_command_sent_while_kiosk_is_offline_arrives_on_reconnect(password_broker, tmp_path):
    commands: queue.Queue = queue.Queue()
    store = Store(tmp_path / "data")
    uplink = Uplink(store, settings_for(password_broker.port), on_command=commands.put)
    uplink.start()
    assert wait(lambda: uplink.state()["commands"])  # the session holds the subscription
    uplink.stop()  # the broker keeps the session (clean_session False, fixed client id)
    op = _operator()
    op.connect("127.0.0.1", password_broker.district_port)  # the district consumers' listener
    op.loop_start()
    try:
        op.publish(ROOT + "cmd/close_tube", json.dumps({"txn": "late-1"}), qos=1).wait_for_publish(10)
        uplink = Uplink(store, settings_for(password_broker.port), on_command=commands.put)
        uplink.start()
        assert commands.get(timeout=10).txn == "late-1"
    finally:
        uplink.stop()
        store.close()
        op.loop_stop()
        op.disconnect()


@pytest.mark.timeout(120)
def test_a_drain_keeps_its_window_and_commands_are_answered_meanwhile(password_broker, tmp_path):
    store = Store(tmp_path / "data")
    total, window = 1000, 16
    for first in range(1, total + 1, 100):
        store.append([sample(s, tube=f"T{(s - 1) // 10:04d}", person=s) for s in range(first, first + 100)])
    commands: queue.Queue = queue.Queue()
    uplink = Uplink(store, settings_for(password_broker.port, window=window), on_command=commands.put)
    collector = Collector(password_broker.port, ROOT + "#")
    op = _operator()
    op.connect("127.0.0.1", password_broker.district_port)  # the district consumers' listener
    op.loop_start()
    most = [0]
    watching = threading.Event()

    def watch():  # what the uplink has in flight, sampled through the drain
        while not watching.is_set():
            most[0] = max(most[0], uplink.state()["inflight"])
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        uplink.start()
        assert wait(lambda: uplink.state()["acked"] > 0)
        op.publish(ROOT + "cmd/close_tube", json.dumps({"txn": "mid-drain"}), qos=1)
        uplink.respond(CommandResult("close_tube", commands.get(timeout=10).txn, True, "ok"))
        assert collector.wait_for(lambda c: any(t.endswith("cmd/close_tube/response") for t, _, _ in c.messages))
        assert collector.wait_for(lambda c: sum(t == ROOT + "records" for t, _, _ in c.messages) >= total, 60)
        seqs = [r["seq"] for r in collector.records()]
        assert seqs == sorted(seqs) and len(set(seqs)) == total  # one connection: in order, each once
        assert wait(lambda: store.stats()["backlog"] == 0)
        assert 0 < most[0] <= window
    finally:
        watching.set()
        watcher.join()
        uplink.stop()
        store.close()
        op.loop_stop()
        op.disconnect()
        collector.close()
