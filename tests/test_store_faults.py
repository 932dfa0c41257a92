"""Full disk, read-only card, damaged database, the legacy import: refused or reported, nothing stored is lost."""

from __future__ import annotations

import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from firmware_app.daemon import open_store
from firmware_app.store import Store, StoreCorrupt, StoreError, StoreFull, StoreReadOnly
from tests.store_fixtures import DEVICE, sample

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_store.tar.gz"


def seqs(store):
    return [r["seq"] for r in store.iter_records()]


def rid(seq: int) -> str:
    return f"{DEVICE}-{seq:010d}"


@pytest.fixture
def tiny_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_disk_refuses_the_batch_keeps_the_rest_and_recovers_when_space_returns(tiny_fs):
    s = Store(tiny_fs / "data")
    seq, stored = 0, []
    with pytest.raises(StoreFull) as err:
        for _ in range(20_000):  # bounded: a 1 MiB tmpfs fills long before
            batch = [sample(seq + 1, pad="x" * 300), sample(seq + 2, pad="x" * 300)]
            s.append(batch, meta={"queue": seq})
            seq += 2
            stored += [r["seq"] for r in batch]
    assert "存储空间已满" in err.value.message and "storage full" in err.value.message_en.lower()
    assert len(stored) > 20
    assert seqs(s) == stored and s.get_meta("queue") == seq - 2
    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_fs)], check=True)  # space is back
    s.append([sample(seq + 1)])
    s.close()
    with Store(tiny_fs / "data", read_only=True) as again:
        assert seqs(again) == stored + [seq + 1]


def test_real_read_only_card_at_boot(tiny_fs):
    with Store(tiny_fs / "data") as s:
        s.append([sample(1), sample(2)])
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    with pytest.raises(StoreReadOnly) as err:
        Store(tiny_fs / "data")
    assert "只读" in err.value.message and "read-only" in err.value.message_en
    with Store(tiny_fs / "data", read_only=True) as again:  # `status`, `tube`, `export` still work
        assert seqs(again) == [1, 2]


@pytest.mark.parametrize("damage", ["header", "empty_tables", "truncated"])
def test_a_damaged_database_is_refused_at_open_and_repaired_never_deleted(tmp_path, damage):
    with Store(tmp_path) as s:
        s.append([sample(1), sample(2)], marks={"seq": 2, "numbers": {"T": 1}})
    db = tmp_path / "kiosk.db"
    raw = db.read_bytes()
    if damage == "header":
        db.write_bytes(b"garbage!" * 4 + raw[32:])
    elif damage == "empty_tables":
        db.write_bytes(raw[:100] + os.urandom(len(raw) - 100))
    else:
        db.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(StoreCorrupt) as err:
        Store(tmp_path)
    assert err.value.path == str(db) and "damaged" in err.value.message_en
    report = Store.repair(tmp_path)
    assert len(report) == 1 and report[0]["what"] == "repair"
    assert os.path.exists(report[0]["moved_to"])  # set aside, never deleted
    assert report[0]["kept"] + report[0]["lost"] >= 2 and report[0]["lost"] >= 1
    with Store(tmp_path) as s:
        assert s.reports() == report
        assert s.high_water()["seq"] >= 2 + 200 and s.high_water()["numbers"]["T"] >= 1 + 20  # the reservation
        s.append([sample(s.last_seq() + 1)])


def _damage_one_records_page(db: Path, seq: int) -> None:
    raw = bytearray(db.read_bytes())
    at = raw.index(f'"record_id":"{rid(seq)}"'.encode())
    page = at // 4096 * 4096
    raw[page + 8: page + 4096] = os.urandom(4096 - 8)
    db.write_bytes(bytes(raw))


def test_a_damaged_page_keeps_every_other_record(tmp_path):
    with Store(tmp_path) as s:
        for n in range(1, 2001, 50):
            s.append([sample(k, pad="p" * 200) for k in range(n, n + 50)])
        s.ack([rid(n) for n in range(1, 1001)])
    _damage_one_records_page(tmp_path / "kiosk.db", 1500)
    s = open_store(str(tmp_path))  # the daemon's start: damage is found, repaired, never blocks the start
    try:
        if not s.reports():  # the cheap open check read only the newest page: the damage shows on a read
            with pytest.raises(StoreCorrupt):
                seqs(s)
            s.close()
            report = Store.repair(tmp_path)
            s = Store(tmp_path)
        report = s.reports()[-1]
        assert 0 < report["lost"] < 50 and report["kept"] == 2000 - report["lost"]
        left = seqs(s)
        assert len(left) == report["kept"] and 1 in left and 2000 in left
        assert s.stats()["archived"] == len([n for n in left if n <= 1000])
        assert os.listdir(tmp_path / "damaged")
    finally:
        s.close()


def test_legacy_segment_layout_is_imported_once_with_acks_meta_and_a_loss_report(tmp_path):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path)
    d = tmp_path / "data"
    with Store(d) as s:
        (report,) = s.reports()
        assert report["what"] == "import" and report["kept"] == 129 and report["lost"] == 1
        assert os.path.isdir(Path(report["moved_to"]) / "segments")  # the old files, kept
        assert not (d / "segments").exists() and not (d / "meta.json").exists()
        st_ = s.stats()
        assert st_["backlog"] + st_["backlog_events"] == 30  # the torn ack line only means resend
        assert st_["archived"] == 99
        assert s.get_meta("uplink")["updated_at"] == 1764000200
        assert s.get_meta("pending_labels") == [{"n": 126, "tube": "T0012"}]
        assert s.last_seq() >= 130 + 10_000  # a segment lost a record: seqs jump, never reused
        lost = sorted(set(range(1, 131)) - set(seqs(s)))
        assert len(lost) == 1
        s.append([sample(s.last_seq() + 1)])
    with Store(d) as s:
        assert len(s.reports()) == 1 and len(seqs(s)) == 130


def test_a_second_process_repair_while_the_daemon_runs_is_refused(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)])
        (tmp_path / "kiosk.db").write_bytes(b"x" * 4096)
        with pytest.raises(StoreError):
            Store.repair(tmp_path)
