"""The store keeps every record durably and forgets it from the outbox only on ack."""

from __future__ import annotations

import datetime as dt
import os
import stat
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_app.store import Store, StoreError, StoreReadOnly
from tests.store_fixtures import CST, event, sample


def ids(records):
    return [r["record_id"] for r in records]


def test_append_survives_reopen_and_outbox_is_oldest_first(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1), sample(2)])
        s.append([event(3, "tube_close", reason="full")])
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox(10)] == [1, 2, 3]
        assert [r["seq"] for r in s.outbox(2)] == [1, 2]
        assert s.last_seq() == 3
        assert s.outbox(1)[0]["name"] == "张三丰"


def test_ack_moves_records_to_archive_and_survives_reopen(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(n) for n in range(1, 6)] + [event(6, "tube_close")])
        assert s.ack(ids(s.outbox(2))) == 2
        assert s.ack(ids(s.outbox(2))[:1] + ["unknown-id"]) == 1
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox(10)] == [4, 5, 6]
        stats = s.stats()
        assert stats["backlog"] == 2  # samples only
        assert stats["backlog_events"] == 1  # the tube_close
        assert stats["archived"] == 3
        assert stats["last_ack_at"] is not None
        # archived records are still there for `tube` and `export`
        assert [r["seq"] for r in s.iter_records()] == [1, 2, 3, 4, 5, 6]


def test_stats_oldest_unsent_age(tmp_path):
    with Store(tmp_path) as s:
        assert s.stats()["oldest_unsent_age_s"] is None
        s.append([sample(1, at=time.time() - 120), sample(2)])
        assert 119 <= s.stats()["oldest_unsent_age_s"] <= 180
        s.ack(ids(s.outbox(1)))
        assert s.stats()["oldest_unsent_age_s"] < 60


def test_many_segments_keep_order(tmp_path):
    with Store(tmp_path) as s:
        for n in range(1, 401, 4):
            s.append([sample(m, tube=f"T{m // 10}") for m in range(n, n + 4)])
        assert s.stats()["segments"] > 3
        s.ack(ids(s.outbox(150)))
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox(500)] == list(range(151, 401))
        assert [r["seq"] for r in s.iter_records()] == list(range(1, 401))


def test_batch_is_all_or_nothing_on_bad_record(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)])
        with pytest.raises(ValueError):
            s.append([sample(2), {**sample(3), "kind": "nonsense"}])
        with pytest.raises(ValueError):
            s.append([sample(2), sample(2)])  # seq must grow
        with pytest.raises(ValueError):
            s.append([sample(1)])  # not above last_seq
        with pytest.raises((ValueError, TypeError)):
            s.append([{**sample(2), "photo": b"\x00"}])  # not JSON: refused before writing
        assert [r["seq"] for r in s.iter_records()] == [1]
        s.append([sample(2)])
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.iter_records()] == [1, 2]


def test_files_are_private(tmp_path):
    d = tmp_path / "data"
    with Store(d) as s:
        s.append([sample(1)])
        s.ack(ids(s.outbox(1)))
        s.set_meta("pending_label", {"tube": "T1"})
    for root, dirs, files in os.walk(d):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        for f in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode) == 0o600, f


def test_second_writer_is_refused_but_readers_are_not(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)])
        with pytest.raises(StoreError) as err:
            Store(tmp_path)
        assert "another process" in err.value.message_en
        reader = Store(tmp_path, read_only=True)
        assert [r["seq"] for r in reader.outbox(5)] == [1]
        with pytest.raises(StoreReadOnly):
            reader.append([sample(2)])


def test_meta_round_trip(tmp_path):
    with Store(tmp_path) as s:
        assert s.get_meta("pending_label", "none") == "none"
        s.set_meta("pending_label", {"tube": "T1", "copies": 1})
        s.set_meta("pending_label", {"tube": "T2", "copies": 1})
    with Store(tmp_path) as s:
        assert s.get_meta("pending_label") == {"tube": "T2", "copies": 1}


def test_iter_records_by_day(tmp_path):
    day1 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=CST).timestamp()
    day2 = day1 + 86400
    with Store(tmp_path) as s:
        s.append([sample(1, at=day1), sample(2, at=day2), sample(3, at=day2)])
        assert [r["seq"] for r in s.iter_records("2026-11-23")] == [2, 3]
        assert [r["seq"] for r in s.iter_records("2026-11-22")] == [1]


