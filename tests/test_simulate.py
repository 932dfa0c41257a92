"""`swabkiosk simulate`: a whole table session through the real drivers on pty mocks,
the real station and store, and a real Mosquitto started by the test."""

import json
import subprocess
import sys
from urllib.parse import quote

import pytest

from hw_mocks.printer import PrinterMock
from tests.broker import PASSWORDS, STATION_A, Collector, password_broker  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(240)


def simulate(*args):
    return subprocess.run([sys.executable, "-m", "firmware_app", "simulate", *args],
                          capture_output=True, text=True, timeout=200)


def station_url(broker) -> str:
    # The station's username is its topic path (the broker's ACL): it names the simulated table.
    return f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{broker.port}"


def check_tubes_and_labels(records, barcodes):
    samples = [r for r in records if r["kind"] == "sample"]
    assert len(samples) == 95
    assert len({r["record_id"] for r in samples}) == 95
    assert len({r["id_number"] for r in samples}) == 95  # 95 different people
    sizes = {}
    for r in samples:
        sizes[r["tube_id"]] = sizes.get(r["tube_id"], 0) + 1
    assert sorted(sizes.values()) == [5] + [10] * 9
    closes = {r["tube_id"]: r for r in records if r["kind"] == "tube_close"}
    assert set(closes) == set(sizes)  # every tube closed, the last one at the end of the queue
    # one label per tube, and what the printer printed scans back to the tube id
    assert sorted(barcodes) == sorted(sizes)


def test_95_people_pool_10_reach_the_broker(password_broker, tmp_path):
    collector = Collector(password_broker.port)
    try:
        out = simulate("--people", "95", "--pool", "10", "--broker", station_url(password_broker),
                       "--json", "--data-dir", str(tmp_path / "data"))
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert PASSWORDS[STATION_A] not in out.stdout + out.stderr  # credentials never printed
        assert summary["registered"] == 95 and summary["tubes"] == 10 and summary["waiting"] == 0
        stored = summary["records"]
        assert collector.wait_for(lambda c: len({r["record_id"] for r in c.records()}) >= stored, 30)
        on_broker = collector.records()
        assert len({r["record_id"] for r in on_broker}) == stored
        check_tubes_and_labels(on_broker, summary["label_barcodes"])
        people = [r for r in on_broker if r["kind"] == "sample"]
        assert {r["source"] for r in people} == {"idcard", "qr"}  # card reader, scanner and camera paths
    finally:
        collector.close()


def test_labels_go_to_a_network_printer_given_with_printer(password_broker, tmp_path):
    collector = Collector(password_broker.port)
    with PrinterMock("tcp") as printer:
        try:
            out = simulate("--people", "95", "--pool", "10", "--broker", station_url(password_broker),
                           "--json", "--printer", printer.target)
            assert out.returncode == 0, out.stderr
            summary = json.loads(out.stdout)
            labels = printer.wait_for(10, timeout=10)
            assert collector.wait_for(lambda c: len({r["record_id"] for r in c.records()}) >= summary["records"], 30)
            check_tubes_and_labels(collector.records(), [lab.barcode for lab in labels])
            assert all(lab.barcodes[0][0] == "CODE128" for lab in labels)
        finally:
            collector.close()


def test_offline_session_keeps_every_record_waiting(tmp_path):
    out = simulate("--people", "7", "--pool", "household", "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    assert "7 presented, 7 registered" in out.stdout
    assert "waiting for a broker (offline)" in out.stdout
    # households of 3, 2 and 2 (the last cut short): each closed by hand, one tube each
    assert "tubes       3 (1×3, 2×2), 3 closed" in out.stdout
