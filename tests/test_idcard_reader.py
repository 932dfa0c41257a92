"""The ID-card reader shell through real pyserial on a pseudo-terminal."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from drivers.idcard_reader import COMMAND_TIMEOUT_S, IdCardReader, IdCardSettings
from firmware_app.model import CardRead, DeviceError, DeviceStatus
from hw_mocks.idcard_reader import LI_SI, ZHANG_SAN, SimIdCardReader, foreign_text_block
from tests.serial_fixtures import (POLL_MS, Events, assert_running, assert_stopped, idcard_driver, idcard_sim,  # noqa: F401
                                   polls, wait_until)


def ready(events: Events) -> None:
    events.wait_for(lambda items: any(isinstance(e, DeviceStatus) and e.ok for e in items))


def test_card_round_trip_gives_name_and_id_number(idcard_sim, idcard_driver):
    _, events = idcard_driver
    ready(events)
    idcard_sim.place(ZHANG_SAN)
    (read,) = events.wait_count(CardRead, 1)
    assert read.card == ZHANG_SAN
    assert read.card.name == "张三" and read.card.id_number == ZHANG_SAN.id_number
    assert len(read.card.photo) == 1024


def test_card_lying_on_the_reader_gives_one_event(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.place(LI_SI)
    events.wait_count(CardRead, 1)
    seen = polls(idcard_sim)
    wait_until(lambda: polls(idcard_sim) >= seen + 15)
    assert len(events.of(CardRead)) == 1
    assert idcard_sim.commands.count((0x30, 0x01)) == 1


def test_reader_that_finds_the_card_on_every_poll_still_gives_one_event(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.refind = True
    idcard_sim.place(LI_SI)
    events.wait_count(CardRead, 1)
    seen = polls(idcard_sim)
    wait_until(lambda: polls(idcard_sim) >= seen + 15)
    assert len(events.of(CardRead)) == 1
    assert idcard_sim.commands.count((0x30, 0x01)) == 1  # recognised by its serial, not re-read


def test_lift_and_place_again_is_a_new_placement(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.place(ZHANG_SAN)
    events.wait_count(CardRead, 1)
    idcard_sim.lift()
    seen = polls(idcard_sim)
    wait_until(lambda: polls(idcard_sim) >= seen + 3)
    idcard_sim.place(ZHANG_SAN)
    reads = events.wait_count(CardRead, 2)
    assert [r.card for r in reads] == [ZHANG_SAN, ZHANG_SAN]
    idcard_sim.lift()
    idcard_sim.place(LI_SI)
    assert events.wait_count(CardRead, 3)[-1].card == LI_SI


def test_unplug_and_replug_with_a_card_placed_while_away(idcard_sim, idcard_driver):
    _, events = idcard_driver
    ready(events)
    idcard_sim.unplug()
    events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and not items[-1].ok)
    idcard_sim.place(ZHANG_SAN)  # placed while the reader is unplugged
    idcard_sim.plug()
    events.wait_count(CardRead, 1)
    statuses = [e.ok for e in events.of(DeviceStatus)]
    assert statuses == [True, False, True]
    seen = polls(idcard_sim)
    wait_until(lambda: polls(idcard_sim) >= seen + 10)
    assert [r.card for r in events.of(CardRead)] == [ZHANG_SAN]  # not lost, not doubled


def test_card_lying_through_an_unplug_is_not_read_twice(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.place(LI_SI)
    events.wait_count(CardRead, 1)
    for _ in range(3):
        idcard_sim.unplug()  # the simulated reader powers down and forgets it read the card
        events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and not items[-1].ok)
        idcard_sim.plug()
        events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and items[-1].ok)
        seen = polls(idcard_sim)
        wait_until(lambda: polls(idcard_sim) >= seen + 5)
    assert len(events.of(CardRead)) == 1
    idcard_sim.lift()
    seen = polls(idcard_sim)
    wait_until(lambda: polls(idcard_sim) >= seen + 3)
    idcard_sim.place(LI_SI)
    assert len(events.wait_count(CardRead, 2)) == 2


def test_reader_absent_at_start_comes_up_when_plugged(tmp_path):
    sim = SimIdCardReader(tmp_path / "idcard", plug=False)
    events = Events()
    reader = IdCardReader(IdCardSettings(port=str(sim.path), poll_ms=POLL_MS), events)
    reader.start()
    try:
        events.wait_for(lambda items: len(items) >= 1)
        assert events.items[0] == events.of(DeviceStatus)[0] and not events.items[0].ok
        assert "未连接" in events.items[0].reason and "not connected" in events.items[0].reason
        sim.plug()
        sim.place(ZHANG_SAN)
        assert events.wait_count(CardRead, 1)[0].card == ZHANG_SAN
        reader.stop()
        assert_stopped(reader)
        asked = polls(sim)
        time.sleep(0.3)
        assert polls(sim) == asked  # the reader no longer talks to the device
    finally:
        reader.stop()
        sim.close()


def test_bad_checksum_gives_a_clear_reason_and_no_crash(idcard_sim, idcard_driver):
    reader, events = idcard_driver
    idcard_sim.corrupt_reads = 1
    idcard_sim.refind = True  # a reader that lets the driver try again
    idcard_sim.place(ZHANG_SAN)
    (err,) = events.wait_count(DeviceError, 1)
    assert "校验" in err.reason and "checksum" in err.reason
    assert events.wait_count(CardRead, 1)[0].card == ZHANG_SAN
    assert_running(reader)


def test_garbage_on_the_line_does_not_stop_a_read(idcard_sim, idcard_driver):
    _, events = idcard_driver
    ready(events)
    idcard_sim.garbage = b"\x00\xff\xaa\xaa\x13\x37" * 20
    idcard_sim.place(LI_SI)
    assert events.wait_count(CardRead, 1)[0].card == LI_SI
    assert events.of(DeviceError) == []


def test_read_failed_status_is_reported_then_retried(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.fail_reads = 1
    idcard_sim.place(LI_SI)
    (err,) = events.wait_count(DeviceError, 1)
    assert err.reason.startswith("读卡失败") and "read failed" in err.reason
    assert events.wait_count(CardRead, 1)[0].card == LI_SI


def test_repeated_read_failures_stop_after_three_and_ask_for_a_lift(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.fail_reads = 100
    idcard_sim.place(LI_SI)
    errors = events.wait_count(DeviceError, 3)
    seen = polls(idcard_sim)
    wait_until(lambda: polls(idcard_sim) >= seen + 10)
    assert len(events.of(DeviceError)) == 3
    assert "lift the card" in errors[-1].reason
    assert events.of(CardRead) == []


def test_unknown_status_is_an_error_never_a_card(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.fail_reads, idcard_sim.fail_sw3 = 1, 0x77
    idcard_sim.place(ZHANG_SAN)
    (err,) = events.wait_count(DeviceError, 1)
    assert "0x77" in err.reason
    assert events.wait_count(CardRead, 1)[0].card == ZHANG_SAN


def test_foreign_card_is_reported_once_as_unsupported(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.refind = True
    idcard_sim.place(foreign_text_block())
    (err,) = events.wait_count(DeviceError, 1)
    assert "外国人永久居留" in err.reason
    seen = polls(idcard_sim)
    wait_until(lambda: polls(idcard_sim) >= seen + 10)
    assert len(events.of(DeviceError)) == 1 and events.of(CardRead) == []


def test_slow_reader_still_reads(idcard_sim, idcard_driver):
    _, events = idcard_driver
    idcard_sim.delay_s = 0.3
    idcard_sim.place(ZHANG_SAN)
    assert events.wait_count(CardRead, 1)[0].card == ZHANG_SAN


# The protocol's answers name no command: an answer that comes after its command timed out
# (a machine under load did not run the reader's side in time) arrives while the driver waits
# for the next command's answer. Taken for it, the select's "90 OK" was shown to the
# volunteer as "身份证读卡器：操作成功，请重试" (test_simulate under load 6-8).
SAM_STATUS, FIND, SELECT, READ = (0x11, 0xFF), (0x20, 0x01), (0x20, 0x02), (0x30, 0x01)


@pytest.mark.parametrize("late", [SAM_STATUS, FIND, SELECT], ids=["sam-status", "find", "select"])
def test_an_answer_late_past_its_timeout_is_retried_not_shown(tmp_path, late):
    sim = SimIdCardReader(tmp_path / "idcard")
    hiccup = (late, COMMAND_TIMEOUT_S + 0.3)
    if late == SAM_STATUS:  # the first command of a session
        sim.hiccup = hiccup
    events = Events()
    reader = IdCardReader(IdCardSettings(port=str(sim.path), poll_ms=POLL_MS), events)
    reader.start()
    try:
        if late != SAM_STATUS:
            ready(events)
            sim.hiccup = hiccup
        sim.place(ZHANG_SAN)
        assert events.wait_count(CardRead, 1)[0].card == ZHANG_SAN
        assert sim.hiccup is None  # the late answer did happen
        seen = polls(sim)
        wait_until(lambda: polls(sim) >= seen + 10)
        assert events.of(DeviceError) == []
        assert [s.ok for s in events.of(DeviceStatus)] == [True]  # one late answer is not a reader down
        assert len(events.of(CardRead)) == 1
        assert_running(reader)
    finally:
        reader.stop()
        sim.close()


def test_a_late_read_answer_is_never_shown_as_ok(tmp_path):
    sim = SimIdCardReader(tmp_path / "idcard")
    events = Events()
    reader = IdCardReader(IdCardSettings(port=str(sim.path), poll_ms=POLL_MS, timeout_s=0.5), events)
    reader.start()
    try:
        ready(events)
        sim.refind = True  # a reader that lets the driver try again
        sim.hiccup = (READ, 0.8)  # past the read's own timeout: the driver says so and reads again
        sim.place(LI_SI)
        assert events.wait_count(CardRead, 1)[0].card == LI_SI
        seen = polls(sim)
        wait_until(lambda: polls(sim) >= seen + 10)
        reasons = [(e.zh, e.en) for e in events.of(DeviceError)]
        assert reasons == [("读卡超时，请拿起身份证重新放好", "card read timed out: lift the card and place it again")]
        assert len(events.of(CardRead)) == 1
    finally:
        reader.stop()
        sim.close()


@pytest.mark.parametrize("late", [FIND, SELECT, READ], ids=["find", "select", "read"])
def test_an_answer_that_came_while_the_kiosk_was_not_run_is_read_not_called_truncated(idcard_sim, late):
    # The answer comes in time, but the driver's process is not run until past the command's
    # deadline (the probe's process is stopped: a loaded machine): it is waiting in the port.
    idcard_sim.place(LI_SI)
    probe = subprocess.Popen([sys.executable, "-m", "firmware_app", "probe", "idcard", str(idcard_sim.path),
                              "--json", "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        timeout_s = IdCardSettings().timeout_s if late == READ else COMMAND_TIMEOUT_S
        idcard_sim.stall_host = (late, probe.pid, timeout_s + 0.5)
        out, err = probe.communicate(timeout=60)
    finally:
        probe.kill()
    assert idcard_sim.stall_host is None  # the stall did happen
    result = json.loads(out)
    assert result["ok"] and result["card"]["id_number"] == "110105********002X", err
    assert result["errors"] == []  # not "读卡器数据不完整 / incomplete frame", not a retry
    assert idcard_sim.commands.count(READ) == 1


def test_silent_reader_is_reported_down_then_up(idcard_sim, idcard_driver):
    _, events = idcard_driver
    ready(events)
    idcard_sim.silent = True
    events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and not items[-1].ok)
    assert "not answering" in events.items[-1].reason
    idcard_sim.silent = False
    events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and items[-1].ok)


def test_rf_frame_command_sent_at_start_when_configured(idcard_sim):
    events = Events()
    reader = IdCardReader({"port": str(idcard_sim.path), "poll_ms": POLL_MS, "set_rf_frame": True,
                           "baud": 115200, "unknown_key": 1}, events)
    reader.start()
    try:
        wait_until(lambda: len(idcard_sim.commands) >= 3)
        assert idcard_sim.commands[:3] == [(0x61, 0xFF), (0x11, 0xFF), (0x20, 0x01)]
    finally:
        reader.stop()


def test_stop_joins_and_heartbeat_moves(idcard_sim, idcard_driver):
    reader, events = idcard_driver
    ready(events)
    assert_running(reader)
    reader.stop()
    assert_stopped(reader)
    asked = polls(idcard_sim)
    time.sleep(0.3)
    assert polls(idcard_sim) == asked


# -- swabkiosk probe idcard ------------------------------------------------


def run_probe(*args):
    return subprocess.run([sys.executable, "-m", "firmware_app", "probe", "idcard", *args],
                          capture_output=True, text=True, timeout=60)


def test_probe_reads_a_card_and_masks_it(idcard_sim):
    idcard_sim.place(LI_SI)
    out = run_probe(str(idcard_sim.path), "--timeout", "10")
    assert out.returncode == 0, out.stderr
    assert "李*" in out.stdout and "110105********002X" in out.stdout
    assert LI_SI.id_number not in out.stdout + out.stderr and "李四" not in out.stdout + out.stderr


def test_probe_json_is_masked(idcard_sim):
    idcard_sim.place(ZHANG_SAN)
    out = run_probe(str(idcard_sim.path), "--json", "--timeout", "10")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] and result["card"]["id_number"] == "441900********" + ZHANG_SAN.id_number[-4:]
    assert result["card"]["name"] == "张*"
    assert ZHANG_SAN.id_number not in out.stdout


def test_probe_missing_port_fails_clearly(tmp_path):
    out = run_probe(str(tmp_path / "nothing"), "--timeout", "2")
    assert out.returncode == 2
    assert "cannot open" in out.stderr


def test_probe_silent_reader_fails_clearly(idcard_sim):
    idcard_sim.silent = True
    out = run_probe(str(idcard_sim.path), "--timeout", "20")
    assert out.returncode == 1
    assert "nothing answers" in out.stderr


def test_probe_says_when_the_port_is_held_by_the_kiosk(idcard_sim, idcard_driver):
    _, events = idcard_driver  # the running driver holds the port exclusively
    ready(events)
    out = run_probe(str(idcard_sim.path), "--timeout", "2")
    assert out.returncode == 2 and "in use" in out.stderr


def test_port_back_but_reader_silent_says_so(idcard_sim, idcard_driver):
    _, events = idcard_driver
    ready(events)
    idcard_sim.unplug()
    events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and not items[-1].ok)
    idcard_sim.silent = True
    idcard_sim.plug()
    events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and "not answering" in items[-1].reason)
    assert not events.items[-1].ok