def test_prune_keeps_archive_days_and_never_the_outbox(tmp_path, monkeypatch):
    monkeypatch.setattr("firmware_app.store.SEGMENT_BYTES", 2000)
    with Store(tmp_path, archive_days=30) as s:
        for n in range(1, 61, 3):
            s.append([sample(m) for m in range(n, n + 3)])
        s.ack(ids(s.outbox(30)))
        segments = s.stats()["segments"]
        assert s.prune(now=time.time() + 29 * 86400) == 0
        removed = s.prune(now=time.time() + 31 * 86400)
        assert 0 < removed <= 30
        assert s.stats()["segments"] < segments
        # nothing unacknowledged is ever pruned
        assert [r["seq"] for r in s.outbox(100)] == list(range(31, 61))
        assert s.last_seq() == 60


def test_records_written_after_a_reopen_stay_in_the_outbox_when_the_segment_fills(tmp_path, monkeypatch):
    # Regression: after a restart the last segment was read into the cache, then written to,
    # then left behind by a new segment; the outbox served the stale copy and 7 people were
    # never sent.
    monkeypatch.setattr("firmware_app.store.SEGMENT_BYTES", 6000)
    with Store(tmp_path) as s:
        s.append([sample(n) for n in range(1, 6)])
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox(100)] == [1, 2, 3, 4, 5]
        for n in range(6, 30):
            s.append([sample(n)])
        assert s.stats()["segments"] > 1
        assert [r["seq"] for r in s.outbox(100)] == list(range(1, 30))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["append", "ack", "reopen"]), st.integers(1, 7)), max_size=25))
def test_outbox_matches_model_under_random_operations(tmp_path_factory, ops):
    d = tmp_path_factory.mktemp("prop")
    s = Store(d)
    seq, pending, everything = 0, [], []
    try:
        for op, n in ops:
            if op == "append":
                batch = [sample(seq + i + 1, tube=f"T{(seq + i) // 10}") for i in range(n)]
                seq += n
                s.append(batch)
                pending += ids(batch)
                everything += ids(batch)
            elif op == "ack":
                chosen = pending[: n // 2] + pending[n : n + 1]  # acks may arrive out of order
                s.ack(chosen)
                pending = [p for p in pending if p not in chosen]
            else:
                s.close()
                s = Store(d)
            assert ids(s.outbox(1000)) == pending
            assert s.stats()["backlog"] == len(pending)
        assert ids(s.iter_records()) == everything
    finally:
        s.close()


def test_oldest_unsent_age_follows_acks_across_segments_and_reopen(tmp_path, monkeypatch):
    monkeypatch.setattr("firmware_app.store.SEGMENT_BYTES", 1)  # one segment per write
    now = time.time()
    with Store(tmp_path) as s:
        s.append([sample(1, at=now - 300)])
        s.append([sample(2, at=now - 200)])
        s.append([sample(3, at=now - 100)])
        assert 299 <= s.stats()["oldest_unsent_age_s"] <= 310
        s.ack([sample(1)["record_id"]])
        assert 199 <= s.stats()["oldest_unsent_age_s"] <= 210
    with Store(tmp_path) as s:
        assert 199 <= s.stats()["oldest_unsent_age_s"] <= 210
        s.ack([sample(2)["record_id"], sample(3)["record_id"]])
        assert s.stats()["oldest_unsent_age_s"] is None
        s.append([sample(4, at=now - 50)])
        assert 49 <= s.stats()["oldest_unsent_age_s"] <= 60


def test_record_ids_not_of_the_station_form_are_acked_and_sent_by_id(tmp_path):
    odd = {**sample(2), "record_id": "imported-record-b"}
    with Store(tmp_path) as s:
        s.append([sample(1), odd, sample(3)])
        assert not s.is_sent("imported-record-b")
        # an id that parses to a stored seq but names another record is not that record
        assert s.ack([sample(2)["record_id"]]) == 0
        assert s.ack(["imported-record-b"]) == 1
    with Store(tmp_path) as s:
        assert s.is_sent("imported-record-b") and not s.is_sent(sample(1)["record_id"])
        assert [r["seq"] for r in s.outbox(10)] == [1, 3]
        assert s.stats()["backlog"] == 2


def test_outbox_index_costs_a_few_bytes_per_unsent_record(tmp_path):
    """A site offline for days piles up records: the index must not keep an object per record."""
    import tracemalloc

    from firmware_app.store import _Segment

    n = 50_000
    with Store(tmp_path) as s:
        seg = _Segment(1, str(tmp_path / "segments" / "0000000001.json"))
        rec = sample(1)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for seq in range(1, n + 1):  # what append() does after writing, without 50,000 files
            rec["seq"], rec["record_id"] = seq, sample(seq)["record_id"]
            seg.seqs.append(seq)
            s._track(seg, rec)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        s._segments.append(seg)
        assert grown / n < 8, f"{grown / n:.1f} bytes per unsent record"
        assert s.stats()["backlog"] == n and not s.is_sent(sample(n)["record_id"])
