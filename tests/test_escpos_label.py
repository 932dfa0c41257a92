"""Label -> ESC/POS bytes (python-escpos) -> the printer mock's parser -> the same label."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_app.labels import pool_text
from drivers.escpos_label import (PAPER_COLUMNS, LabelError, box_label, code128_data, columns,
                                  manifest_label, probe_label, render, tube_label)
from firmware_app.model import Label
from hw_mocks.printer import EscposParseError, EscposParser, decode_code128


def parse(data: bytes):
    parser = EscposParser()
    items = parser.feed(data)
    assert parser.close() is None  # nothing left after the cut
    return items


def test_tube_label_round_trips_with_chinese_and_code128():
    label = tube_label("DG032611230001", "莞城体育馆 3号采样台", "t03", "2026-11-23 10:41", 10)
    [printed] = parse(render(label))
    assert printed.barcodes == (("CODE128", "DG032611230001"),)
    assert printed.lines == label.lines
    assert "莞城体育馆 3号采样台" in printed.lines
    assert "10混1 pool of 10" in printed.lines
    assert printed.cut == "partial"


def test_chinese_needs_the_chinese_mode_the_label_turns_on():
    data = render(Label(kind="test", barcode="", lines=("采样台",)))
    assert b"\x1c&" in data  # FS &
    assert "采样台".encode("gb18030") in data
    # A printer left in single-byte mode would print mojibake: the parser shows it.
    [printed] = parse(data.replace(b"\x1c&", b""))
    assert printed.lines != ("采样台",)


def test_single_tube_label_says_why():
    label = tube_label("DG032611230002", "site", "t03", "10:42", 1, single_reason="yellow_code")
    [printed] = parse(render(label))
    assert "单管 黄码 single" in printed.lines
    [plain] = parse(render(tube_label("DG032611230003", "site", "t03", "10:43", 1)))
    assert "单采单检 single" in plain.lines


def test_household_tubes_are_never_called_10_in_1():
    label = tube_label("DG032611230004", "site", "t03", "10:44", 10, mode="household")
    assert "一户一管 household" in label.lines and not any("10混1" in line for line in label.lines)


def test_a_reprint_says_so_on_the_label():
    assert "补打 / reprint" in tube_label("DG032611230005", "site", "t03", "10:45", 10, reprint=True).lines


def test_a_household_tube_is_never_printed_as_10_in_1():
    [printed] = parse(render(tube_label("DG032611230009", "site", "t03", "10:50", 10, mode="household")))
    assert "一户一管 household" in printed.lines and not any("10混1" in line for line in printed.lines)
    tubes = [("DG032611230009", pool_text(10, "household", None), 3, 0), ("DG032611230010", pool_text(10, "10", None), 10, 0),
             ("DG032611230011", pool_text(1, "1", None), 1, 0)]
    [manifest] = parse(render(manifest_label("DG03B2611230002", "site", "12:00", tubes, sampler="张*丰")))
    assert any("DG032611230009 一户一管 3人" in line for line in manifest.lines)
    assert any("DG032611230010 10混1 10人" in line for line in manifest.lines)
    assert "共 3 管 14 人 / total" in manifest.lines


def test_box_label_and_manifest_list_every_tube_and_total():
    tubes = [("DG032611230001", "10混1", 10, 0), ("DG032611230002", "单采单检", 1, 0), ("DG032611230003", "10混1", 7, 1)]
    [box] = parse(render(box_label("DG03B2611230001", "site", "t03", "12:00", 3, 18)))
    assert box.barcodes == (("CODE128", "DG03B2611230001"),)
    [manifest] = parse(render(manifest_label("DG03B2611230001", "莞城体育馆", "12:00", tubes, sampler="张*丰")))
    for tube_id, _pool, count, _void in tubes:
        assert any(tube_id in line and f"{count}人" in line for line in manifest.lines)
    assert any("作废 1 人" in line for line in manifest.lines)
    assert "共 3 管 18 人 / total" in manifest.lines
    assert "转运人 courier: __________" in manifest.lines


def test_every_line_fits_58mm_paper_for_a_real_site():
    site = "莞城体育馆 3号采样台"
    labels = [tube_label("DG032611230001", site, "t03", "2026-11-23 10:41", 20),
              tube_label("DG032611230002", site, "t03", "2026-11-23 10:41", 1, "key_person", reprint=True),
              tube_label("DG032611230003", site, "t03", "2026-11-23 10:41", 10, mode="household"),
              box_label("DG03B2611230001", site, "t03", "2026-11-23 12:00", 50, 500, reprint=True),
              manifest_label("DG03B2611230001", site, "t03 2026-11-23 12:00",
                             [(f"DG03261123{n:04d}", "单管 重点人群 single", 19, 1) for n in range(1, 51)],
                             sampler="张*丰", reprint=True)]
    for label in labels:
        for line in label.lines:
            assert columns(line) <= PAPER_COLUMNS, line


def test_qr_is_sent_native_and_small():
    label = probe_label("tcp://127.0.0.1:9100", "2026-11-23 10:00")
    data = render(label)
    [printed] = parse(data)
    assert printed.qrs == ("SWABTEST",)
    assert printed.images == 0  # not a raster image
    assert len(data) < 400


def test_code128_uses_code_set_c_for_digit_runs():
    # 2 letters in code set B, then 12 digits as 6 code-C values: fits 58 mm paper.
    data = code128_data("DG032611230001")
    assert data == "{BDG{C" + "".join(map(chr, (3, 26, 11, 23, 0, 1)))
    assert code128_data("A12345") == "{BA1{C" + chr(23) + chr(45)  # odd run: first digit in B
    assert code128_data("{x") == "{B{{x"
    assert decode_code128(data.encode("latin-1")) == "DG032611230001"
    assert len(data) < len("{BDG032611230001")


def test_barcode_that_cannot_print_is_refused_before_printing():
    with pytest.raises(LabelError):
        render(Label(kind="tube", barcode="管01"))
    with pytest.raises(LabelError):
        render(Label(kind="tube", barcode="X" * 300))


def test_control_characters_in_text_cannot_become_commands():
    [printed] = parse(render(Label(kind="test", barcode="", lines=("a\x1dV\x00b", "c\nd"))))
    assert printed.lines == ("a V b", "c d")


def test_rendering_prints_nothing_on_stdout(capsys):
    render(tube_label("DG032611230001", "site", "t03", "10:41", 10))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


# -- property tests ---------------------------------------------------------

printable_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
barcodes = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=60)
labels = st.builds(Label, kind=st.sampled_from(["tube", "box", "manifest", "command_card", "test"]),
                   barcode=st.one_of(st.just(""), barcodes),
                   lines=st.lists(printable_text, max_size=8).map(tuple),
                   qr=st.one_of(st.just(""), st.text(st.characters(blacklist_categories=("Cs",)),
                                                     min_size=1, max_size=200)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels, st.integers(1, 64))
def test_generated_labels_round_trip_exactly_in_any_chunking(label, chunk):
    data = render(label)
    parser = EscposParser()
    items = []
    for i in range(0, len(data), chunk):
        items += parser.feed(data[i:i + chunk])
    [printed] = items
    assert printed.lines == label.lines
    assert printed.barcodes == ((("CODE128", label.barcode),) if label.barcode else ())
    assert printed.qrs == ((label.qr,) if label.qr else ())


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_the_typed_error(data):
    parser = EscposParser()
    try:
        parser.feed(data)
        parser.close()
    except EscposParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\x1b@", b"\x1c&", b"\x1c.", b"\n", b"\x1dV\x01", b"\x10\x04\x01",
                                 b"\x1dkI\x04{BAB", b"\x1d(k\x04\x001P0x", b"\x1d(k\x03\x001Q0",
                                 "中文".encode("gb18030"), b"abc", b"\x1b!\x10", b"\xff", b"\x1d"]),
                max_size=30))
def test_command_soup_raises_only_the_typed_error(parts):
    parser = EscposParser()
    try:
        parser.feed(b"".join(parts))
        parser.close()
    except EscposParseError:
        pass


def test_the_image_barcode_is_a_raster_that_decodes_to_the_tube_id():
    # barcode = "image": python-escpos renders the Code 128 (GS v 0); every module 2 dots wide
    for tube_id in ["DG032611230001", "DG032611230002", "SWABTEST123456"]:
        label = tube_label(tube_id, "莞城体育馆 3号采样台", "t03", "2026-11-23 10:41", 20)
        hw, sw = render(label), render(label, barcode="image")
        [printed_hw], [printed_sw] = parse(hw), parse(sw)
        assert printed_hw.images == 0 and printed_sw.images == 1
        assert printed_hw.barcodes == printed_sw.barcodes == (("CODE128", tube_id),)
        assert printed_sw.lines == printed_hw.lines
        start = sw.index(b"\x1dv0")
        assert (sw[start + 4] | sw[start + 5] << 8) * 8 <= 384  # fits 58 mm paper
        assert b"\x1dk" not in sw  # no printer barcode command at all


def test_the_image_barcode_prints_nothing_on_stdout(capsys):
    render(tube_label("DG032611230001", "site", "t03", "now", 20), barcode="image")
    assert capsys.readouterr().out == ""


def test_an_unknown_barcode_mode_is_refused():
    with pytest.raises(LabelError):
        render(tube_label("DG032611230001", "site", "t03", "now", 20), barcode="laser")
