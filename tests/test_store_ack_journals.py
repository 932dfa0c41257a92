"""Ack journals created ahead of the acks (Store.ack): they ack nothing, and a failure costs nothing."""

from __future__ import annotations

import os

from firmware_app import store as store_mod
from firmware_app.store import Store
from tests.store_fixtures import sample


def _fill(s: Store, n: int) -> None:
    for seq in range(1, n + 1):
        s.append([sample(seq, person=seq % 3)])


def _segment_firsts(tmp_path) -> list[int]:
    return sorted(int(n[:-5]) for n in os.listdir(tmp_path / "segments") if n.endswith(".json"))


def test_journals_made_ahead_ack_nothing_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "SEGMENT_BYTES", 2048)
    with Store(tmp_path) as s:
        _fill(s, 60)
        first_page = [r["record_id"] for r in s.outbox(2)]
        assert s.ack(first_page) == 2
    firsts = _segment_firsts(tmp_path)
    assert len(firsts) > 4
    journals = [tmp_path / "segments" / f"{f:010d}.acks" for f in firsts]
    assert all(j.exists() for j in journals[:4])  # the next segments' journals exist already ...
    assert all(j.stat().st_size == 0 for j in journals[1:4])  # ... and are empty
    assert all(j.stat().st_mode & 0o777 == 0o600 for j in journals[:4])
    with Store(tmp_path) as s:  # a restart (or a power cut) right after: only the 2 acked are gone
        assert [r["seq"] for r in s.outbox(100)] == list(range(3, 61))


def test_acks_do_not_depend_on_the_helper(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "SEGMENT_BYTES", 2048)
    monkeypatch.setattr(store_mod, "_make_journals", lambda paths: None)  # the helper made nothing
    with Store(tmp_path) as s:
        _fill(s, 60)
        ids = [r["record_id"] for r in s.outbox(100)]
        for n in range(0, 50, 7):  # page by page, as the uplink acks
            assert s.ack(ids[n:n + 7]) == len(ids[n:n + 7])
    with Store(tmp_path) as s:
        assert [r["seq"] for r in s.outbox(100)] == list(range(57, 61))
