"""The store's outbox index (columns, one view per segment) behaves like plain per-segment lists."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.store import ACKED, _Segment, _Segments

SEGMENT = st.tuples(st.integers(0, 3), st.lists(st.integers(1, 3), min_size=0, max_size=12))  # lost head, seq steps


@given(st.lists(SEGMENT, min_size=1, max_size=8), st.data())
@settings(max_examples=150)
def test_segment_columns_match_plain_lists(segments, data):
    table, naive, seq = _Segments("/data/segments"), [], 0
    for lost, steps in segments:
        seq += 1
        first = seq
        seg = _Segment(first, f"/data/segments/{first:010d}.json")
        seqs, seq = [], seq + lost  # a repair may have lost the first records
        for n, step in enumerate(steps):
            seq += step - 1 if n == 0 else step
            seg.seqs.append(seq)
            seg.flags.append(n % 5 + 1)
            seqs.append(seq)
        seg.size = 100 + len(seqs)
        table.append(seg)  # built on its own, then taken over (as Store.append and _load do)
        naive.append({"first": first, "seqs": seqs, "flags": [n % 5 + 1 for n in range(len(seqs))], "acked": 0})
        seq = max([seq, first])
    for row in naive:
        seg = table[[r["first"] for r in naive].index(row["first"])]
        for pos in data.draw(st.lists(st.integers(0, max(0, len(row["seqs"]) - 1)), max_size=4, unique=True)):
            if row["seqs"]:
                seg.flags[pos] |= ACKED
                seg.n_acked += 1
                row["flags"][pos] |= ACKED
                row["acked"] += 1
    drop = data.draw(st.lists(st.integers(0, len(naive) - 1), max_size=3, unique=True))
    for k in sorted(drop, reverse=True):
        gone = table[k]
        table.remove(gone)
        assert list(gone.seqs) == naive[k]["seqs"] and gone.path.endswith(f"{naive[k]['first']:010d}.json")
        del naive[k]
    assert len(table) == len(naive)
    for seg, row in zip(table, naive):
        assert seg.first == row["first"] and list(seg.seqs) == row["seqs"] and len(seg.seqs) == len(row["seqs"])
        assert [seg.flags[p] for p in range(len(seg.flags))] == row["flags"]
        assert seg.n_acked == row["acked"] and seg.done == (row["acked"] >= len(row["seqs"]))
        assert [p for p, _ in seg.unacked()] == [p for p, f in enumerate(row["flags"]) if not f & ACKED]
        for probe in range(row["first"] - 1, (row["seqs"][-1] if row["seqs"] else row["first"]) + 2):
            assert seg.seqs.index(probe) == (row["seqs"].index(probe) if probe in row["seqs"] else -1)
        if row["seqs"]:
            assert seg.seqs[-1] == row["seqs"][-1]


def test_records_are_read_back_by_id_without_filling_the_uplinks_cache(tmp_path):
    from firmware_app.store import Store

    store = Store(str(tmp_path))
    try:
        rows = [{"schema": 1, "seq": n, "record_id": f"dev-{n:010d}", "kind": "sample", "at": "2026-11-22T10:00:00+08:00",
                 "name": "陈大文", "pad": "x" * 900} for n in range(1, 61)]
        for row in rows:
            store.append([row])
        assert store.stats()["segments"] > 2
        wanted = ["dev-0000000003", "dev-0000000059", "nobody-0000000001", "dev-0000000003"]
        assert [r["seq"] for r in store.records(wanted)] == [3, 59]
        assert len(store._parsed) == 0
    finally:
        store.close()
