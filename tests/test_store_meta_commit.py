"""append(records, meta=...): a step's records and the label queue in ONE durable write."""

from __future__ import annotations

import errno
import os

import pytest

from firmware_app import segments, store as store_mod
from firmware_app.store import Store, StoreCorrupt, StoreFull
from tests.store_fixtures import event, sample

LABEL = [{"ref": "DG032611230001", "label": {"kind": "tube", "barcode": "DG032611230001", "lines": []},
          "queued_at": 1.0}]


def test_meta_committed_with_records_survives_a_restart(tmp_path):
    s = Store(tmp_path)
    s.append([event(1, "tube_open", tube_id="DG032611230001"), sample(2)], meta={"pending_labels": LABEL})
    assert s.get_meta("pending_labels") == LABEL
    s.close()  # a crash leaves the same files: nothing of the meta is written on close
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.iter_records()] == [1, 2]
        assert s.get_meta("pending_labels") == LABEL


def test_the_newest_write_of_a_key_wins_whichever_way_it_was_written(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)], meta={"pending_labels": LABEL})
        s.set_meta("pending_labels", [])  # the printer printed it
    with Store(tmp_path) as s:
        assert s.get_meta("pending_labels") == []  # never printed twice after a restart
        s.append([sample(2)], meta={"pending_labels": LABEL * 2})
        s.append([sample(3)])  # a later step without labels keeps the queue
    with Store(tmp_path) as s:
        assert s.get_meta("pending_labels") == LABEL * 2
        s.set_meta("other", 1)  # another key in meta.json does not shadow it
    with Store(tmp_path) as s:
        assert s.get_meta("pending_labels") == LABEL * 2 and s.get_meta("other") == 1


def test_carried_meta_survives_new_segments_and_pruning_the_old_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "SEGMENT_BYTES", 2048)
    with Store(tmp_path, archive_days=0) as s:
        s.append([sample(1)], meta={"pending_labels": LABEL})
        for n in range(2, 40):
            s.append([sample(n)])
        assert s.stats()["segments"] > 3
        s.ack([r["record_id"] for r in s.outbox(1000)][:-1])
        assert s.prune(now=10**10) > 0  # the segment the label was written in is gone
        assert s.get_meta("pending_labels") == LABEL
    with Store(tmp_path) as s:
        assert s.get_meta("pending_labels") == LABEL


def test_a_full_disk_stores_neither_the_records_nor_the_label(tmp_path, monkeypatch):
    s = Store(tmp_path)
    s.append([sample(1)], meta={"pending_labels": []})
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segments.os, "write", full)
    with pytest.raises(StoreFull):
        s.append([sample(2)], meta={"pending_labels": LABEL})
    assert s.get_meta("pending_labels") == []
    monkeypatch.setattr(segments.os, "write", real_write)
    s.append([sample(3)])  # the next write must not carry the refused label either
    s.close()
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.iter_records()] == [1, 3]
        assert s.get_meta("pending_labels") == []


def test_a_labelled_step_costs_the_same_fsyncs_as_a_plain_one(tmp_path, monkeypatch):
    with Store(tmp_path) as s:
        s.append([sample(1)])
        calls = []
        real = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
        s.append([sample(2)])
        plain = len(calls)
        calls.clear()
        s.append([sample(3)], meta={"pending_labels": LABEL})
        assert len(calls) == plain == 2  # the segment file and its directory; meta.json untouched


def test_a_flipped_byte_in_a_carried_label_is_reported(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)], meta={"pending_labels": LABEL})
    path = tmp_path / "segments" / "0000000001.json"
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"DG032611230001\",\"lines", b"DG032611230007\",\"lines"))
    assert path.read_bytes() != raw
    with pytest.raises(StoreCorrupt) as err:
        Store(tmp_path)
    assert err.value.path == str(path)
