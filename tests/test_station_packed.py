"""The station's packed tables behave like the plain dicts and lists they replace."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app import packed
from firmware_app.model import Command, Recall
from firmware_app.packed import OFFSET_BITS, PersonIndex, Samples, Tubes
from tests.station_fixtures import Table, make_id
from tests.test_station import card, person, signed_in


@given(st.lists(st.tuples(st.integers(1, 300), st.integers(0, 70_000)), max_size=80),
       st.lists(st.tuples(st.integers(0, 79), st.integers(0, 70_000)), max_size=10))
def test_samples_give_back_every_seq_and_tube(steps, moves):
    table, naive_seq, naive_tube, seq = Samples(), [], [], 0
    for gap, tube in steps:
        seq += gap
        assert table.add(seq, tube) == len(naive_seq)
        naive_seq.append(seq)
        naive_tube.append(tube)
    for i, tube in moves:
        if i < len(naive_tube):
            table.set_tube(i, tube)
            naive_tube[i] = tube
    assert [table.seq(i) for i in range(len(table))] == naive_seq
    assert list(table.tube) == naive_tube
    for probe in range(seq + 2):
        assert table.find(probe) == (naive_seq.index(probe) if probe in naive_seq else None)


def test_samples_refuse_a_seq_out_of_order():
    table = Samples()
    table.add(5, 0)
    try:
        table.add(5, 0)
    except ValueError:
        assert len(table) == 1
    else:
        raise AssertionError("a repeated seq was taken")


KEYS = st.sampled_from([f"resident_id:{make_id(n)}" for n in range(12)] + ["none:小明:13800000000", "passport:E1234567"])


@given(st.lists(st.tuples(KEYS, st.integers(1, 5)), max_size=60), st.integers(1, packed.HASH_BITS), st.booleans())
def test_person_index_finds_every_sample_of_a_person(adds, bits, far):
    """With few hash bits people collide: find gives a superset, in order, and nothing is lost."""
    index, naive, ordinal = PersonIndex(base=1000, bits=bits), {}, 1000
    for key, gap in adds:
        ordinal += gap
        if far and gap == 5:
            ordinal += 1 << OFFSET_BITS  # past what an entry holds: kept aside, still found
        index.add(key, ordinal)
        naive.setdefault(key, []).append(ordinal)
    assert len(index) == len(adds)
    for key in naive:
        found = index.find(key)
        assert found == sorted(found) and set(naive[key]) <= set(found)
        same_hash = {k for k in naive if index._hash(k) == index._hash(key)}
        assert found == sorted(o for k in same_hash for o in naive[k])


def test_person_hashes_are_keyed_per_station():
    a, b = PersonIndex(0), PersonIndex(0)
    key = f"resident_id:{make_id(1)}"
    assert (a._hash(key), a._hash(key + "x")) != (b._hash(key), b._hash(key + "x"))  # 2 x 28 bits


OUR_IDS = st.integers(1, 30).map(lambda n: f"DG03261122{n:04d}")
LAB_IDS = st.integers(1, 30).map(lambda n: f"LAB{n:06d}")


@given(st.lists(st.one_of(st.tuples(st.just("add"), st.one_of(OUR_IDS, LAB_IDS)),
                          st.tuples(st.just("del"), st.one_of(OUR_IDS, LAB_IDS)),
                          st.tuples(st.just("set"), st.one_of(OUR_IDS, LAB_IDS)),
                          st.tuples(st.just("compact"), st.just(""))), max_size=60))
@settings(max_examples=150)
def test_tubes_behave_like_a_dict_of_rows(ops):
    tubes, naive = Tubes("DG03"), {}
    for op, tube_id in ops:
        if op == "add":
            tube = tubes.add(tube_id, 10, "10", None, "2026-11-22")
            naive[tube_id] = {"capacity": 10, "mode": "10", "state": "open", "count": 0, "box": None}
            assert tube.id == tube_id
        elif op == "del" and tube_id in naive:
            del tubes[tube_id]
            del naive[tube_id]
        elif op == "set" and tube_id in naive:
            tube = tubes[tube_id]
            tube.count += 1
            tube.state, tube.box = "closed", f"DG03-B261122{len(naive):03d}"
            naive[tube_id].update(count=naive[tube_id]["count"] + 1, state="closed", box=tube.box)
        elif op == "compact":
            moved = tubes.compact()
            assert sorted(moved.values()) == list(range(len(tubes)))
        assert (tube_id in tubes) == (tube_id in naive)
    assert sorted(tubes.keys()) == sorted(naive)
    for tube_id, row in naive.items():
        tube = tubes[tube_id]
        assert tube.id == tube_id and tubes.at(tube.n) == tube
        assert {k: getattr(tube, k) for k in row} == row


# ---------------------------------------------------------------- the station's rare paths


def test_a_duplicate_is_confirmed_against_the_stored_record_even_when_hashes_collide(monkeypatch):
    monkeypatch.setattr(packed, "HASH_BITS", 1)  # half of everyone shares a hash
    t = signed_in()
    for n in range(1, 9):
        t.scan(person(n), "camera")
        assert t.show.level == "ok", t.show  # a hash hit alone never flags a person
    first = t.samples()[2]
    effects = t.station.handle(card(3), t.now)  # the same person again, read by the card
    assert isinstance(effects[0], Recall) and first["record_id"] in effects[0].record_ids and len(effects) == 1
    t.do(card(3))
    pending = t.station.snapshot()["pending"]
    assert t.show.level == "confirm" and pending["duplicate_of"]["record_id"] == first["record_id"]
    assert pending["duplicate_of"]["at"] == first["at"] and first["tube_id"] in t.show.message


def test_a_record_the_store_lost_is_not_taken_for_a_duplicate():
    t = signed_in()
    t.scan(person(1), "camera")
    lost = t.records.pop()  # as if the store had lost it (a damaged card, repaired)
    t.scan(person(1), "camera")
    assert t.show.level == "ok" and t.samples()[-1]["duplicate_of"] is None
    t.records.append(lost)


def test_void_names_the_person_from_the_stored_record_or_says_it_cannot():
    t = signed_in()
    t.scan(person(1, name="陈大文"), "camera")
    target = t.samples()[-1]["record_id"]
    t.cmd("void", record_id=target)
    assert t.show.level == "ok" and "陈*文" in t.show.message
    t.scan(person(2), "camera")
    stored, t.records = t.records, [r for r in t.records if r["record_id"] != t.samples()[-1]["record_id"]]
    t.cmd("void_last")
    assert t.show.level == "ok" and "已作废 ?" in t.show.message  # voided all the same
    t.records = stored + t.new_records


def test_replacement_lists_the_people_to_recall_by_name():
    t = signed_in()
    for n, name in enumerate(["陈大文", "李小红", "王五"], 1):
        t.scan(person(n, name=name), "camera")
    t.cmd("void_last")
    t.cmd("replace_tube")
    assert t.show.level == "confirm" and t.show.detail["people"] == ["陈*文 " + re.sub(r"(?<=^.{6}).{8}", "*" * 8, make_id(1)),
                                                                      "李*红 " + re.sub(r"(?<=^.{6}).{8}", "*" * 8, make_id(2))]


def test_a_full_day_of_one_table_stays_small_and_restores_the_same():
    t = Table(mode="10")
    t.sign_in()
    for n in range(1, 1201):
        t.tick(-15)  # one every 5 s: the evening's queue stays on one day
        t.do(card(n % 1000 + 1, number=make_id(n, birth="19900101" if n < 1000 else "19910101")))
        if t.show.level == "confirm":
            t.cmd("reject")
    held = t.station.samples_held()
    assert held == len(t.samples()) == 1200
    assert t.station.snapshot()["today"] == {"day": t.samples()[0]["at"][:10], "people": 1200, "tubes": 120}
    before = t.station.snapshot()
    t.restart()
    after = t.station.snapshot()
    assert {k: after[k] for k in ("tube", "last", "today", "unboxed", "seq")} == {
        k: before[k] for k in ("tube", "last", "today", "unboxed", "seq")}
    t.do(card(1, number=make_id(1, birth="19900101")))  # after the restart: still a duplicate
    assert t.show.level == "confirm"
    t.do(Command("confirm_duplicate"))
    assert t.samples()[-1]["duplicate_of"] == t.samples()[0]["record_id"]


def test_tube_ten_thousand_of_a_day_gets_its_own_number():
    t = signed_in(mode="1")
    stem = "DG03" + t.station._local(t.now.at).strftime("%y%m%d")
    t.station._numbers[stem] = 9998  # as after 9,998 tubes today
    for n in (1, 2):
        t.scan(person(n), "camera")
    t.restart()  # the numbering continues from the records
    t.scan(person(3), "camera")
    assert [r["tube_id"] for r in t.samples()] == [f"{stem}9999", f"{stem}10000", f"{stem}10001"]
    assert t.station.snapshot()["today"]["tubes"] == 3


def test_a_record_opening_a_tube_that_holds_people_is_skipped_on_restore():
    t = signed_in()
    t.scan(person(1), "camera")
    opened = next(r for r in t.records if r["kind"] == "tube_open")
    again = {**opened, "seq": t.records[-1]["seq"] + 1, "record_id": opened["record_id"][:-10] + f"{t.records[-1]['seq'] + 1:010d}"}
    station = Table().station
    assert station.restore([*t.records, again]) == 1
    assert station.snapshot()["tube"]["count"] == 1


def test_tube_columns_widen_when_a_value_outgrows_them_and_a_bad_row_adds_nothing():
    tubes = Tubes("DG03")
    tube = tubes.add("DG032611220001", 10, "10", None, "2026-11-22")
    tube.counted_shift, tube.count, tube.box = 70_000, 300, "DG03-B261122001"
    for n in range(300):  # box ids past a byte
        tubes.add(f"LAB{n:06d}", 1, "1", "red_code", "2026-11-22", box=f"DG03-B26112{n:04d}")
    assert (tube.counted_shift, tube.count, tube.box) == (70_000, 300, "DG03-B261122001")
    assert tubes["LAB000299"].box == "DG03-B261120299"
    rows = len(tubes)
    for bad in (-1, None):
        try:
            tubes.add("DG032611220002", bad, "10", None, "2026-11-22")
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError(f"a tube of capacity {bad!r} was added")
    assert len(tubes) == rows and "DG032611220002" not in tubes
    assert {len(getattr(tubes, name)) for name in packed.COLUMNS} == {rows}


def test_moving_a_whole_tube_keeps_one_run():
    table = Samples()
    for n in range(10):
        table.add(100 + n, 7)
    table.add(120, 8)  # the next tube, after its tube_open record
    for i in range(10):
        table.set_tube(i, 9)  # tube 7 replaced by tube 9
    assert list(table.tube) == [9] * 10 + [8] and len(table._at) == 2
    assert [table.seq(i) for i in range(11)] == list(range(100, 110)) + [120]
