"""Issue 14 item 3 for the drivers, the store's tools and the parsers: what a volunteer sees
is in words from the catalogue, in one language per screen, and the raw reason (an OS or
library error, a failed check's name) is kept apart for the technician panel."""

from __future__ import annotations

import dataclasses
import errno
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from drivers import idcard
from drivers.camera import Camera
from drivers.idcard_reader import IdCardReader, IdCardSettings
from drivers.printer import Printer
from firmware_app import catalogue, qr, store_schema
from firmware_app.model import DeviceError, DeviceStatus
from firmware_app.supervisor import Supervisor
from hw_mocks.idcard_reader import LI_SI, text_block
from tests.media_fixtures import Recorder, printer_pty  # noqa: F401 (fixture)
from tests.qr_fixtures import KEYS, T0, person_code

ROOT = Path(__file__).resolve().parents[1]
HAN = re.compile(r"[\u3400-\u9fff\uff01-\uff5e\u3000-\u303f]")
LATIN = re.compile(r"[A-Za-z]")
# the files of this part (drivers, store tools, parsers): their texts live in the catalogue
OWN = [*sorted((ROOT / "drivers").glob("*.py")), *(ROOT / "firmware_app" / f"{name}.py" for name in (
    "store_cli", "store_cli_base", "export_cli", "store_queries", "store_repair", "store_legacy", "store_schema", "export_xlsx",
    "simulate", "simulate_days", "supervisor", "qr", "qr_errors", "idnumber", "volunteers"))]


@pytest.mark.parametrize("path", OWN, ids=lambda p: p.name)
def test_no_chinese_text_outside_the_catalogue(path):
    found = [f"{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1) if HAN.search(line)]
    assert found == []


def test_the_areas_of_this_part_are_in_the_catalogue():
    for prefix in ("device_error.", "idcard.", "scanner.", "printer.", "camera.", "store.", "repair.", "export.",
                   "qr.", "idnumber.", "volunteers.", "simulate."):
        assert catalogue.area(prefix), prefix


def _words_only(event: DeviceStatus | DeviceError, zh: str, en: str) -> None:
    """The event's words are exactly the catalogue's, and the raw reason is in neither."""
    assert (event.zh, event.en) == (zh, en)
    assert not LATIN.search(event.zh.split("（")[0]), event.zh  # zh-CN words, no English inside
    assert not HAN.search(event.en), event.en
    assert event.raw and event.raw not in event.zh and event.raw not in event.en
    assert event.zh in event.reason and event.en in event.reason and event.raw in event.reason  # the technician's line


def wait(rec: Recorder, pred, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in list(rec.events) if pred(e)]
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"not seen: {rec.events}")


def test_an_unreachable_printer_says_not_connected_and_keeps_the_socket_error_apart():
    rec = Recorder()
    p = Printer({"target": "tcp://127.0.0.1:9"}, rec, retry_s=0.05, settle_s=0.0)
    p.start()
    try:
        [down, *_] = wait(rec, lambda e: isinstance(e, DeviceStatus) and not e.ok)
    finally:
        p.stop()
    _words_only(down, "打印机未连接", "printer not connected")


def test_paper_out_tells_the_volunteer_what_to_do(printer_pty):
    printer_pty.paper_out()
    rec = Recorder()
    p = Printer({"target": printer_pty.target}, rec, retry_s=0.05, settle_s=0.0)
    p.start()
    try:
        [down, *_] = wait(rec, lambda e: isinstance(e, DeviceStatus) and not e.ok)
    finally:
        p.stop()
    assert (down.zh, down.en) == catalogue.both("printer.paper_out") == ("打印机缺纸，请换纸", "printer out of paper: load paper")
    assert down.raw == ""  # a status byte the printer answered: nothing more for the technician


def test_an_absent_reader_names_its_port_and_keeps_the_os_error_apart(tmp_path):
    port = str(tmp_path / "idcard")
    rec = Recorder()
    reader = IdCardReader(IdCardSettings(port=port, poll_ms=50), rec)
    reader.start()
    try:
        [down, *_] = wait(rec, lambda e: isinstance(e, DeviceStatus) and not e.ok)
    finally:
        reader.stop()
    assert (down.zh, down.en) == (f"身份证读卡器未连接（{port}）", f"ID-card reader not connected ({port})")
    assert down.raw and down.raw not in down.zh and "Errno" not in down.zh
    assert down.raw in down.reason


def test_a_device_that_cannot_start_reads_plainly_on_the_screen():
    """The brief's case: ``(5, 'Input/output error')`` must not reach the zh-CN screen."""
    events: list = []
    done = threading.Event()

    def factory(on_event):
        done.set()
        raise OSError(5, "Input/output error")

    sup = Supervisor("camera", factory, events.append, backoff=(5.0, 5.0))
    sup.start()
    try:
        assert done.wait(5)
        deadline = time.monotonic() + 5
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sup.stop()
    [down] = [e for e in events if isinstance(e, DeviceStatus)]
    _words_only(down, *catalogue.both("device_error.start_failed"))
    assert "Input/output error" in down.raw


def test_an_unusable_camera_frame_keeps_its_shape_for_the_technician(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((8, 8, 3), np.uint8))  # a colour frame: not what the decoder takes
    rec = Recorder()
    cam = Camera({"source": f"dir:{tmp_path}", "fps": 100}, rec)
    cam.start()
    try:
        assert cam.finished.wait(10)
    finally:
        cam.stop()
    [error] = [e for e in rec.events if isinstance(e, DeviceError)]
    _words_only(error, "帧格式不对", "unusable frame")
    assert "(8, 8, 3)" in error.raw


def test_malformed_card_fields_are_named_in_each_language():
    block = text_block(dataclasses.replace(LI_SI, nation="00", birth="19491399"))
    with pytest.raises(idcard.CardDataError) as exc:
        idcard.decode_text(block)
    assert exc.value.reason == "身份证信息格式不对（民族、出生日期），请重新放卡或手工登记"
    assert exc.value.reason_en == "card fields malformed: nation, birth"
    assert exc.value.raw == "fields: nation, birth"


def test_a_malformed_code_keeps_the_failed_check_out_of_the_volunteers_words():
    text = person_code()
    with pytest.raises(qr.QrMalformed) as exc:
        qr.verify(text.rpartition(".")[0], KEYS, T0)  # the signature cut off
    assert (exc.value.reason, exc.value.reason_en) == catalogue.both("qr.malformed")
    assert not LATIN.search(exc.value.reason)
    assert exc.value.raw == "no signature: truncated"


def test_a_failed_write_keeps_the_os_error_out_of_the_message():
    err = store_schema.os_error(OSError(errno.EIO, "Input/output error"), "/data/kiosk.db")
    assert err.message == "存储写入失败，新的登记未保存。(/data/kiosk.db)"
    assert "Input/output" not in err.message and "Input/output" not in err.message_en
    assert err.raw == "Input/output error" and "Input/output error" in err.detail


def test_the_station_shows_the_drivers_words_and_keeps_the_raw_reason_beside_them():
    import drivers
    from tests.test_station import signed_in

    t = signed_in()
    t.do(drivers.status("printer", False, catalogue.both("printer.not_connected"), "[Errno 111] Connection refused"))
    assert (t.show.message, t.show.message_en) == ("打印机故障：打印机未连接", "printer not working: printer not connected")
    assert "Errno 111" in t.show.detail["reason"]
    t.do(drivers.error("printer", catalogue.both("printer.queue_unsaved"), "[Errno 28] No space left on device"))
    assert t.show.message == "打印机：标签队列无法保存，请重试" and "Errno" not in t.show.message_en
