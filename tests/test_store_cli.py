"""`swabkiosk status / tube / export` as a technician and a district operator run them."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import stat
import subprocess
import sys
import time

from firmware_app.store import Store
from tests.broker import ROOT
from tests.store_fixtures import CST, ID_NUMBERS, event, sample

FULL_IDS = ID_NUMBERS


def run(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "firmware_app", *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def day_store(path):
    at = dt.datetime(2026, 11, 23, 9, 0, tzinfo=CST).timestamp()
    with Store(path) as s:
        s.append([event(1, "tube_open", tube="T1", at=at)])
        s.append([sample(2, tube="T1", person=0, at=at + 1), sample(3, tube="T1", person=1, at=at + 2)])
        s.append([sample(4, tube="T1", person=2, at=at + 3)])
        s.append([event(5, "void", tube="T1", at=at + 4, voided_record_id="gd-dg-0001-t03-0000000003", reason="mistaken_entry")])
        s.append([event(6, "tube_replace", tube="T2", at=at + 5, old_tube_id="T1", reason="broken",
                        samples=["gd-dg-0001-t03-0000000002", "gd-dg-0001-t03-0000000003", "gd-dg-0001-t03-0000000004"])])
        s.append([event(7, "tube_close", tube="T2", at=at + 6, reason="end_of_queue")])
        s.append([sample(8, tube="T9", at=at + 86400)])  # next day
        s.ack(["gd-dg-0001-t03-0000000001", "gd-dg-0001-t03-0000000002"])
    return path


def test_status_json(tmp_path):
    d = day_store(tmp_path / "data")
    out = json.loads(run("status", "--data-dir", str(d), "--json").stdout)
    assert out["backlog"] == 3 and out["backlog_events"] == 3 and out["archived"] == 2
    assert out["broker"]["connected"] is False
    assert out["oldest_unsent_age_s"] > 0 and out["last_ack_at"] > 0


def test_status_lists_the_days_export_can_take(tmp_path):
    """export's "no records of that day" points at `status` for the days the store holds: it lists them."""
    d = day_store(tmp_path / "data")
    out = json.loads(run("status", "--data-dir", str(d), "--json").stdout)["days"]
    text = run("status", "--data-dir", str(d)).stdout
    for day, counts in out.items():
        assert f"{day}：{counts['people']} 人" in text and f"{day}: {counts['people']} people" in text, text
    assert sorted(out) == ["2026-11-23", "2026-11-24"]


def test_status_shows_a_dead_daemons_broker_state_as_not_connected(tmp_path):
    d = day_store(tmp_path / "data")
    with Store(d) as s:
        s.set_meta("uplink", {"connected": True, "url": "mqtts://x:8883", "pid": 2**22 + 1, "since": time.time()})
    out = json.loads(run("status", "--data-dir", str(d), "--json").stdout)
    assert out["broker"]["connected"] is False and "not running" in out["broker"]["error_en"]
    with Store(d) as s:
        s.set_meta("uplink", {"connected": True, "url": "mqtts://x:8883", "pid": os.getpid(), "since": time.time()})
    out = json.loads(run("status", "--data-dir", str(d), "--json").stdout)
    assert out["broker"]["connected"] is True
    text = run("status", "--data-dir", str(d)).stdout
    assert "Backlog" in text and "3 人 people" in text and "connected" in text


def test_status_shows_the_raw_broker_reason_on_the_technicians_line(tmp_path):
    """The uplink keeps the raw reason (TLS, paho, the address) apart from the volunteer's words."""
    d = day_store(tmp_path / "data")
    raw = "mqtts://broker.example:8883: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    state = {"connected": False, "url": "mqtts://broker.example:8883", "pid": os.getpid(), "since": time.time(),
             "error": "无法验证服务器证书", "error_en": "Cannot verify the broker's certificate", "error_raw": raw}
    with Store(d) as s:
        s.set_meta("uplink", state)
    assert json.loads(run("status", "--data-dir", str(d), "--json").stdout)["broker"]["error_raw"] == raw
    text = run("status", "--data-dir", str(d)).stdout.splitlines()
    at = text.index("    Cannot verify the broker's certificate")
    assert text[at - 1] == "    无法验证服务器证书" and text[at + 1] == f"    ({raw})"
    with Store(d) as s:  # a raw reason cannot carry a terminal escape in
        s.set_meta("uplink", {**state, "error_raw": "refused\x1b[2J\nfake line"})
    assert "    (refused[2Jfake line)" in run("status", "--data-dir", str(d)).stdout.splitlines()
    with Store(d) as s:  # a dead daemon's raw reason goes with its words
        s.set_meta("uplink", {**state, "pid": 2**22 + 1})
    out = json.loads(run("status", "--data-dir", str(d), "--json").stdout)["broker"]
    assert "not running" in out["error_en"] and out["error_raw"] == ""
    assert raw not in run("status", "--data-dir", str(d)).stdout


def test_status_works_beside_a_running_writer(tmp_path):
    d = day_store(tmp_path / "data")
    with Store(d):  # the daemon holds the store
        assert json.loads(run("status", "--data-dir", str(d), "--json").stdout)["backlog"] == 3


