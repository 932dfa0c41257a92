"""The SQLite store through its public API: durability, outbox until ack, archive and prune,
facts for the station, high-water marks, meta, and a model-based property test."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import stat
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_app.model import Lookups, sample_person_key
from firmware_app.store import Store, StoreCorrupt, StoreError, StoreNotReady, StoreReadOnly
from firmware_app.store_schema import canonical
from tests.store_fixtures import DEVICE, event, sample

T0 = 1795000000.0  # 2026-11-18 local


def rid(seq: int) -> str:
    return f"{DEVICE}-{seq:010d}"


def seqs(store, **kw):
    return [r["seq"] for r in store.iter_records(**kw)]


def test_append_survives_reopen_and_outbox_is_oldest_first_with_the_stored_bytes(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1), sample(2, person=1)])
        s.append([event(3, "tube_close", reason="full")])
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox()] == [1, 2, 3]
        assert [r["seq"] for r in s.outbox(limit=2, after_seq=1)] == [2, 3]
        rec, payload = s.outbox_messages(1)[0]
        assert payload == canonical(sample(1) | {"at": rec["at"]}) and json.loads(payload) == rec
        assert s.last_seq() == 3


def test_ack_moves_records_to_archive_and_survives_reopen(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(n) for n in range(1, 5)])
        assert s.ack([rid(1), rid(3), rid(3), "unknown", 7]) == 2
        assert s.ack([rid(1)]) == 0
        assert s.is_sent(rid(1)) and not s.is_sent(rid(2))
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox()] == [2, 4]
        st_ = s.stats()
        assert st_["archived"] == 2 and st_["backlog"] == 2 and st_["last_ack_at"] > 0
        assert seqs(s) == [1, 2, 3, 4]  # acked records stay in the archive


@pytest.mark.parametrize("bad", [
    lambda: [sample(3), sample(3)],  # seq not increasing
    lambda: [sample(3), {**sample(4), "record_id": rid(1)}],  # record_id already stored
    lambda: [sample(3), {**sample(4), "kind": "nonsense"}],
    lambda: [sample(3), sample(4, blob=object())],  # not JSON-able
    lambda: [sample(3), "not a record"],
])
def test_batch_is_all_or_nothing_on_a_bad_record(tmp_path, bad):
    with Store(tmp_path) as s:
        s.append([sample(1), sample(2)], meta={"queue": [1]})
        with pytest.raises(ValueError):
            s.append(bad(), meta={"queue": [2]})
        assert seqs(s) == [1, 2] and s.get_meta("queue") == [1]
        s.append([sample(3)])  # and the store goes on


def test_files_are_private(tmp_path):
    d = tmp_path / "data"
    s = Store(d)
    s.append([sample(1)], marks={"seq": 1, "numbers": {"T": 1}})
    for name in ("kiosk.db", "kiosk.db-wal", "kiosk.db-shm", "hwm", "lock"):
        assert stat.S_IMODE(os.stat(d / name).st_mode) == 0o600, name
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    s.close()


def test_second_writer_is_refused_but_readers_are_not_and_do_not_block_it(tmp_path):
    s = Store(tmp_path)
    s.append([sample(1)])
    with pytest.raises(StoreError) as err:
        Store(tmp_path)
    assert "in use by another process" in err.value.message_en
    with Store(tmp_path, read_only=True) as r:
        rows = r.iter_records()
        assert next(rows)["seq"] == 1  # a reader mid-read ...
        s.append([sample(2)])  # ... does not hold up the writer
        assert r.stats()["backlog"] == 2
        with pytest.raises(StoreReadOnly):
            r.append([sample(3)])
    s.close()


def test_meta_round_trip_delete_and_prefix(tmp_path):
    with Store(tmp_path) as s:
        s.set_meta("pending_labels", [{"tube": "T1"}])
        s.append([sample(1)], meta={"state/tube": {"id": "T1"}, "state/box": {"id": "B1"}, "pending_labels": None})
    with Store(tmp_path) as s:
        assert s.get_meta("pending_labels", "gone") == "gone"
        assert s.meta_items("state/") == {"state/tube": {"id": "T1"}, "state/box": {"id": "B1"}}


def test_iter_records_by_day_and_tube_records_follow_a_replacement(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1, tube="T1", at=T0), sample(2, tube="T1", at=T0 + 86400)])
        s.append([event(3, "tube_replace", tube="T2", old_tube_id="T1", at=T0 + 86400)])
        s.append([sample(4, tube="T3", at=T0 + 86400)])
        day = sample(2, at=T0 + 86400)["at"][:10]
        assert seqs(s, day=day) == [2, 3, 4]
        assert [r["seq"] for r in s.tube_records("T1")] == [1, 2, 3]
        assert [r["seq"] for r in s.tube_records("T2")] == [3]


def test_facts_people_records_tubes_and_voids(tmp_path):
    day = sample(1, at=T0)["at"][:10]
    with Store(tmp_path) as s:
        s.append([sample(1, tube="A", person=0, at=T0), sample(2, tube="A", person=1, at=T0),
                  sample(3, tube="A", person=0, at=T0), sample(4, tube="C", person=2, at=T0)])
        s.append([event(5, "void", tube="A", voided_record_id=rid(1), at=T0)])
        s.append([event(6, "tube_replace", tube="B", old_tube_id="A", at=T0)])
        s.append([sample(7, tube="B", person=2, at=T0)])
        s.append([event(8, "tube_replace", tube="D", old_tube_id="B", at=T0)])
        me = sample_person_key(sample(1))
        f = s.facts(Lookups(people=((me, day), (me, "2000-01-01")), records=(rid(2), "nope"),
                            tubes=("A", "B", "D", "C", "NEW")))
        assert [r["seq"] for r in f.people[(me, day)]] == [3]  # seq 1 is voided
        assert f.people[(me, "2000-01-01")] == ()
        assert f.records[rid(2)]["seq"] == 2 and f.records["nope"] is None
        assert f.tubes["A"] == () and f.tubes["B"] == ()  # their people moved on
        assert [r["seq"] for r in f.tubes["D"]] == [1, 2, 3, 7]  # A's (void too) and B's, via two replacements
        assert [r["seq"] for r in f.tubes["C"]] == [4] and f.tubes["NEW"] == ()
        assert f.tubes_used == {"A", "B", "C", "D"}
        assert f.voided == {rid(1)}


def test_prune_keeps_archive_days_never_the_outbox_nor_the_newest(tmp_path):
    with Store(tmp_path, archive_days=30) as s:
        s.append([sample(n) for n in range(1, 7)])
        s.ack([rid(n) for n in (1, 2, 3, 6)])
        now = s.get_meta("last_ack_at")
        assert s.prune(now + 29 * 86400) == 0
        assert s.prune(now + 31 * 86400) == 3  # 6 is the newest: it holds the last seq
        assert seqs(s) == [4, 5, 6] and [r["seq"] for r in s.outbox()] == [4, 5]
        assert s.stats()["archived"] == 1 and s.stats()["first_seq"] == 4
        s.append([sample(7)])
    with Store(tmp_path) as s:
        assert s.last_seq() == 7 and s.stats()["archived"] == 1


def test_stats_days_and_oldest_unsent(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1, tube="A", at=T0), sample(2, tube="A", at=T0), sample(3, tube="B", at=T0),
                  event(4, "box_open", tube=None, box_id="BX1", at=T0)])
        s.append([event(5, "void", tube="A", voided_record_id=rid(2), at=T0)])
        st_ = s.stats()
        assert st_["days"] == {sample(1, at=T0)["at"][:10]: {"people": 2, "tubes": 2, "boxes": 1}}
        assert st_["oldest_unsent_age_s"] > 0 and st_["segments"] == 1 and st_["damage"] == []


def test_a_flipped_byte_in_a_record_is_reported_and_never_passed_on(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1), sample(2, person=1), sample(3)])
    conn = sqlite3.connect(tmp_path / "kiosk.db")
    body = conn.execute("SELECT body FROM records WHERE seq = 2").fetchone()[0]
    conn.execute("UPDATE records SET body = ? WHERE seq = 2", (body.replace(b"440301", b"440302"),))
    conn.commit()
    conn.close()
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox()] == [1, 3]
        assert s.records([rid(2)]) == [] and s.facts(Lookups(records=(rid(2),))).records[rid(2)] is None
        assert seqs(s) == [1, 3]
        assert any("seq 2" in d for d in s.stats()["damage"])


def test_high_water_is_the_committed_marks_on_a_normal_start(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)], marks={"seq": 1, "numbers": {"T": 3, "B": 1}})
        s.append([sample(2)], marks={"seq": 2, "numbers": {"T": 4, "B": 1}})
    with Store(tmp_path) as s:
        assert s.high_water() == {"seq": 2, "numbers": {"T": 4, "B": 1}}
        assert s.reports() == []


def test_marks_are_the_stations_current_stems_so_a_month_of_days_fits_the_hwm_slot(tmp_path):
    # the station passes every stem it still numbers from (today's tube and box stems); earlier
    # days' stems are kept only a few at a time, so 40 days do not outgrow the 1 KB reservation slot
    with Store(tmp_path) as s:
        for day in range(1, 41):
            s.append([sample(day)], marks={"seq": day, "numbers": {f"DG03261{day:03d}": 800, f"DG03-B261{day:03d}": 40}})
        numbers = s.high_water()["numbers"]
        assert numbers["DG03261040"] == 800 and numbers["DG03-B261040"] == 40 and len(numbers) <= 14
    with Store(tmp_path) as s:
        assert s.high_water()["seq"] == 40


def test_a_store_that_lost_its_newest_transactions_continues_above_the_reservation(tmp_path):
    d = tmp_path / "data"
    s = Store(d)
    s.append([sample(1)], marks={"seq": 1, "numbers": {"T": 1}})
    old = tmp_path / "kiosk.db.old"
    shutil.copy(d / "kiosk.db", old)  # the db without its WAL: as after a lost tail or a restored copy
    for n in range(2, 6):
        s.append([sample(n)], marks={"seq": n, "numbers": {"T": n}})
    assert s.high_water() == {"seq": 5, "numbers": {"T": 5}}
    s.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{d}/kiosk.db{suffix}"):
            os.unlink(f"{d}/kiosk.db{suffix}")
    shutil.copy(old, d / "kiosk.db")
    with Store(d) as s:
        hw = s.high_water()
        assert hw["seq"] >= 5 + 1 and hw["numbers"]["T"] >= 5 + 1  # never reissued
        assert s.last_seq() == hw["seq"]
        with pytest.raises(ValueError):
            s.append([sample(5)])
        assert [r["what"] for r in s.reports()] == ["recovery"] and s.reports()[0]["lost"] >= 1
    with Store(d) as s:
        assert s.high_water() == hw and len(s.reports()) == 1  # said once, kept


def test_a_torn_hwm_slot_leaves_the_other_one(tmp_path):
    with Store(tmp_path) as s:
        s.append([sample(1)], marks={"seq": 1, "numbers": {"T": 1}})
        s.append([sample(2)], marks={"seq": 300, "numbers": {"T": 30}})  # a second reservation: the other slot
    raw = bytearray((tmp_path / "hwm").read_bytes())
    raw[1024 + 40] ^= 0xFF  # tear the newer slot
    (tmp_path / "hwm").write_bytes(bytes(raw))
    with Store(tmp_path) as s:
        assert s.high_water()["seq"] == 300  # the db's committed marks
        s.append([sample(301)], marks={"seq": 301, "numbers": {"T": 31}})
    with Store(tmp_path) as s:
        assert s.high_water() == {"seq": 301, "numbers": {"T": 31}}


@st.composite
def operations(draw):
    return draw(st.lists(st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4), st.booleans()),
        st.tuples(st.just("ack"), st.lists(st.integers(0, 40), max_size=6)),
        st.tuples(st.just("prune"), st.integers(0, 40)),
        st.tuples(st.just("reopen")),
    ), max_size=25))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations())
def test_store_matches_a_plain_dict_model(tmp_path_factory, ops):
    d = tmp_path_factory.mktemp("model")
    model: dict[int, dict] = {}  # seq -> {"acked": bool, "at": ack day}
    clock, seq = 0, 0
    s = Store(d, archive_days=10)
    try:
        for op in ops:
            if op[0] == "append":
                batch = [sample(seq + i + 1) if op[2] else event(seq + i + 1, "tube_open") for i in range(op[1])]
                s.append(batch)
                for r in batch:
                    model[r["seq"]] = {"acked": False, "at": None}
                seq += op[1]
            elif op[0] == "ack":
                fresh = {n for n in op[1] if n in model and not model[n]["acked"]}
                assert s.ack([rid(n) for n in op[1]]) == len(fresh)
                for n in fresh:
                    model[n] = {"acked": True, "at": s.get_meta("last_ack_at")}
            elif op[0] == "prune":
                clock = op[1]
                now = (s.get_meta("last_ack_at") or 0) + clock * 86400
                gone = {n for n, m in model.items() if m["acked"] and m["at"] < now - 10 * 86400 and n != max(model)}
                assert s.prune(now) == len(gone)
                for n in gone:
                    del model[n]
            else:
                s.close()
                s = Store(d, archive_days=10)
            assert seqs(s) == sorted(model)
            assert [r["seq"] for r in s.outbox(1000)] == sorted(n for n, m in model.items() if not m["acked"])
            st_ = s.stats()
            assert st_["archived"] == sum(m["acked"] for m in model.values())
            assert st_["backlog"] + st_["backlog_events"] == sum(not m["acked"] for m in model.values())
            assert s.last_seq() == seq
    finally:
        s.close()


class _Steps:
    """Counts the SQLite virtual-machine steps (a count, not a time) that the calling thread's
    statements cost on every connection sqlite3.connect opened while ``opening()`` ran: the
    store's own connections, found through the sqlite3 library rather than its attributes."""

    def __init__(self) -> None:
        self.n, self.thread = 0, None

    def _tick(self) -> int:
        if self.thread == threading.get_ident():  # the store's checkpoint helper is not counted
            self.n += 1
        return 0

    @contextlib.contextmanager
    def opening(self):
        real = sqlite3.connect

        def connect(*args, **kwargs):
            conn = real(*args, **kwargs)
            conn.set_progress_handler(self._tick, 10)
            return conn

        sqlite3.connect = connect
        try:
            yield
        finally:
            sqlite3.connect = real

    def cost(self, fn) -> int:
        self.n, self.thread = 0, threading.get_ident()
        try:
            fn()
        finally:
            self.thread = None
        return self.n


