"""`swabkiosk simulate --days N --people-per-day M`: days filled through the real station and
store, checked only through public interfaces (the store, `tube`, `status`, `export`)."""

from __future__ import annotations

import collections
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_app.model import POOL_CAPACITY
from firmware_app.store import Store

ROOT = Path(__file__).resolve().parent.parent
DAYS, PEOPLE = 3, 200


def swabkiosk(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "firmware_app", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[Path, dict]:
    data = tmp_path_factory.mktemp("month") / "data"
    out = swabkiosk("simulate", "--days", str(DAYS), "--people-per-day", str(PEOPLE), "--data-dir", str(data),
                    "--no-pacing", "--json")
    return data, json.loads(out.stdout)


def live_samples(records: list[dict]) -> list[dict]:
    voided = {r["voided_record_id"] for r in records if r["kind"] == "void"}
    return [r for r in records if r["kind"] == "sample" and r["record_id"] not in voided]


def test_summary_counts_every_person(filled):
    data, summary = filled
    assert summary["days"] == DAYS and summary["registered"] == DAYS * PEOPLE
    assert summary["records"] == summary["seq_range"][1] and summary["db_bytes"] > 0
    assert summary["boxes"] >= DAYS  # at least the end-of-day box each day


def test_every_days_people_are_there_and_tubes_within_capacity(filled):
    data, summary = filled
    with Store(str(data), read_only=True) as store:
        records = list(store.iter_records())
        days = sorted({r["at"][:10] for r in records})
        assert len(days) == DAYS and days[0] == summary["first_day"] and days[-1] == summary["last_day"]
        for day in days:
            mine = list(store.iter_records(day))
            samples = [r for r in mine if r["kind"] == "sample"]
            voids = [r for r in mine if r["kind"] == "void"]
            # every arrival is one sample (a confirmed duplicate too); voids are extra records
            assert len(samples) == PEOPLE, day
            assert {r["kind"] for r in mine} >= {"shift_start", "shift_end", "tube_open", "tube_close", "label",
                                                 "box_open", "box_count", "box_close", "box_handover"}
            assert len(live_samples(mine)) == PEOPLE - len(voids)
            # every tube of the day closed, every box handed over
            opened = {r["tube_id"] for r in mine if r["kind"] == "tube_open"}
            assert opened == {r["tube_id"] for r in mine if r["kind"] == "tube_close"}
            assert {r["box_id"] for r in mine if r["kind"] == "box_open"} == \
                {r["box_id"] for r in mine if r["kind"] == "box_handover"}
        stored_ids = [r["record_id"] for r in records]
        assert len(stored_ids) == len(set(stored_ids))
        seqs = [r["seq"] for r in records]
        assert seqs == list(range(1, len(records) + 1))
    by_tube = collections.Counter(r["tube_id"] for r in records if r["kind"] == "sample")
    capacity = {r["tube_id"]: r["capacity"] for r in records if r["kind"] == "tube_open"}
    assert all(n <= capacity[t] <= POOL_CAPACITY["10"] for t, n in by_tube.items())
    # tube ids never reused: each opened once, over all days
    opens = [r["tube_id"] for r in records if r["kind"] == "tube_open"]
    assert len(opens) == len(set(opens))
    boxes = [r["box_id"] for r in records if r["kind"] == "box_open"]
    assert len(boxes) == len(set(boxes))
    # the scenario's variety: singles, confirmed duplicates, voids, codes and cards
    samples = [r for r in records if r["kind"] == "sample"]
    assert any(r["single_reason"] == "yellow_code" and r["capacity"] == 1 for r in samples)
    assert any(r["duplicate_of"] for r in samples)
    assert {r["source"] for r in samples} == {"idcard", "qr"}
    assert any(r["kind"] == "void" for r in records)


def test_tube_status_and_export_commands_see_the_days(filled, tmp_path):
    data, summary = filled
    with Store(str(data), read_only=True) as store:
        day = summary["last_day"]
        samples = live_samples(list(store.iter_records(day)))
        count = len(list(store.iter_records(day)))
    tube_id = samples[-1]["tube_id"]
    members = [r for r in samples if r["tube_id"] == tube_id]
    report = json.loads(swabkiosk("tube", "--data-dir", str(data), tube_id, "--json").stdout)
    assert report["count"] == len(members)
    assert {p["record_id"] for p in report["people"] if not p["void"]} == {r["record_id"] for r in members}
    status = swabkiosk("status", "--data-dir", str(data), "--json")
    doc = json.loads(status.stdout)
    text = json.dumps(doc)
    assert str(summary["seq_range"][1]) in text  # the watermark: last seq
    out = tmp_path / "day.csv"
    swabkiosk("export", "--data-dir", str(data), "--day", day, "--csv", str(out))
    with open(out, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == count and sum(r["kind"] == "sample" for r in rows) == PEOPLE


def test_a_second_fill_continues_above_the_first(tmp_path):
    """Filling the same data dir again (another seed) continues seq and ids: nothing reissued."""
    data = tmp_path / "data"
    first = json.loads(swabkiosk("simulate", "--days", "1", "--people-per-day", "30", "--data-dir", str(data),
                                 "--no-pacing", "--acked", "--json").stdout)
    assert first["backlog"] == 0  # --acked: as if a broker had every record
    second = json.loads(swabkiosk("simulate", "--days", "1", "--people-per-day", "30", "--data-dir", str(data),
                                  "--no-pacing", "--seed", "7", "--json").stdout)
    assert second["seq_range"][0] == first["seq_range"][1] + 1
    with Store(str(data), read_only=True) as store:
        records = list(store.iter_records())
    opens = [r["tube_id"] for r in records if r["kind"] == "tube_open"]
    assert len(opens) == len(set(opens))
    assert second["backlog"] == second["records"]  # the second fill was not acknowledged


def test_needs_a_data_dir():
    out = swabkiosk("simulate", "--days", "1", check=False)
    assert out.returncode == 2 and "--data-dir" in out.stderr


def test_forty_days_do_not_outgrow_the_identifier_marks(tmp_path):
    """Each day brings new tube and box number stems (SIM1-B261101, SIM1261101, ...): a kiosk that
    has worked longer than a month must still store (the station drops earlier days' stems; the
    store's marks must not keep them all, or its high-water file overflows after ~27 days)."""
    data = tmp_path / "data"
    summary = json.loads(swabkiosk("simulate", "--days", "40", "--people-per-day", "12", "--data-dir", str(data),
                                   "--no-pacing", "--json").stdout)
    assert summary["registered"] == 40 * 12
