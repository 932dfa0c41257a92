"""A red code at the table reaches the district at once on its own topic: a real Mosquitto, the
real daemon assembly in a child process, and a kill -9 right after the volunteer saw OK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import paho.mqtt.client as mqtt
import pytest

from tests.broker import OPERATOR, PASSWORDS, ROOT, STATION_A, password_broker  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(120)
ALERTS = "swab/v1/+/+/+/alerts"


class AlertWatcher:
    """The district side: every message on the alert topic, with when it arrived and its QoS."""

    def __init__(self, port: int):
        self.got: list[tuple[float, str, dict, int]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="alert-watch", clean_session=False)
        self.client.username_pw_set(OPERATOR, PASSWORDS[OPERATOR])
        self.subscribed = threading.Event()
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(ALERTS, qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_disconnect = lambda *a: self.subscribed.clear()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.got.append((time.time(), msg.topic, json.loads(msg.payload), msg.qos))
            self.cond.notify_all()

    def for_sample(self, sample_id: str, timeout: float) -> tuple[float, str, dict, int] | None:
        with self.cond:
            self.cond.wait_for(lambda: any(a[2].get("sample_record_id") == sample_id for a in self.got), timeout)
            return next((a for a in self.got if a[2].get("sample_record_id") == sample_id), None)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def start_child(workdir, port, people, seed=7):
    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{port}"
    return subprocess.Popen([sys.executable, "-m", "tests.alert_child", str(workdir), url, str(people), str(seed)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def read_line(proc, want: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child ended: {proc.stderr.read()[-3000:]}")
        if line.startswith(want):
            return line.strip()
    raise AssertionError(f"no {want} from the child")


def kill(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_red_codes_arrive_on_the_alert_topic_within_a_second_and_once(password_broker, tmp_path):
    watch = AlertWatcher(password_broker.district_port)  # the district consumers' listener
    child = start_child(tmp_path, password_broker.port, 3)
    try:
        read_line(child, "READY")
        oks = [read_line(child, "OK").split() for _ in range(3)]
        for _, sample_id, ok_at in oks:
            got = watch.for_sample(sample_id, 5)
            assert got is not None, f"no alert for {sample_id}"
            arrived, topic, alert, qos = got
            assert arrived - float(ok_at) <= 1.0, f"alert {arrived - float(ok_at):.2f} s after the OK"
            assert topic == f"swab/v1/{STATION_A}/alerts" and qos == 1
            assert alert["kind"] == "alert" and alert["reason"] == "red_code" and alert["colour"] == "red"
            assert alert["tube_id"] and "name" not in alert and "id_number" not in alert and "phone" not in alert
        time.sleep(0.5)
        alerts = [a[2] for a in watch.got]
        assert len({a["record_id"] for a in alerts}) == 3  # exactly once each after de-dup by record_id
        assert sorted(a["sample_record_id"] for a in {a["record_id"]: a for a in alerts}.values()) == \
            sorted(s for _, s, _ in oks)
    finally:
        kill(child)
        watch.stop()


def test_an_alert_survives_a_kill_9_right_after_the_ok(password_broker, tmp_path):
    watch = AlertWatcher(password_broker.district_port)  # the district consumers' listener
    password_broker.kill()  # the broker is down: the alert can only be in the store when the kiosk dies
    time.sleep(0.3)
    child = start_child(tmp_path, password_broker.port, 1)
    try:
        read_line(child, "READY")
        _, sample_id, _ = read_line(child, "OK").split()
        child.send_signal(signal.SIGKILL)  # right after the volunteer saw OK
        child.wait(10)
        password_broker.start()
        assert watch.subscribed.wait(10), "the district side did not reconnect"
        restarted = start_child(tmp_path, password_broker.port, 0)
        try:
            read_line(restarted, "READY")
            got = watch.for_sample(sample_id, 30)
            assert got is not None, "the alert was lost with the kill"
            time.sleep(1.0)
            same = {a[2]["record_id"] for a in watch.got if a[2].get("sample_record_id") == sample_id}
            assert len(same) == 1  # one alert for the one red code, whatever the redeliveries
        finally:
            kill(restarted)
    finally:
        kill(child)
        watch.stop()


def test_an_alert_sent_at_once_is_not_lost_or_doubled_by_a_kill_9(password_broker, tmp_path):
    """The broker is up: the alert may or may not have been acknowledged when the kiosk died."""
    watch = AlertWatcher(password_broker.district_port)  # the district consumers' listener
    child = start_child(tmp_path, password_broker.port, 1)
    try:
        read_line(child, "READY")
        _, sample_id, ok_at = read_line(child, "OK").split()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        restarted = start_child(tmp_path, password_broker.port, 0)
        try:
            read_line(restarted, "READY")
            got = watch.for_sample(sample_id, 30)
            assert got is not None
            time.sleep(1.0)
            assert len({a[2]["record_id"] for a in watch.got if a[2].get("sample_record_id") == sample_id}) == 1
        finally:
            kill(restarted)
    finally:
        kill(child)
        watch.stop()


# ---------------------------------------------------------------- the station core


def alert_table(colours: str | None):
    from firmware_app import config
    from tests.station_fixtures import STATION_TOML, Table

    text = STATION_TOML.format(mode="10", source="print", box_capacity=50)
    if colours is not None:
        text = text.replace("box_capacity = 50", f"box_capacity = 50\nalert_colours = {colours}")
    t = Table()
    t.cfg = config.parse_text(text, allow_demo_keys=True)
    t.restart()
    t.sign_in()
    return t


@pytest.mark.parametrize("colours, alerted", [(None, {"red"}), ('["red", "yellow"]', {"red", "yellow"}),
                                              ("[]", set())])
def test_which_colours_alert_is_the_station_files_choice(colours, alerted):
    from tests.test_station import person

    t = alert_table(colours)
    got = {}
    for n, colour in enumerate(("green", "yellow", "red"), 1):
        t.scan(person(n, colour=colour), "camera")
        if colour != "green":
            t.card("SWABCMD:confirm")
        got[colour] = [r for r in t.new_records if r["kind"] == "alert"]
        assert t.show.level == "ok" and bool(t.show.detail.get("alert")) is (colour in alerted)
    assert {c for c, a in got.items() if a} == alerted
    for colour in alerted:
        (alert,) = got[colour]
        sample = next(r for r in t.samples() if r["colour"] == colour)
        assert alert["sample_record_id"] == sample["record_id"] and alert["tube_id"] == sample["tube_id"]
        assert alert["reason"] == f"{colour}_code" and alert["seq"] == sample["seq"] + 1
        assert sample["id_number"] not in json.dumps(alert) and sample["name"] not in json.dumps(alert, ensure_ascii=False)


def test_alert_colours_are_checked():
    from firmware_app import config
    from tests.station_fixtures import STATION_TOML

    text = STATION_TOML.format(mode="10", source="print", box_capacity=50).replace(
        "box_capacity = 50", 'box_capacity = 50\nalert_colours = ["green"]')
    with pytest.raises(config.ConfigError) as exc:
        config.parse_text(text, allow_demo_keys=True)
    assert "alert_colours" in str(exc.value)