def test_status_reports_damage_and_repairs(tmp_path):
    d = day_store(tmp_path / "data")
    db = d / "kiosk.db"
    db.write_bytes(b"not a database!!" + db.read_bytes()[16:])
    r = run("status", "--data-dir", str(d), check=False)
    assert r.returncode == 1 and str(db) in r.stderr and "damaged" in r.stderr
    assert json.loads(run("status", "--data-dir", str(d), "--json", check=False).stdout)["file"] == str(db)
    r = run("status", "--data-dir", str(d), "--repair")
    assert "Repaired" in r.stdout and "could not be recovered" in r.stdout
    out = json.loads(run("status", "--data-dir", str(d), "--json").stdout)
    assert out["reports"][0]["what"] == "repair" and out["reports"][0]["lost"] >= 1
    assert os.listdir(d / "damaged")
    assert "lost" in run("status", "--data-dir", str(d)).stdout  # said in plain text too


def test_status_data_dir_from_config(tmp_path):
    d = day_store(tmp_path / "data")
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[store]\ndata_dir = "{d}"\n')
    assert json.loads(run("status", "--config", str(cfg), "--json").stdout)["archived"] == 2


def test_tube_lists_people_masked_with_voids_and_replacement(tmp_path):
    d = day_store(tmp_path / "data")
    r = run("tube", "T1", "--data-dir", str(d))
    assert all(full not in r.stdout for full in FULL_IDS)
    assert "110105********002X" in r.stdout and "张*丰" in r.stdout
    assert "VOID" in r.stdout and "REPLACED by tube T2" in r.stdout
    out = json.loads(run("tube", "T2", "--data-dir", str(d), "--json").stdout)
    assert out["replaces"] == "T1"
    assert out["count"] == 2  # three sampled, one voided, all moved to T2
    assert [p["void"] for p in out["people"]] == [False, True, False]
    assert all(p["from_tube"] == "T1" for p in out["people"])
    assert all(full not in json.dumps(out, ensure_ascii=False) for full in FULL_IDS)
    assert run("tube", "NOPE", "--data-dir", str(d), check=False).returncode == 1


def test_export_day_to_private_csv_with_full_ids(tmp_path):
    d = day_store(tmp_path / "data")
    out = tmp_path / "day.csv"
    r = run("export", "--day", "2026-11-23", "--csv", str(out), "--data-dir", str(d))
    assert "FULL ID numbers" in r.stdout and "0600" in r.stdout
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert [row["seq"] for row in rows] == ["1", "2", "3", "4", "5", "6", "7"]
    assert rows[1]["id_number"] == FULL_IDS[0] and rows[1]["name"] == "张三丰"
    assert rows[4]["void_of"] == "gd-dg-0001-t03-0000000003"
    assert [row["uploaded"] for row in rows[:3]] == ["yes", "yes", "no"]
    assert run("export", "--day", "23/11/2026", "--csv", str(out), "--data-dir", str(d), check=False).returncode == 2


def test_missing_store_is_a_clear_error(tmp_path):
    r = run("status", "--data-dir", str(tmp_path / "nothing"), check=False)
    assert r.returncode == 1 and "No store found" in r.stderr


def test_broken_station_file_is_a_clear_error(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text("store = [broken")
    r = run("status", "--config", str(cfg), check=False)
    assert r.returncode != 0 and "cannot read the station file" in r.stderr and "Traceback" not in r.stderr


def test_the_station_file_is_read_the_same_way_by_status_and_export(tmp_path):
    # one reader of the station file's values for the commands beside the daemon
    d = day_store(tmp_path / "data")
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[station]\nsite_name = "莞城体育馆"\n[store]\ndata_dir = "{d}"\n')
    xlsx = tmp_path / "day.xlsx"
    run("export", "--day", "2026-11-23", "--xlsx", str(xlsx), "--config", str(cfg))
    from openpyxl import load_workbook

    cells = [c.value for ws in load_workbook(xlsx) for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert any("莞城体育馆" in c for c in cells)
    register = ["export", "--day", "2026-11-23", "--register", str(tmp_path / "r.pdf")]
    store = f'[store]\ndata_dir = "{d}"\n'
    for cmd, text, words in [
        (["status"], "store = [broken", "cannot read the station file"),
        (["status"], "store = 5\n", "store is not a table"),
        (["status"], "[store]\ndata_dir = 5\n", "data_dir in [store] is not text"),
        (register, "station = 5\n" + store, "station is not a table"),
        (register, "[station]\nsite_name = 7\n" + store, "site_name in [station] is not text"),
    ]:
        cfg.write_text(text)
        r = run(*cmd, "--config", str(cfg), check=False)
        assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr, (text, cmd, r.stderr)
    assert not (tmp_path / "r.pdf").exists()
    # --data-dir given: a station file that cannot be read still stops the export before it writes anything
    cfg.write_text("station = 5\n")
    r = run("export", "--day", "2026-11-23", "--register", str(tmp_path / "r.pdf"), "--data-dir", str(d),
            "--config", str(cfg), check=False)
    assert r.returncode != 0 and "station is not a table" in r.stderr and not (tmp_path / "r.pdf").exists()
