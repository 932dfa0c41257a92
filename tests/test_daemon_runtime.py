"""The daemon in one process on a simulated table: watchdog pings stop when the
station loop hangs, a refused store write is never shown as OK, a broken station
file is refused with every problem, and no full ID number reaches the log."""

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from firmware_app import config
from firmware_app.daemon import Kiosk
from firmware_app.sdnotify import Notifier
from firmware_app.store import Store
from firmware_app.simulate import LIVE_CAMERA, Tracker, present, step, wait_devices
from hw_mocks.table import Table
from tests.broker import free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield path, sock
    sock.close()


def kiosk_on(table, tmp_path, notifier=None):
    cfg = config.parse_text(table.station_file(str(tmp_path / "data"), poll_ms=50, camera_fps=20))
    kiosk = Kiosk(cfg, use_ui=False, notifier=notifier or Notifier({}), device_overrides=LIVE_CAMERA)
    kiosk.start()
    return kiosk


@pytest.fixture
def signed_in(tmp_path):
    """A kiosk on every serial device's mock, the volunteer signed in."""
    table = Table(tmp_path / "table", devices=("idcard", "scanner", "printer")).start()
    kiosk = kiosk_on(table, tmp_path)
    try:
        tracker = Tracker(kiosk.runtime)
        wait_devices(kiosk, ["idcard", "scanner", "printer"])
        step(table, tracker, table.sign_in, "sign in")
        yield table, kiosk, tracker
    finally:
        kiosk.stop()
        table.stop()


def pings(sock, seconds):
    """WATCHDOG=1 datagrams received within ``seconds``."""
    got, deadline = 0, time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(256).startswith(b"WATCHDOG=1"):
                got += 1
        except TimeoutError:
            break
    return got


def drain(sock):
    sock.setblocking(False)
    try:
        while True:
            sock.recv(256)
    except BlockingIOError:
        pass


def test_watchdog_pings_stop_while_the_station_loop_hangs(tmp_path, notify_socket):
    path, sock = notify_socket
    # No device answers (idcard/scanner/printer at their default, absent paths): devices
    # down is not a hung daemon, so the pings flow until the loop itself hangs.
    table = Table(tmp_path / "table", devices=()).start()
    kiosk = kiosk_on(table, tmp_path, Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}))
    release = threading.Event()
    try:
        sock.settimeout(5)
        assert sock.recv(256).startswith(b"READY=1")
        assert pings(sock, 1.0) >= 3
        assert not any(s.ok for s in kiosk.supervisors.values())
        stall = threading.Thread(target=kiosk.runtime.call, args=(lambda: release.wait(30),), kwargs={"timeout": 40})
        stall.start()  # a step that never ends
        time.sleep(kiosk.watchdog.stale_after + 0.5)
        assert kiosk.watchdog.stale() == ["station loop"]
        drain(sock)  # pings sent before the hang was noticed
        assert pings(sock, 1.5) == 0  # systemd would now restart the service
        release.set()
        stall.join(5)
        assert pings(sock, 1.5) >= 2  # the loop answers again: pings resume
    finally:
        release.set()
        kiosk.stop()
        table.stop()


def _fill(directory, chunk=64 * 1024) -> None:
    """Fill the filesystem of directory to the last byte (a bounded loop: the tmpfs is small)."""
    with open(os.path.join(directory, "filler"), "wb", buffering=0) as f:
        for _ in range(10_000):
            try:
                f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if chunk == 1:
                    return
                chunk //= 2