def _history(d, days: int) -> tuple[Store, _Steps]:
    steps = _Steps()
    with steps.opening():
        s = Store(d, durable=False)
    seq = 0
    for day in range(days):
        batch = []
        for p in range(100):
            seq += 1
            batch.append(sample(seq, tube=f"D{day}T{p // 10}", person=p, at=T0 + day * 86400 + p))
        s.append(batch)
        s.ack([r["record_id"] for r in batch])
    return s, steps


def test_status_tube_and_facts_cost_the_same_at_10_and_at_60_days(tmp_path):
    (small, small_steps), (big, big_steps) = _history(tmp_path / "a", 10), _history(tmp_path / "b", 60)
    try:
        for fn in (lambda s: s.stats(), lambda s: s.tube_records("D5T3"),
                   lambda s: s.facts(Lookups(people=((sample_person_key(sample(1, person=4)), "2026-11-20"),),
                                             tubes=("D5T3", "NEW"), records=(rid(77),)))):
            a, b = small_steps.cost(lambda: fn(small)), big_steps.cost(lambda: fn(big))
            assert a > 0 and b <= a * 1.3 + 50, (a, b)
    finally:
        small.close()
        big.close()


@pytest.mark.parametrize("made", ["empty file", "wal, no schema"])
def test_a_reader_beside_a_store_being_created_is_told_to_wait_not_to_repair(tmp_path, made):
    """`swabkiosk status` run while the daemon is creating kiosk.db found it "damaged, run --repair"."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "kiosk.db").touch()
    if made == "wal, no schema":
        conn = sqlite3.connect(data / "kiosk.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
    with pytest.raises(StoreNotReady) as caught:  # no kiosk running: empty, made by `run`
        Store(str(data), read_only=True)
    assert "尚未建立" in caught.value.message and "无需修复" in caught.value.message
    assert not isinstance(caught.value, StoreCorrupt)
    import fcntl

    lock = os.open(data / "lock", os.O_RDWR | os.O_CREAT, 0o600)  # a daemon holding the writer's lock
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with pytest.raises(StoreNotReady) as caught:
            Store(str(data), read_only=True)
        assert "正在创建" in caught.value.message
    finally:
        os.close(lock)
    assert sorted(os.listdir(data)) in (["kiosk.db", "lock"], ["kiosk.db", "kiosk.db-shm", "kiosk.db-wal", "lock"])
    with Store(str(data)) as store:  # the daemon goes on making it: nothing was moved or marked
        store.append([sample(1)])
        assert store.reports() == []
    with Store(str(data), read_only=True) as reader:
        assert [r["seq"] for r in reader.iter_records()] == [1]


def test_a_writer_starting_during_a_readers_lock_probe_is_not_refused(tmp_path):
    """doctor's probe (store_files.writer_running) holds the writer's lock shared for an instant;
    a kiosk starting at that moment waits for it instead of exiting "store in use"."""
    import fcntl
    import threading

    with Store(tmp_path):
        pass
    fd = os.open(tmp_path / "lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    threading.Timer(0.05, lambda: os.close(fd)).start()
    with Store(tmp_path) as store:
        store.append([sample(1)])
    with Store(tmp_path), pytest.raises(StoreError):
        Store(tmp_path)  # a second writer is still refused
