"""The printer shell against the printer mock over TCP and a pty: the real
python-escpos and pyserial paths, status queries, paper out, unplug, restart."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from drivers.escpos_label import LabelError, tube_label
from drivers.printer import PAPER_OUT, Printer, parse_target, Pending
from firmware_app.model import DeviceError, DeviceStatus, Label
from tests.media_fixtures import Recorder, printer_pty, printer_tcp  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(60)


def tube(n: int) -> Label:
    return tube_label(f"DG03261123{n:04d}", "莞城体育馆 3号采样台", "t03", "2026-11-23 10:41", 10)


class Shelf:
    """Stands in for Store.get_meta/set_meta: what a restart would find."""

    def __init__(self) -> None:
        self.saved: list[dict] = []

    def save(self, items: list[dict]) -> None:
        self.saved = json.loads(json.dumps(items))  # must be JSON-able, as the store keeps it

    def load(self) -> list[dict]:
        return self.saved


def make(mock, rec, shelf=None, printed=None, **kw) -> Printer:
    shelf = shelf or Shelf()
    return Printer({"target": mock.target}, rec, save_pending=shelf.save, load_pending=shelf.load,
                   on_printed=printed, retry_s=0.05, settle_s=0.0, **kw)


def wait_printed(printed_refs: list, cond: threading.Condition, n: int) -> bool:
    with cond:
        return cond.wait_for(lambda: len(printed_refs) >= n, timeout=10)


def printed_sink():
    refs: list[str] = []
    cond = threading.Condition()

    def on_printed(ref, label):
        with cond:
            refs.append(ref)
            cond.notify_all()

    return refs, cond, on_printed


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_tube_label_reaches_the_printer_with_the_tube_id_as_barcode(transport, request):
    mock = request.getfixturevalue(f"printer_{transport}")
    rec, shelf = Recorder(), Shelf()
    refs, cond, on_printed = printed_sink()
    p = make(mock, rec, shelf, on_printed)
    p.start()
    try:
        p.print_label(tube(1), ref="DG032611230001")
        assert shelf.saved and shelf.saved[0]["ref"] == "DG032611230001"  # durable before printing
        assert wait_printed(refs, cond, 1)
    finally:
        p.stop()
    [label] = mock.labels
    assert label.barcodes == (("CODE128", "DG032611230001"),)
    assert "莞城体育馆 3号采样台" in label.lines
    assert refs == ["DG032611230001"] and p.pending() == [] and shelf.saved == []
    assert DeviceStatus("printer", True, "") in rec.events
    assert mock.errors == []


def test_paper_out_keeps_unsent_labels_pending_and_never_prints_one_twice(printer_tcp):
    mock, rec, shelf = printer_tcp, Recorder(), Shelf()
    refs, cond, on_printed = printed_sink()
    mock.paper_left = 1  # the roll ends after one label
    p = make(mock, rec, shelf, on_printed)
    p.start()
    try:
        for n in (1, 2, 3):
            p.print_label(tube(n), ref=f"DG03261123{n:04d}")
        assert rec.wait_for(lambda ev: DeviceStatus("printer", False, PAPER_OUT) in ev)
        # label 2 went out as the roll ended: it leaves the queue and the volunteer is asked
        # to check it (a second sticker with one tube barcode is worse than a reprint they ask for)
        assert [x.ref for x in p.pending()] == ["DG032611230003"]
        assert [d["ref"] for d in shelf.saved] == ["DG032611230003"]
        assert any(isinstance(e, DeviceError) and "DG032611230002" in e.reason and "补打" in e.reason for e in rec.events)
        mock.refill()
        assert wait_printed(refs, cond, 2)
    finally:
        p.stop()
    assert len(mock.dropped) == 1 and mock.dropped[0].barcode == "DG032611230002"
    assert [x.barcode for x in mock.labels] == ["DG032611230001", "DG032611230003"]
    assert refs == ["DG032611230001", "DG032611230003"]
    assert shelf.saved == [] and p.pending() == []
    assert rec.events[-1] == DeviceStatus("printer", True, "")


def test_a_label_confirmed_before_paper_out_is_not_printed_again(printer_tcp):
    # Regression (fault trials): the label came out, then the after-print status said paper
    # out; the old queue kept it and printed a second sticker with the same barcode after refill.
    mock, rec, shelf = printer_tcp, Recorder(), Shelf()
    refs, cond, on_printed = printed_sink()
    mock.paper_left, mock.out_at_last_label = 1, True
    p = make(mock, rec, shelf, on_printed)
    p.start()
    try:
        p.print_label(tube(1), ref="DG032611230001")
        assert rec.wait_for(lambda ev: any(isinstance(e, DeviceError) and "DG032611230001" in e.reason for e in ev))
        assert p.pending() == [] and shelf.saved == []
        mock.refill()
        p.print_label(tube(2), ref="DG032611230002")
        assert wait_printed(refs, cond, 1)
    finally:
        p.stop()
    assert [x.barcode for x in mock.labels] == ["DG032611230001", "DG032611230002"]


def test_a_label_being_sent_at_a_restart_is_reported_not_sent_again(printer_tcp):
    mock, shelf = printer_tcp, Shelf()
    shelf.saved = [{**Pending("DG032611230009", tube(9), 1.0, sending=True).to_dict()},
                   Pending("DG032611230010", tube(10), 2.0).to_dict()]
    rec = Recorder()
    refs, cond, on_printed = printed_sink()
    p = make(mock, rec, shelf, on_printed)
    p.start()
    try:
        assert wait_printed(refs, cond, 1)
    finally:
        p.stop()
    assert [x.barcode for x in mock.labels] == ["DG032611230010"]
    assert any(isinstance(e, DeviceError) and "DG032611230009" in e.reason for e in rec.events)
    assert shelf.saved == []


def test_labels_pending_at_a_restart_print_after_it(printer_tcp):
    mock, shelf = printer_tcp, Shelf()
    mock.paper_out()
    rec = Recorder()
    p = make(mock, rec, shelf)
    p.start()
    p.print_label(tube(7), ref="DG032611230007")
    assert rec.wait_for(lambda ev: any(not e.ok for e in ev))
    p.stop()  # the kiosk restarts with the label unprinted
    assert [d["ref"] for d in shelf.saved] == ["DG032611230007"]

    mock.refill()
    refs, cond, on_printed = printed_sink()
    p2 = make(mock, Recorder(), shelf, on_printed)
    p2.start()
    try:
        assert wait_printed(refs, cond, 1)
    finally:
        p2.stop()
    assert [x.barcode for x in mock.labels] == ["DG032611230007"] and shelf.saved == []


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_unplugged_printer_is_reported_and_printing_resumes_on_replug(transport, request):
    mock, rec = request.getfixturevalue(f"printer_{transport}"), Recorder()
    refs, cond, on_printed = printed_sink()
    p = make(mock, rec, printed=on_printed)
    p.start()
    try:
        assert rec.wait_for(lambda ev: DeviceStatus("printer", True, "") in ev)
        mock.unplug()
        p.print_label(tube(4), ref="DG032611230004")
        assert rec.wait_for(lambda ev: any(not e.ok and "printer not connected" in e.reason for e in ev))
        assert len(p.pending()) == 1
        mock.replug()
        assert wait_printed(refs, cond, 1)
    finally:
        p.stop()
    assert [x.barcode for x in mock.labels] == ["DG032611230004"]


def test_slow_printer_is_reported_as_not_answering(printer_tcp):
    from drivers.printer import IO_TIMEOUT_S

    mock, rec = printer_tcp, Recorder()
    mock.slow = IO_TIMEOUT_S + 1.0  # slower than the driver waits for a status answer
    p = make(mock, rec)
    p.start()
    try:
        assert rec.wait_for(lambda ev: any(not e.ok and "not answering" in e.reason for e in ev))
    finally:
        mock.slow = 0
        p.stop()


def test_unprintable_label_is_refused_at_once_and_not_queued(printer_tcp):
    shelf = Shelf()
    p = make(printer_tcp, Recorder(), shelf)
    with pytest.raises(LabelError):
        p.print_label(Label(kind="tube", barcode="管"), ref="x")
    assert p.pending() == [] and shelf.saved == []


def test_label_that_cannot_be_saved_is_not_accepted(printer_tcp):
    def full(items):
        raise OSError("No space left on device")

    p = Printer({"target": printer_tcp.target}, Recorder(), save_pending=full)
    with pytest.raises(OSError):
        p.print_label(tube(1), ref="DG032611230001")
    assert p.pending() == []


@pytest.mark.parametrize("text", ["serial:/dev/ttyUSB0:19200", "usb:0x0416:0x5011", "tcp://10.0.0.5",
                                  "file:/dev/usb/lp0"])
def test_targets_parse(text):
    t = parse_target(text)
    assert t.kind == text.split(":")[0]


@pytest.mark.parametrize("text", ["", "usb:0416", "tcp://", "serial:ttyUSB0", "lpt1", "tcp://h:port"])
def test_bad_targets_say_what_is_expected(text):
    with pytest.raises(ValueError, match="usb:VID:PID"):
        parse_target(text)


def run_probe(*args):
    return subprocess.run([sys.executable, "-m", "firmware_app", "probe", "printer", *args],
                          capture_output=True, text=True, timeout=60)


def test_probe_prints_a_test_label_and_reports_json(printer_tcp):
    human = run_probe(printer_tcp.target, "--test-label")
    assert human.returncode == 0 and "SWABTEST123456" in human.stdout
    out = run_probe(printer_tcp.target, "--test-label", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["printed"][0]["kind"] == "test"
    # Each run prints the test label twice: the printer's own Code 128, then the image one.
    assert [(p["kind"], p["barcode"]) for p in report["printed"]] == [("test", "printer"), ("test", "image")]
    assert 'barcode = "printer"' in human.stdout and 'barcode = "image"' in human.stdout
    labels = printer_tcp.wait_for(4)
    assert [x.barcode for x in labels] == ["SWABTEST123456"] * 4 and labels[1].qrs == ("SWABTEST",)
    assert [x.images for x in labels] == [0, 1, 0, 1]  # the mock decoded the image barcode from its raster
    assert [x.lines[-1] for x in labels] == ['barcode = "printer"', 'barcode = "image"'] * 2


def test_probe_reports_paper_out_in_plain_words(printer_pty):
    printer_pty.paper_out()
    out = run_probe(printer_pty.target, "--test-label")
    assert out.returncode == 1
    assert "缺纸" in out.stdout and "out of paper" in out.stdout
    assert printer_pty.labels == [] and printer_pty.dropped == []


def test_probe_of_an_absent_printer_fails_clearly():
    out = run_probe("tcp://127.0.0.1:9")
    assert out.returncode == 1 and "printer not connected" in out.stdout


def test_paper_nearly_out_still_prints_and_warns(printer_tcp):
    printer_tcp.near_end = True
    rec = Recorder()
    refs, cond, on_printed = printed_sink()
    p = make(printer_tcp, rec, printed=on_printed)
    p.print_label(tube(5), ref="DG032611230005")  # queued before start: kept
    p.start()
    try:
        assert wait_printed(refs, cond, 1)
    finally:
        p.stop()
    assert rec.events[0] == DeviceStatus("printer", True, "打印纸快用完 / paper nearly out")


def test_printer_that_cannot_answer_status_can_be_told_not_to_be_asked(printer_pty):
    refs, cond, on_printed = printed_sink()
    p = Printer({"target": printer_pty.target, "query_status": False}, Recorder(), on_printed=on_printed)
    p.start()
    try:
        p.print_label(tube(6), ref="DG032611230006")
        assert wait_printed(refs, cond, 1)
    finally:
        p.stop()
    # without status, "printed" means "written": the printer may still be reading it
    [label] = printer_pty.wait_for(1)
    assert printer_pty.queries == 0 and label.barcode == "DG032611230006"


def test_probe_prints_the_command_card(printer_tcp, capsys, tmp_path):
    # The laminated card: an index label, then one QR label per command code.
    from cryptography.hazmat.primitives import serialization

    from drivers.command_card import command_card, command_labels
    from drivers.printer import probe
    from firmware_app import commands
    from tests.qr_fixtures import OPERATOR_KEY

    key_file = tmp_path / "operator.pem"
    key_file.write_bytes(OPERATOR_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    assert probe([printer_tcp.target, "--command-card", "--settle", "0"]) == 1  # unsigned cards are not printed
    capsys.readouterr()
    index, codes = command_card("dongguan", "guancheng"), command_labels(OPERATOR_KEY, "dongguan", "guancheng")
    assert probe([printer_tcp.target, "--command-card", "--key", str(key_file), "--site", "dongguan/guancheng",
                  "--settle", "0"]) == 0  # the mock has printed a label when it answers the status after it
    assert capsys.readouterr().out.count("printed command_card label") == 1 + len(codes)
    printed = printer_tcp.wait_for(1 + len(codes))
    assert [p.lines for p in printed] == [index.lines, *(c.lines for c in codes)]
    assert [p.qrs for p in printed[1:]] == [(c.qr,) for c in codes]
    assert all(c.qr.startswith("SWABCMD:") for c in codes)
    keys = [OPERATOR_KEY.public_key()]  # each printed code is a card the station takes
    assert all(commands.verify_card(c.qr, keys, "dongguan", "guancheng") for c in codes)


def test_a_connection_the_printer_dropped_is_reopened_without_a_false_alarm(printer_tcp):
    mock, rec = printer_tcp, Recorder()
    refs, cond, on_printed = printed_sink()
    p = make(mock, rec, printed=on_printed)
    p.start()
    try:
        assert rec.wait_for(lambda ev: DeviceStatus("printer", True, "") in ev)
        mock.drop_connections()  # e.g. a network printer's idle timeout; it still listens
        p.print_label(tube(8), ref="DG032611230008")
        assert wait_printed(refs, cond, 1)
    finally:
        p.stop()
    assert rec.events == [DeviceStatus("printer", True, "")]
    assert [x.barcode for x in mock.labels] == ["DG032611230008"]


def test_the_image_barcode_setting_prints_labels_the_mock_decodes(printer_tcp):
    """[devices.printer] barcode = "image": python-escpos renders the Code 128 as a raster
    image; the printer mock decodes the raster (zxing-cpp) back to the tube id."""
    rec = Recorder()
    refs, cond, on_printed = printed_sink()
    p = Printer({"target": printer_tcp.target, "barcode": "image"}, rec, on_printed=on_printed, retry_s=0.05,
                settle_s=0.0)
    p.start()
    try:
        p.print_label(tube(7), ref="DG032611230007")
        [label] = printer_tcp.wait_for(1)
        assert label.barcode == "DG032611230007" and label.images == 1
    finally:
        p.stop()


def test_an_unknown_barcode_setting_is_refused():
    with pytest.raises(ValueError, match="barcode"):
        Printer({"target": "tcp://127.0.0.1:9", "barcode": "laser"}, Recorder())


# -- the after-print wait is a setting: [devices.printer] settle_s, probe --settle -----------


def test_probe_waits_the_settle_it_is_given_after_each_label(printer_tcp, capsys):
    from drivers.printer import probe

    assert probe([printer_tcp.target, "--test-label", "--json", "--settle", "0.4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["printed"]) == 2 and report["seconds"] >= 0.8  # two labels, 0.4 s after each
    with pytest.raises(SystemExit) as refused:
        probe([printer_tcp.target, "--test-label", "--settle", "-1"])
    assert refused.value.code == 2
    assert "--settle 不能是负数：-1 / --settle must not be negative: -1" in capsys.readouterr().err
    assert len(printer_tcp.wait_for(2)) == 2  # nothing printed by the refused run


def test_settle_s_from_the_station_file_is_the_shells_wait_after_a_label(printer_tcp):
    from firmware_app import config
    from tests.station_fixtures import STATION_TOML

    base = STATION_TOML.format(mode="10", source="print", box_capacity=50)
    assert config.parse_text(base, allow_demo_keys=True).devices["printer"]["settle_s"] == 1.0  # the default
    text = base + f'\n[devices.printer]\ntarget = "{printer_tcp.target}"\nsettle_s = 1.6\n'
    settings = config.parse_text(text, allow_demo_keys=True).devices["printer"]
    with pytest.raises(config.ConfigError) as bad:
        config.parse_text(text.replace("settle_s = 1.6", "settle_s = -1"), allow_demo_keys=True)
    assert "devices.printer.settle_s" in str(bad.value)
    refs, cond, on_printed = printed_sink()
    p = Printer(settings, Recorder(), on_printed=on_printed)
    p.start()
    try:
        t0 = time.monotonic()
        p.print_label(tube(7), ref="DG032611230007")
        assert wait_printed(refs, cond, 1)
        assert time.monotonic() - t0 >= 1.6  # the status is asked 1.6 s after the label, not the default 1 s
    finally:
        p.stop()