def test_a_refused_store_write_is_never_shown_as_ok(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the data dir needs root")
    data = tmp_path / "data"
    data.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(data)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    table = Table(tmp_path / "table", devices=("idcard", "scanner", "printer")).start()
    kiosk = kiosk_on(table, tmp_path)
    try:
        tracker = Tracker(kiosk.runtime)
        wait_devices(kiosk, ["idcard", "scanner", "printer"])
        step(table, tracker, table.sign_in, "sign in")
        first, second = table.people.person(via="card"), table.people.person(via="scanner")
        assert present(table, tracker, first) == "ok"
        stored = list(kiosk.store.iter_records())
        _fill(data)  # the SD card fills up (a real ENOSPC inside SQLite's own writes)
        assert present(table, tracker, second) == "error"
        shown = tracker.last_shows[-1]
        assert "未保存" in shown.message and "NOT saved" in shown.message_en
        assert kiosk.runtime.snapshot["tube"]["count"] == 1  # the station forgot what was not stored
        assert kiosk.runtime.snapshot["level"] == "error"  # and the screen stays red
        assert list(kiosk.store.iter_records()) == stored
        os.unlink(data / "filler")  # space is back
        assert present(table, tracker, second) == "ok"  # registered now, not flagged as a duplicate
        assert kiosk.runtime.snapshot["tube"]["count"] == 2
    finally:
        kiosk.stop()
        table.stop()
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_a_broken_station_file_is_refused_with_every_problem_on_the_screen(tmp_path):
    bad = tmp_path / "station.toml"
    bad.write_text('[station]\ndevice_id = "Bad Id"\ndistrict = "d"\nsite = "s"\n\n[sampling]\nmode = "15"\n')
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "firmware_app", "run", "--config", str(bad), "--ui-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        problems = [proc.stderr.readline() for _ in range(5)]
        text = "".join(problems)
        assert "4 problem(s); not starting" in text
        for key in ("station.device_id", "station.table", "sampling.mode", "authority"):
            assert key in text
        # the volunteer at the table sees why the kiosk does not work
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2) as r:
                    state = json.load(r)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        shown = state["snapshot"]["problems"]
        assert {p["key"] for p in shown} >= {"station.device_id", "station.table", "sampling.mode"}
        assert state["snapshot"]["level"] == "error"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 78  # EX_CONFIG
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_station_file_too_broken_to_name_its_screen_exits_at_once(tmp_path):
    bad = tmp_path / "station.toml"
    bad.write_text("[station\n")
    out = subprocess.run([sys.executable, "-m", "firmware_app", "run", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 78
    assert "not valid TOML" in out.stderr


def test_no_full_id_number_reaches_the_log(tmp_path):
    out = subprocess.run([sys.executable, "-m", "firmware_app", "simulate", "--people", "12", "-v",
                          "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ID card read" in out.stderr and "已登记" in out.stderr
    assert not re.search(r"(?<![0-9A-Za-z-])[1-9]\d{16}[\dX](?![0-9A-Za-z])", out.stdout + out.stderr)
    assert re.search(r"\d{6}\*{8}[\dX]{4}", out.stderr)  # masked: first 6 and last 4


def test_an_unplugged_device_is_shown_down_and_the_table_keeps_working(signed_in):
    table, kiosk, tracker = signed_in
    table.scanner.unplug()
    assert kiosk.runtime.wait_for(lambda s: not s["devices"]["scanner"]["ok"], 10)
    assert present(table, tracker, table.people.person(via="card")) == "ok"  # the reader still works
    table.scanner.plug()
    assert kiosk.runtime.wait_for(lambda s: s["devices"]["scanner"]["ok"], 10)
    assert present(table, tracker, table.people.person(via="scanner")) == "ok"


def test_a_label_waits_for_paper_and_registration_goes_on(signed_in):
    table, kiosk, tracker = signed_in
    assert present(table, tracker, table.people.person(via="card")) == "ok"  # tube 1 opens, label 1
    assert len(table.printer.wait_for(1)) == 1
    assert kiosk.runtime.wait_for(lambda s: s["labels_waiting"] == 0, 10)  # the shell saw it come out
    table.printer.paper_out()
    for _ in range(9):  # tube 1 fills; tube 2 opens and its label must wait for paper
        assert present(table, tracker, table.people.person(via="scanner")) == "ok"
    tube2 = kiosk.runtime.snapshot["tube"]["id"]
    assert kiosk.runtime.wait_for(lambda s: s["labels_waiting"] >= 1, 10)
    assert present(table, tracker, table.people.person(via="card")) == "ok"  # nobody waits for paper
    assert [p["ref"] for p in kiosk.store.get_meta("pending_labels")] == [tube2]  # kept across a restart too
    table.printer.refill()
    labels = table.printer.wait_for(2, timeout=15)
    assert [lab.barcode for lab in labels][-1] == tube2
    assert kiosk.runtime.wait_for(lambda s: s["labels_waiting"] == 0, 10)


def test_a_damaged_store_is_repaired_at_start_and_the_kiosk_goes_on(tmp_path):
    data = tmp_path / "data"

    def session(people):
        out = subprocess.run([sys.executable, "-m", "firmware_app", "simulate", "--people", str(people),
                              "--data-dir", str(data), "--json", "-v"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout), out.stderr

    session(25)
    with Store(str(data), read_only=True) as store:
        before = list(store.iter_records())
    db = data / "kiosk.db"
    raw = bytearray(db.read_bytes())
    raw[:16] = b"not a database!!"  # the card garbled the file's first sector
    db.write_bytes(bytes(raw))
    summary, log = session(3)
    assert summary["registered"] == 3 and summary["refused"] == 0
    assert "setting the damaged database aside" in log and "kept" in log
    assert any(p.name.startswith("kiosk.db") for p in (data / "damaged").iterdir())  # kept, not deleted
    with Store(str(data), read_only=True) as store:
        records = list(store.iter_records())
        reports = store.reports()
    assert reports and reports[-1]["lost"] >= 0 and "moved_to" in reports[-1]
    new = [r for r in records if r["record_id"] not in {b["record_id"] for b in before}]
    # no record id can repeat one the lost part may have used: numbering continues above the marks
    assert new and min(r["seq"] for r in new) > max(r["seq"] for r in before)
    assert len({r["record_id"] for r in records}) == len(records)
    old_tubes = {r["tube_id"] for r in before if r["kind"] == "tube_open"}
    assert not old_tubes & {r["tube_id"] for r in new if r["kind"] == "tube_open"}  # tube ids neither


def test_a_failing_screen_update_is_logged_and_registration_goes_on(signed_in, monkeypatch, caplog):
    table, kiosk, tracker = signed_in
    station = kiosk.runtime.station
    real = type(station).snapshot
    monkeypatch.setattr(type(station), "snapshot", lambda self: 1 / 0)  # a bug in the screen's view
    first, second = table.people.person(via="card"), table.people.person(via="scanner")
    assert present(table, tracker, first) == "ok"
    assert present(table, tracker, second) == "ok"  # the loop survived the first failure
    assert kiosk.watchdog.stale() == []  # nothing for systemd to restart
    assert sum("screen/status update failed" in r.message for r in caplog.records) == 1  # once, not per step
    monkeypatch.setattr(type(station), "snapshot", real)
    assert present(table, tracker, table.people.person(via="card")) == "ok"
    assert kiosk.runtime.snapshot["tube"]["count"] == 3
    assert len([r for r in kiosk.store.iter_records() if r["kind"] == "sample"]) == 3


def _three_people_then_stop(table, tmp_path) -> dict:
    """A kiosk on the table: the volunteer signs in, three people are registered, it stops.
    Returns its last snapshot."""
    kiosk = kiosk_on(table, tmp_path)
    try:
        tracker = Tracker(kiosk.runtime)
        wait_devices(kiosk, ["idcard", "scanner"])
        step(table, tracker, table.sign_in, "sign in")
        for _ in range(3):
            assert present(table, tracker, table.people.person(via="card")) == "ok"
        return kiosk.runtime.snapshot
    finally:
        kiosk.stop()


def test_a_repair_at_start_is_on_the_screen_with_what_was_kept_and_lost(tmp_path, caplog):
    # Damage is loud: the old daemon repaired silently; the screen and the status never said so
    table = Table(tmp_path / "table", devices=("idcard", "scanner")).start()
    _three_people_then_stop(table, tmp_path)
    db = tmp_path / "data" / "kiosk.db"
    raw = bytearray(db.read_bytes())
    raw[:16] = b"not a database!!"
    db.write_bytes(bytes(raw))
    kiosk = kiosk_on(table, tmp_path)
    try:
        report = kiosk.store.reports()[-1]
        assert report["moved_to"] and "lost" in report
        # the big panel at start (the runtime logs every screen it shows)
        shown = [r.getMessage() for r in caplog.records if r.getMessage().startswith("screen [") and "修复" in r.getMessage()]
        assert shown and "repaired" in shown[0] and str(report["moved_to"]) in shown[0]
        wait_devices(kiosk, ["idcard", "scanner"])  # later steps replace the panel's text ...
        light = kiosk.runtime.snapshot["devices"]["store"]  # ... the store's light keeps saying it
        assert "丢失" in light["reason"] and "lost" in light["reason"] and str(report["moved_to"]) in light["reason"]
    finally:
        kiosk.stop()
        table.stop()


def test_a_damaged_state_row_is_rebuilt_from_the_records_not_left_out(tmp_path):
    # a flipped byte in a stored state row fails its checksum: the station's rows are rebuilt
    # from the records once (never a tube silently missing from the table's state)
    import sqlite3

    table = Table(tmp_path / "table", devices=("idcard", "scanner")).start()
    before = _three_people_then_stop(table, tmp_path)
    db = sqlite3.connect(tmp_path / "data" / "kiosk.db")
    key, value = db.execute("SELECT key, value FROM meta WHERE key LIKE 'st:tube:%'").fetchone()
    assert '"count":3' in value  # the open tube's row: the flip below is a real change
    db.execute("UPDATE meta SET value = ? WHERE key = ?", (value.replace('"count":3', '"count":9'), key))
    db.commit()
    db.close()
    kiosk = kiosk_on(table, tmp_path)
    try:
        after = kiosk.runtime.snapshot
        assert after["tube"] == before["tube"] and after["tube"]["count"] == 3
        assert any("checksum" in d for d in kiosk.store.stats()["damage"])
    finally:
        kiosk.stop()
    kiosk = kiosk_on(table, tmp_path)  # rebuilt once: the next start loads whole rows again
    try:
        assert kiosk.runtime.snapshot["tube"] == before["tube"] and kiosk.store.stats()["damage"] == []
    finally:
        kiosk.stop()
        table.stop()
