"""Full disk, read-only card, damaged files: refused or reported, nothing stored is lost."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import uuid

import pytest

from firmware_app import segments
from firmware_app.store import Store, StoreCorrupt, StoreFull, StoreReadOnly
from tests.store_fixtures import sample


def seqs(store):
    return [r["seq"] for r in store.iter_records()]


def test_enospc_at_the_write_refuses_batch_and_keeps_earlier_records(tmp_path, monkeypatch):
    s = Store(tmp_path)
    s.append([sample(n) for n in range(1, 4)])
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segments.os, "write", full)
    with pytest.raises(StoreFull) as err:
        s.append([sample(4), sample(5)])
    assert "已满" in err.value.message and "NOT saved" in err.value.message_en
    assert seqs(s) == [1, 2, 3]
    assert not [n for n in os.listdir(tmp_path / "segments") if n.endswith(".tmp")]
    monkeypatch.setattr(segments.os, "write", real_write)
    s.append([sample(4)])  # space back: the kiosk goes on, same seq accepted
    s.close()
    with Store(tmp_path) as s:
        assert seqs(s) == [1, 2, 3, 4]


def _mount_tmpfs(path, size="256k"):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")


@pytest.fixture
def tiny_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    _mount_tmpfs(mnt)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_disk(tiny_fs):
    s = Store(tiny_fs / "data")
    seq, stored = 0, []
    with pytest.raises(StoreFull):
        for _ in range(10_000):  # bounded: a 256 KiB tmpfs fills long before
            batch = [sample(seq + 1, pad="x" * 300), sample(seq + 2, pad="x" * 300)]
            s.append(batch)
            seq += 2
            stored += [r["seq"] for r in batch]
    assert len(stored) > 50
    assert seqs(s) == stored
    s.close()
    with Store(tiny_fs / "data", read_only=True) as again:
        assert seqs(again) == stored  # what was accepted is all there, whole


def test_real_read_only_card_at_boot(tiny_fs):
    with Store(tiny_fs / "data") as s:
        s.append([sample(1), sample(2)])
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    with pytest.raises(StoreReadOnly) as err:
        Store(tiny_fs / "data")
    assert "只读" in err.value.message and "read-only" in err.value.message_en
    with Store(tiny_fs / "data", read_only=True) as again:  # `status`, `tube`, `export` still work
        assert seqs(again) == [1, 2]


def test_card_turning_read_only_mid_session(tmp_path, monkeypatch):
    s = Store(tmp_path)
    s.append([sample(1), sample(2)])
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(segments.os, "open", read_only)
    with pytest.raises(StoreReadOnly) as err:
        s.append([sample(3)])
    assert "NOT saved" in err.value.message_en
    monkeypatch.setattr(segments.os, "open", real_open)
    assert seqs(s) == [1, 2]
    s.close()


def _segment_files(d):
    return sorted(os.path.join(d, "segments", n) for n in os.listdir(os.path.join(d, "segments")) if n.endswith(".json"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_segment_is_reported_never_replaced(tmp_path, damage, monkeypatch):
    monkeypatch.setattr("firmware_app.store.SEGMENT_BYTES", 3000)
    with Store(tmp_path) as s:
        for n in range(1, 41, 2):
            s.append([sample(n), sample(n + 1)])
    files = _segment_files(tmp_path)
    victim = files[1]
    raw = open(victim, "rb").read()
    with open(victim, "wb") as f:
        if damage == "truncate":
            f.write(raw[: len(raw) * 2 // 3])
        elif damage == "garbage":
            f.write(raw[:200] + os.urandom(300) + raw[500:])
    with pytest.raises(StoreCorrupt) as err:
        Store(tmp_path)
    assert err.value.path == victim
    assert victim in err.value.message_en and "damaged" in err.value.message_en
    # the damaged file is left exactly as found, never overwritten by an empty one
    assert os.path.getsize(victim) > 0 or damage == "empty"

    report = Store.repair(tmp_path)
    assert [e["file"] for e in report] == [victim]
    assert os.path.exists(report[0]["moved_to"])  # the damaged bytes are kept for forensics
    victim_seqs = _seqs_in(raw)
    with Store(tmp_path) as s:
        left = seqs(s)
    # every other segment is intact, plus whatever whole records the damaged one still held
    assert [n for n in range(1, 41) if n not in victim_seqs] == [n for n in left if n not in victim_seqs]
    assert len([n for n in left if n in victim_seqs]) == report[0]["recovered"]
    if damage == "truncate":
        assert 0 < report[0]["recovered"] < len(victim_seqs)


def _seqs_in(raw: bytes) -> set[int]:
    return {int(k) for k in json.loads(raw)["records"]}


def test_damaged_newest_segment_never_reuses_a_record_id(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(n) for n in range(1, 6)])
    victim = _segment_files(tmp_path)[-1]
    raw = open(victim, "rb").read()
    open(victim, "wb").write(raw[: len(raw) // 2])
    with pytest.raises(StoreCorrupt):
        Store(tmp_path)
    report = Store.repair(tmp_path)
    assert report[0]["recovered"] >= 1
    with Store(tmp_path) as s:
        assert s.last_seq() >= 5 + 1000  # the lost tail's ids are skipped, never reused


def test_leftover_temp_file_from_a_crash_is_ignored(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)])
    seg = _segment_files(tmp_path)[0]
    open(seg + ".tmp", "wb").write(b'{"records": {"1": {"seq"')  # crash before rename
    with Store(tmp_path) as s:
        assert seqs(s) == [1]
    assert not os.path.exists(seg + ".tmp")


def test_torn_ack_line_means_resend_not_loss(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1), sample(2), sample(3)])
        s.ack([r["record_id"] for r in s.outbox(1)])
    acks = _segment_files(tmp_path)[0][:-5] + ".acks"
    with open(acks, "ab") as f:
        f.write(b'{"at": 1, "seqs": [2')  # power cut in the middle of the next ack
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox(10)] == [2, 3]
        assert s.stats()["damage"] == []


def test_damaged_meta_is_reported(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)])
        s.set_meta("k", 1)
    open(tmp_path / "meta.json", "wb").write(b"\x00\x00garbage")
    with pytest.raises(StoreCorrupt) as err:
        Store(tmp_path)
    assert err.value.path.endswith("meta.json")
    Store.repair(tmp_path)
    with Store(tmp_path) as s:
        assert seqs(s) == [1]
        assert s.get_meta("k") is None


def test_a_flipped_digit_in_an_id_number_is_caught(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1, person=0), sample(2, person=1), sample(3, person=2)])
    seg = _segment_files(tmp_path)[0]
    raw = open(seg, "rb").read()
    flipped = raw.replace(b"440301199001011234", b"440301199001011235")  # still valid JSON
    assert flipped != raw
    open(seg, "wb").write(flipped)
    with pytest.raises(StoreCorrupt) as err:
        Store(tmp_path)
    assert "checksum" in err.value.message_en and err.value.salvageable == 2
    Store.repair(tmp_path)
    with Store(tmp_path) as s:
        assert seqs(s) == [1, 3]  # the wrong record is never passed on as a person's
