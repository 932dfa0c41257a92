"""`swabkiosk run --simulate` killed with SIGKILL mid-session and started again:
every record the store had is still there and reaches the broker, the open tube
continues, the sequence continues; systemd hears READY and STOPPING."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from firmware_app.store import Store, StoreNotReady
from tests.broker import Collector, free_port, password_broker  # noqa: F401 (fixture)
from tests.test_simulate import station_url

pytestmark = pytest.mark.timeout(180)


def start_kiosk(data, broker, *extra, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "firmware_app", "run", "--simulate", "--data-dir", str(data), "--pace", "0.05",
         "--broker", station_url(broker), "--ui-port", str(free_port()), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def stored(data) -> list[dict]:
    try:
        with Store(str(data), read_only=True) as store:
            return list(store.iter_records())
    except StoreNotReady:  # the kiosk is creating kiosk.db at this moment
        return []


def wait_until(predicate, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    raise AssertionError("timed out")


def open_pooled_tube(records) -> str:
    opened = {r["tube_id"]: r for r in records if r["kind"] == "tube_open" and not r.get("single_reason")}
    closed = {r["tube_id"] for r in records if r["kind"] == "tube_close"}
    (tube,) = set(opened) - closed
    return tube


def test_sigkill_loses_no_record_and_the_open_tube_continues(password_broker, tmp_path):
    data = tmp_path / "data"
    collector = Collector(password_broker.port)
    first = start_kiosk(data, password_broker)
    try:
        wait_until(lambda: os.path.exists(data / "kiosk.db") and
                   sum(r["kind"] == "sample" for r in stored(data)) >= 15, 60, first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    before = stored(data)
    tube = open_pooled_tube(before)
    in_tube = sum(r["kind"] == "sample" and r["tube_id"] == tube for r in before)
    assert in_tube < 10  # a full tube would have been closed

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    second = start_kiosk(data, password_broker, "--people", "3", env=env)
    try:
        assert notify.recv(4096).startswith(b"READY=1")
        wait_until(lambda: any(r["kind"] == "tube_close" and r.get("reason") == "end_of_queue"
                               for r in stored(data)), 60, second)
        after = stored(data)
        ids = {r["record_id"] for r in after}
        assert {r["record_id"] for r in before} <= ids  # nothing the store had is lost
        assert len(ids) == len(after)  # and no record id was used twice
        new = [r for r in after if r["seq"] > max(b["seq"] for b in before)]
        new_samples = [r for r in new if r["kind"] == "sample"]
        assert new_samples[0]["tube_id"] == tube  # the open tube continues
        assert new_samples[0]["position"] == in_tube + 1
        assert not any(r["kind"] == "shift_start" for r in new)  # the volunteer is still signed in
        # every stored record reaches the broker (the consumer de-duplicates on record_id)
        assert collector.wait_for(lambda c: ids <= {r["record_id"] for r in c.records()}, 60)
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, second.stderr.read()
        messages = []
        while True:
            msg = notify.recv(4096)
            messages.append(msg)
            if msg.startswith(b"STOPPING=1"):
                break
        # a clean stop tells the district this table is offline (retained availability)
        assert collector.wait_for(lambda c: any(t.endswith("/availability") and p == b"offline"
                                                for t, p, _ in c.messages), 10)
    finally:
        if second.poll() is None:
            second.kill()
        notify.close()
        collector.close()
