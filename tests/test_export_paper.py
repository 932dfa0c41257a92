"""The paper trail as a site manager and a district operator use it: the register PDF (rendered
with poppler's pdftoppm and read back with pdftotext), the XLSX read back with openpyxl, the
CSV as Excel would take it, and the export's refusals."""

from __future__ import annotations

import csv
import os
import shutil
import stat
import subprocess
import sys

import pytest

from firmware_app.register import build_register
from firmware_app.textsafe import csv_cell
from tests.broker import ROOT
from tests.register_fixtures import DAY, sampling_day, store_day

needs_poppler = pytest.mark.skipif(not shutil.which("pdftotext") or not shutil.which("pdftoppm"),
                                   reason="poppler-utils not installed (bin/bootstrap --test installs it)")


def run(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "firmware_app", *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    table, expect = sampling_day()
    path = store_day(tmp_path_factory.mktemp("paper") / "data", table)
    return path, table.records, expect


def samples(records):
    return [r for r in records if r["kind"] == "sample"]


def pdf_text(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------- the register


@needs_poppler
def test_register_pdf_holds_every_tube_person_and_signature_line(day, tmp_path):
    data, records, _ = day
    pdf = tmp_path / "register.pdf"
    r = run("export", "--day", DAY, "--register", str(pdf), "--data-dir", data, "--site-name", "莞城体育馆 3号台")
    assert stat.S_IMODE(os.stat(pdf).st_mode) == 0o600
    assert "16 人" in r.stdout and "不含作废 1" in r.stdout and "voided entries not counted: 1" in r.stdout
    text = pdf_text(pdf)
    assert "混采检测登记表" in text and "莞城体育馆 3号台" in text and DAY in text
    tubes = {s["tube_id"] for s in samples(records)} | {r["tube_id"] for r in records if r["kind"] == "tube_replace"}
    for tube in tubes:
        assert tube in text, tube
    for s in samples(records):  # full numbers: this is the district's paper
        assert s["name"] in text and s["id_number"] in text, s["name"]
        if s["phone"]:
            assert s["phone"] in text
    blocks = text[:text.index("转运箱交接汇总")]
    assert blocks.count("采样人签字") == blocks.count("转运人签字") == blocks.count("接收人签字") == 4  # 5 tubes, 1 broken
    assert "顺丰张师傅" in text  # the courier of the handed-over box
    summary = text[text.index("转运箱交接汇总"):]  # the boxes, to sign for at the lab
    assert all(r["box_id"] in summary for r in records if r["kind"] == "box_open")
    assert "一户一管" in text and "10混1" in text and "红码单管" in text and "手工录入" in text
    assert "李志愿" in text  # the sampler by name, not only the certificate id
    assert "作废" in text and "原管转入" in text and "不送检" in text
    # layout: poppler renders it as A4 pages
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages
    from PIL import Image
    with Image.open(pages[0]) as im:
        w, h = im.size
        assert abs(h / w - 297 / 210) < 0.01
        lo, hi = im.convert("L").getextrema()
        assert lo < 60 and hi > 200  # text on white, not a blank page


@needs_poppler
def test_register_of_one_tube_follows_its_replacement_and_of_one_box_lists_its_tubes(day, tmp_path):
    data, records, expect = day
    replace = next(r for r in records if r["kind"] == "tube_replace")
    pdf = tmp_path / "tube.pdf"
    run("export", "--tube", replace["old_tube_id"], "--register", str(pdf), "--data-dir", data)
    text = pdf_text(pdf)
    assert replace["old_tube_id"] in text and replace["tube_id"] in text
    moved = [s for s in samples(records) if s["record_id"] in replace["samples"]]
    assert moved and all(s["id_number"] in text for s in moved)
    first_tube = samples(records)[0]["tube_id"]
    assert first_tube not in text
    box = tmp_path / "box.pdf"
    run("export", "--box", expect["first_box"], "--register", str(box), "--data-dir", data)
    text = pdf_text(box)
    in_box = [r["tube_id"] for r in records if r["kind"] == "box_add" and r["box_id"] == expect["first_box"]]
    assert all(t in text for t in in_box) and "顺丰张师傅" in text
    household = [s for s in samples(records) if s["pool_mode"] == "household"]
    assert household and household[0]["tube_id"] not in text  # it went into the second box
    assert run("export", "--tube", "NOPE", "--register", str(pdf), "--data-dir", data, check=False).returncode == 1


def test_the_register_model_never_counts_a_void_or_a_moved_person_twice(day):
    _, records, _ = day
    reg = build_register(records)
    voided = {r["voided_record_id"] for r in records if r["kind"] == "void"}
    assert reg.people == len(samples(records)) - len(voided) == 16 and reg.voided == 1
    broken = next(t for t in reg.tubes if t.replaced_by)
    assert broken.people == [] and broken.count == 0
    household = next(t for t in reg.tubes if t.pool_mode == "household")
    assert household.count == 3


# ---------------------------------------------------------------- XLSX


def test_xlsx_keeps_id_numbers_and_phones_as_text(day, tmp_path):
    from openpyxl import load_workbook
    data, records, expect = day
    out = tmp_path / "day.xlsx"
    run("export", "--day", DAY, "--xlsx", str(out), "--data-dir", data)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    wb = load_workbook(out)
    assert wb.sheetnames == [DAY, "试管 tubes", "转运箱 boxes"]
    ws = wb[DAY]
    header = [c.value for c in ws[2]]
    rows = [[c for c in row] for row in ws.iter_rows(min_row=3)]
    by_record = {row[header.index("记录号 Record id")].value: row for row in rows}
    for s in samples(records):
        row = by_record[s["record_id"]]
        cell = row[header.index("证件号码 ID number")]
        assert cell.data_type == "s" and cell.value == s["id_number"], s["id_number"]
        phone = row[header.index("电话 Phone")]
        assert phone.data_type == "s" and phone.value == s["phone"]
    ids = [row[header.index("证件号码 ID number")].value for row in rows]
    assert all(x in ids for x in expect["x_ids"])  # the X check character kept
    assert "0E1234567" in ids  # a passport number's leading zero kept
    assert "02087654321" in [row[header.index("电话 Phone")].value for row in rows]  # a landline's too
    hyper = next(row for row in rows if row[header.index("姓名 Name")].value == "=HYPERLINK(1)")
    assert hyper[header.index("姓名 Name")].data_type == "s"  # text, never a formula
    assert "不含作废 1" in ws["A1"].value and "voided entries not counted" in ws["A1"].value
    tubes = wb["试管 tubes"]
    assert tubes.max_row - 2 == 5
    boxes = [[c.value for c in row] for row in wb["转运箱 boxes"].iter_rows(min_row=3)]
    assert boxes[0][0] == expect["first_box"] and boxes[0][5] == "顺丰张师傅"


# ---------------------------------------------------------------- CSV


@pytest.mark.parametrize("raw, shown", [
    ("=1+1", "'=1+1"), ("+8613800000000", "'+8613800000000"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1+1", "'=1+1"), ("\r=1+1", "'=1+1"), ("\n=1+1", "'=1+1"), ("\x01=cmd", "'=cmd"),
    ("张\n三", "张三"), ("李\x00四\x7f", "李四"), ("\u202eevil", "evil"), ("44010419800101018X", "44010419800101018X"),
    ("", ""), (None, ""), (12, "12"),
])
def test_csv_cells_are_never_formulas_and_carry_no_control_characters(raw, shown):
    assert csv_cell(raw) == shown


def test_csv_export_escapes_what_a_person_typed(day, tmp_path):
    data, records, _ = day
    out = tmp_path / "day.csv"
    run("export", "--day", DAY, "--csv", str(out), "--data-dir", data)
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert len(rows) == len(records)
    assert "'=HYPERLINK(1)" in [r["name"] for r in rows]
    assert "'+8613800000000" in [r["phone"] for r in rows]


@pytest.mark.parametrize("bad", ["2026-13-45", "2026-02-30", "23/11/2026", "2026-1-5", "yesterdayish"])
def test_export_refuses_a_day_that_is_not_a_date(day, tmp_path, bad):
    data, _, _ = day
    r = run("export", "--day", bad, "--csv", str(tmp_path / "x.csv"), "--data-dir", data, check=False)
    assert r.returncode == 2 and bad in r.stderr and not (tmp_path / "x.csv").exists()


def test_a_day_without_records_writes_nothing_and_says_so(day, tmp_path):
    data, _, _ = day
    r = run("export", "--day", "2026-11-24", "--register", str(tmp_path / "x.pdf"), "--data-dir", data, check=False)
    assert r.returncode == 1 and "no records of 2026-11-24" in r.stderr and not (tmp_path / "x.pdf").exists()


def test_export_needs_an_output_and_a_scope(day, tmp_path):
    data, _, _ = day
    assert run("export", "--day", DAY, "--data-dir", data, check=False).returncode == 2
    r = run("export", "--register", str(tmp_path / "x.pdf"), "--data-dir", data, check=False)
    assert r.returncode == 2 and "--day" in r.stderr


# ---------------------------------------------------------------- a busy day
