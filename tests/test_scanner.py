"""Scanner: the sans-I/O line parser, and the shell through real pyserial on a pty."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
import termios
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.command_card import command_card, command_labels
from firmware_app.commands import printed_cards

COMMANDS = printed_cards()
from drivers.scanner import NEED_DATA, Line, LineError, LineParser, Scanner, ScannerSettings, shown
from firmware_app.model import CodeScanned, DeviceError, DeviceStatus, Label
from hw_mocks.scanner import SimScanner
from tests.serial_fixtures import (Events, assert_running, assert_stopped, scanner_driver, scanner_sim,  # noqa: F401
                                   wait_until)


def feed(parser: LineParser, *chunks: bytes) -> list:
    out = []
    for chunk in chunks:
        parser.receive_data(chunk)
        while (ev := parser.next_event()) is not NEED_DATA:
            out.append(ev)
    return out


def texts(evs) -> list[str]:
    return [e.text for e in evs if isinstance(e, Line)]


def held_while_feeding(parser: LineParser, chunk: bytes, times: int) -> tuple[int, list]:
    """Feed ``chunk`` ``times`` times; the most memory (bytes, tracemalloc) the feeding ever
    kept allocated beyond what it started with, and the events it gave."""
    events: list = []
    tracemalloc.start()
    try:
        base, most = tracemalloc.get_traced_memory()[0], 0
        for _ in range(times):
            events += feed(parser, chunk)
            most = max(most, tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    return most, events


# -- line parser -------------------------------------------------------------


@pytest.mark.parametrize("term, sent", [("CR", b"\r"), ("LF", b"\n"), ("CRLF", b"\r\n"), ("TAB", b"\t")])
def test_each_terminator(term, sent):
    evs = feed(LineParser(term), b"SWABCMD:close_tube" + sent + b"DG03261123" + sent[:1], sent[1:])
    assert texts(evs) == ["SWABCMD:close_tube", "DG03261123"]


@pytest.mark.parametrize("term", ["CR", "LF"])
def test_crlf_scanner_works_in_cr_and_lf_mode(term):
    evs = feed(LineParser(term), b"ONE\r\nTWO\r", b"\nTHREE\r\n")
    assert texts(evs) == ["ONE", "TWO", "THREE"] and not any(isinstance(e, LineError) for e in evs)


def test_terminator_is_case_insensitive_and_checked():
    assert LineParser("crlf").terminator == "CRLF"
    with pytest.raises(ValueError):
        LineParser("NUL")


def test_prefix_and_suffix_are_stripped_and_required():
    p = LineParser("CR", prefix="\x02", suffix="#")
    evs = feed(p, b"\x02SWB1:abc#\r", b"SWB1:nopfx#\r", b"\x02SWB1:nosfx\r", b"\x02#\r")
    assert texts(evs) == ["SWB1:abc"]
    assert [e.kind for e in evs if isinstance(e, LineError)] == ["prefix", "suffix", "empty"]


def test_over_long_line_is_dropped_once_and_memory_stays_bounded():
    p = LineParser("CR", max_line=100)
    held, evs = held_while_feeding(p, b"x" * 64, 20_000)  # 1.28 MB without a terminator
    assert [e.kind for e in evs] == ["too_long"]
    assert held <= 4096, held  # what it keeps does not grow with what it was sent
    evs = feed(p, b"tail of the long one\rGOOD\r")
    assert texts(evs) == ["GOOD"]  # the tail never becomes a code


def test_over_long_line_with_terminator_in_the_same_chunk():
    evs = feed(LineParser("LF", max_line=10), b"y" * 11 + b"\nok\n")
    assert [type(e) for e in evs] == [LineError, Line] and texts(evs) == ["ok"]


def test_undecodable_bytes_are_an_error_not_a_code():
    evs = feed(LineParser("CR"), b"\xff\xfe\r", "核酸".encode() + b"\r")
    assert [e.kind for e in evs if isinstance(e, LineError)] == ["encoding"] and texts(evs) == ["核酸"]


def test_gbk_scanner():
    evs = feed(LineParser("CR", encoding="gbk"), "采样".encode("gbk") + b"\r")
    assert texts(evs) == ["采样"]


def test_partial_line_at_end_of_stream_is_reported_never_delivered():
    p = LineParser("CR")
    assert feed(p, b"SWB1:half") == []
    err = p.end_of_stream()
    assert err.kind == "unterminated" and "terminator" in err.reason_en
    assert feed(p, b"\r") == [] and p.end_of_stream() is None


def test_lone_lf_of_a_crlf_scanner_is_not_a_pending_line():
    p = LineParser("CR")
    feed(p, b"A\r")
    p.receive_data(b"\n")
    assert not p.pending


lines_st = st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n\t", blacklist_categories=("Cs",)),
                            min_size=1, max_size=80), max_size=10)


@settings(max_examples=200)
@given(lines_st, st.sampled_from(["CR", "LF", "CRLF", "TAB"]), st.lists(st.integers(0, 2000), max_size=20))
def test_lines_survive_any_chunking(lines, term, cuts):
    sep = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}[term]
    stream = b"".join(line.encode() + sep for line in lines)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0] + points, points + [len(stream)])]
    assert texts(feed(LineParser(term), *chunks)) == lines


@settings(max_examples=300)
@given(st.binary(max_size=3000), st.sampled_from(["CR", "LF", "CRLF", "TAB"]), st.integers(1, 200))
def test_random_bytes_give_typed_events_with_bounded_memory(data, term, max_line):
    p = LineParser(term, prefix="<", suffix=">", max_line=max_line)
    for i in range(0, len(data), 37):
        for ev in feed(p, data[i : i + 37]):
            assert isinstance(ev, (Line, LineError))
            if isinstance(ev, Line):
                assert len(ev.text.encode()) <= max_line


@pytest.mark.parametrize("term, chunk", [
    ("CR", b"x" * 4096), ("LF", b"A" * 4093 + b"\r\r\r"), ("CRLF", b"\r" * 4096),  # a CR never followed by LF
    ("CRLF", b"y" * 4095 + b"\r"), ("TAB", b"\r\n" * 2048)])
@pytest.mark.parametrize("max_line", [1, 200, 4096])
def test_memory_stays_bounded_by_max_line_whatever_never_ends_a_line(term, chunk, max_line):
    held, evs = held_while_feeding(LineParser(term, max_line=max_line), chunk, 1024)  # 4 MiB
    assert [e.kind for e in evs] == ["too_long"]
    assert held <= max_line + 2 * len(chunk) + 1024, held


def test_shown_hides_what_may_be_personal():
    assert shown("SWABCMD:switch_mode:20") == "SWABCMD:switch_mode:20"
    assert shown("DG032611230001") == "DG032611230001"
    assert "11010519491231002X" not in shown("11010519491231002X")
    assert shown("SWB1:" + "A" * 200).endswith("(205 chars)")


# -- command card ------------------------------------------------------------


def test_command_card_codes_follow_the_swabcmd_format():
    names = set()
    for zh, en, text in COMMANDS:
        assert text.startswith("SWABCMD:") and zh and en
        parts = text.split(":")
        assert len(parts) in (2, 3) and parts[1].isidentifier()
        names.add(parts[1])
    assert {"close_tube", "void_last", "confirm_duplicate", "switch_mode", "sign_out", "reprint_label",
            "end_of_queue"} <= names
    labels = command_labels()
    assert [lab.qr for lab in labels] == [t for _, _, t in COMMANDS]
    assert all(isinstance(lab, Label) and lab.kind == "command_card" for lab in labels)
    card = command_card()
    assert card.kind == "command_card" and all(any(t in line for line in card.lines) for _, _, t in COMMANDS)


def test_every_command_card_code_arrives_exactly_through_the_scanner(scanner_sim, scanner_driver):
    _, events = scanner_driver
    events.wait_count(DeviceStatus, 1)
    for _, _, text in COMMANDS:
        assert scanner_sim.scan(text, chunks=3)
    got = events.wait_count(CodeScanned, len(COMMANDS))
    assert got == [CodeScanned(t, "scanner") for _, _, t in COMMANDS]


# -- shell over a pty --------------------------------------------------------


def test_scan_round_trip(scanner_sim, scanner_driver):
    _, events = scanner_driver
    (status,) = events.wait_count(DeviceStatus, 1)
    assert status.ok and status.device == "scanner"
    scanner_sim.scan("SWB1:" + "x" * 300, chunks=9)
    assert events.wait_count(CodeScanned, 1) == [CodeScanned("SWB1:" + "x" * 300, "scanner")]


def test_prefix_suffix_and_tab_through_the_pty(tmp_path):
    sim = SimScanner(tmp_path / "s", terminator=b"\t", prefix=b"]Q1", suffix=b"!")
    events = Events()
    scanner = Scanner(ScannerSettings(port=str(sim.path), terminator="TAB", prefix="]Q1", suffix="!"), events)
    scanner.start()
    try:
        events.wait_count(DeviceStatus, 1)
        sim.scan("SWABCMD:sign_out")
        assert events.wait_count(CodeScanned, 1)[0].text == "SWABCMD:sign_out"
    finally:
        scanner.stop()
        sim.close()


def test_unplug_and_replug_loses_no_scan(scanner_sim, scanner_driver):
    _, events = scanner_driver
    events.wait_count(DeviceStatus, 1)
    scanner_sim.scan("BEFORE")
    events.wait_count(CodeScanned, 1)
    scanner_sim.unplug()
    events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and not items[-1].ok)
    scanner_sim.plug()
    events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and items[-1].ok)
    scanner_sim.scan("AFTER")
    events.wait_count(CodeScanned, 2)
    assert [e.text for e in events.of(CodeScanned)] == ["BEFORE", "AFTER"]
    assert [e.ok for e in events.of(DeviceStatus)] == [True, False, True]


def waiting_on_the_line(sim) -> int:
    """Bytes the device sent that the driver has not read yet (the pty's input queue, FIONREAD)."""
    fd = os.open(os.path.realpath(sim.path), os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(fd)


def test_scan_cut_by_an_unplug_is_reported_not_delivered(scanner_sim, scanner_driver):
    _, events = scanner_driver
    events.wait_count(DeviceStatus, 1)
    scanner_sim.send(b"SWB1:cut-in-the-midd")
    wait_until(lambda: waiting_on_the_line(scanner_sim) == 0)  # the driver has read the bytes
    scanner_sim.unplug()
    (err,) = events.wait_count(DeviceError, 1)
    assert "不完整" in err.reason and "incomplete" in err.reason
    scanner_sim.plug()
    events.wait_for(lambda items: isinstance(items[-1], DeviceStatus) and items[-1].ok)
    scanner_sim.scan("WHOLE")
    assert [e.text for e in events.wait_count(CodeScanned, 1)] == ["WHOLE"]


def test_wrong_terminator_setting_is_explained(scanner_sim, scanner_driver):
    _, events = scanner_driver  # configured CR
    events.wait_count(DeviceStatus, 1)
    scanner_sim.terminator = b"\t"
    scanner_sim.scan("DG032611230001")
    (err,) = events.wait_count(DeviceError, 1)
    assert "terminator" in err.reason
    assert events.of(CodeScanned) == []


def test_garbage_then_a_good_scan(scanner_sim, scanner_driver):
    _, events = scanner_driver
    events.wait_count(DeviceStatus, 1)
    scanner_sim.send(b"\xff\xfe\x00\r")
    scanner_sim.scan("OK1")
    assert events.wait_count(CodeScanned, 1)[0].text == "OK1"
    assert [e.reason for e in events.of(DeviceError)][0].startswith("扫码内容无法识别")


def test_stop_joins(scanner_sim, scanner_driver):
    scanner, events = scanner_driver
    events.wait_count(DeviceStatus, 1)
    assert_running(scanner)
    scanner.stop()
    assert_stopped(scanner)
    scanner_sim.scan("AFTER")  # a code scanned after stop() reaches nobody
    time.sleep(0.3)
    assert events.of(CodeScanned) == []


# -- swabkiosk probe scanner -------------------------------------------------


def probe(*args):
    return subprocess.Popen([sys.executable, "-m", "firmware_app", "probe", "scanner", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_probe_waits_for_one_code(scanner_sim):
    proc = probe(str(scanner_sim.path), "--json", "--terminator", "cr", "--timeout", "20")
    # scan until the probe has the port open and reads (bytes sent before that are lost, as on a cable)
    wait_until(lambda: scanner_sim.scan("SWABCMD:close_tube") and proc.poll() is not None, step=0.2, timeout=20)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["ok"] and result["code"] == "SWABCMD:close_tube" and result["command_card"]


def test_probe_missing_port_fails_clearly(tmp_path):
    proc = probe(str(tmp_path / "none"), "--timeout", "2")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "cannot open" in err


def test_probe_nothing_scanned_fails_clearly(scanner_sim):
    proc = probe(str(scanner_sim.path), "--timeout", "1")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "nothing scanned" in err
