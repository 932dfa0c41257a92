"""Random table sessions: whatever the volunteers do, in whatever order, with restarts,
the records stay complete and consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import json

from firmware_app.model import POOL_CAPACITY, CardRead, CodeScanned, Command, IdCard, Now, Persist, PrintLabel, Say, Show
from firmware_app.station import Station
from tests.qr_fixtures import DAY, STRANGER_KEY, T0, operator_code, person_code
from tests.station_fixtures import VOLUNTEERS, Shelf, handle, make_config, make_id

PEOPLE = [(f"市民{n}", make_id(n)) for n in range(8)]  # few people: duplicates happen
CODES = {
    (n, colour, key): person_code(name=PEOPLE[n][0], id_number=PEOPLE[n][1], colour=colour, key_person=key, valid=60 * DAY)
    for n in range(len(PEOPLE))
    for colour in ("green", "yellow", "red")
    for key in (False, True)
}
CERTS = {
    "valid": operator_code(cert_id="V1", name="李志愿", valid=400 * DAY),
    "lapsed": operator_code(cert_id="V2", name="王过期", valid=400 * DAY),
    "revoked": operator_code(cert_id="V3", name="赵撤销", valid=400 * DAY),
    "unknown": operator_code(cert_id="V7", name="无证", valid=400 * DAY),
    "forged": operator_code(cert_id="V1", name="李志愿", key=STRANGER_KEY),
}
DERIVED = ("operator", "mode", "tube", "last", "today", "box", "unboxed", "seq")


class TableSession(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.source = "print"
        self.cfg = make_config("10", self.source, 3)
        self.station = Station(self.cfg, VOLUNTEERS)
        self.at = float(T0)
        self.records: list[dict] = []
        self.shelf = Shelf()  # the real store: records and state rows, as the runtime writes them
        self.last_event_at = self.at
        self.signed_in = False  # as the records say: a shift_start of a certified operator is open

    # -------------------------------------------------------------- driving

    def step(self, event):
        self.at += 37
        self.last_event_at = self.at
        effects = handle(self.station, event, _now(self.at), self.shelf)
        kinds = [type(e).__name__ for e in effects]
        persists = [e.record for e in effects if isinstance(e, Persist)]
        # durability order: every Persist before any label, screen, sound or result
        assert kinds[: len(persists)] == ["Persist"] * len(persists)
        assert sum(1 for e in effects if isinstance(e, Show)) <= 1
        for record in persists:
            self.check_new_record(record)
            self.records.append(record)
        assert self.shelf.keep(self.station, effects) == persists  # rows changed only with records: see the invariant
        visible = repr([e for e in effects if isinstance(e, (Show, Say, PrintLabel))])
        assert not any(number in visible for _, number in PEOPLE)
        return persists

    def check_new_record(self, r: dict) -> None:
        last = self.records[-1]["seq"] if self.records else 0
        assert r["seq"] == last + 1
        assert r["record_id"] > (self.records[-1]["record_id"] if self.records else "")
        if r["kind"] == "shift_start":
            assert r["operator"] == "V1"  # only the certified one ever gets in
            self.signed_in = True
        if r["kind"] == "shift_end":
            self.signed_in = False
        if r["kind"] == "sample":
            assert self.signed_in and r["operator"] == "V1"
        if r["kind"] == "void":
            voided = {x["voided_record_id"] for x in self.records if x["kind"] == "void"}
            samples = {x["record_id"] for x in self.records if x["kind"] == "sample"}
            assert r["voided_record_id"] in samples and r["voided_record_id"] not in voided

    # -------------------------------------------------------------- rules

    @initialize(sign_in=st.booleans())
    def start_of_day(self, sign_in):
        if sign_in:
            self.step(CodeScanned(CERTS["valid"], "scanner"))

    @rule(which=st.sampled_from(sorted(CERTS)))
    def operator_scans_certificate(self, which):
        self.step(CodeScanned(CERTS[which], "scanner"))

    @rule()
    def certified_operator_signs_in(self):
        self.step(CodeScanned(CERTS["valid"], "scanner"))

    @rule(n=st.integers(0, len(PEOPLE) - 1), colour=st.sampled_from(["green", "green", "green", "yellow", "red"]), key=st.booleans())
    def person_shows_code(self, n, colour, key):
        key = key and colour == "green" and n % 3 == 0
        new = self.step(CodeScanned(CODES[(n, colour, key)], "camera"))
        self.check_registration(new, PEOPLE[n][1])

    @rule(n=st.integers(0, len(PEOPLE) - 1))
    def next_in_queue(self, n):
        new = self.step(CodeScanned(CODES[(n, "green", False)], "camera"))
        self.check_registration(new, PEOPLE[n][1])

    @rule(n=st.integers(0, len(PEOPLE) - 1), valid=st.booleans())
    def person_shows_card(self, n, valid):
        name, number = PEOPLE[n]
        if not valid:
            number = number[:-1] + ("1" if number[-1] != "1" else "2")
        new = self.step(CardRead(IdCard(name, "1", "01", number[6:14], "", number, "", "", "")))
        self.check_registration(new, PEOPLE[n][1] if valid else None)

    @rule(n=st.integers(0, len(PEOPLE) - 1))
    def manual_entry(self, n):
        new = self.step(Command("manual_entry", {"name": PEOPLE[n][0], "id_number": PEOPLE[n][1]}))
        self.check_registration(new, PEOPLE[n][1])

    @rule(text=st.sampled_from(["junk", "SWB1:x.y", "SWABCMD:nonsense", CODES[(0, "green", False)][:-5]]))
    def garbage_scanned(self, text):
        assert self.step(CodeScanned(text, "scanner")) == []

    @rule(name=st.sampled_from(["confirm", "confirm_duplicate", "reject", "close_tube", "end_of_queue", "void_last",
                                "sign_out", "reprint_label", "replace_tube", "open_box", "close_box"]))  # fmt: skip
    def command(self, name):
        new = self.step(Command(name))
        if name.startswith("confirm"):
            assert sum(1 for r in new if r["kind"] == "sample") <= 1

    @rule(mode=st.sampled_from(["1", "10", "20", "household"]))
    def switch_mode(self, mode):
        self.step(Command("switch_mode", {"mode": mode}))

    @rule(pick=st.integers(0, 200))
    def void_some_record(self, pick):
        ids = [r["record_id"] for r in self.records if r["kind"] == "sample"] + ["bogus-0000000001"]
        self.step(Command("void", {"record_id": ids[pick % len(ids)]}))

    @rule(off=st.sampled_from([-1, 0, 0, 1]))
    def packer_counts(self, off):
        snapshot = self.station.snapshot()
        listed = snapshot["box"]["tubes"] if snapshot["box"] else 0
        self.step(Command("box_count", {"count": max(0, listed + off)}))

    @rule()
    def packer_counts_right_and_closes(self):
        snapshot = self.station.snapshot()
        if snapshot["box"] and snapshot["box"]["tubes"]:
            self.step(Command("box_count", {"count": snapshot["box"]["tubes"]}))
            new = self.step(Command("close_box"))
            assert [r["kind"] for r in new][:3] == ["box_close", "label", "label"]

    @rule()
    def courier_takes_a_box(self):
        self.step(Command("handover_box", {"courier": "顺丰张师傅"}))

    @rule(hours=st.sampled_from([1, 5, 24]))
    def time_passes(self, hours):
        self.at += hours * 3600

    @rule()
    def restart(self):
        before = self.station.snapshot()
        self.station = Station(self.cfg, VOLUNTEERS)
        # the same clock as the snapshot before (today's counters depend on it)
        self.station.restore(self.shelf.rows(), self.shelf.store.high_water(), now=_now(self.last_event_at))
        after = self.station.snapshot()
        assert {k: after[k] for k in DERIVED} == {k: before[k] for k in DERIVED}

    @rule()
    def upgraded_store_replays_once(self):
        # the one-time replay of an old store's records gives the same rows as live
        station = Station(self.cfg, VOLUNTEERS)
        assert station.replay(list(reversed(self.records))) == 0  # order of arrival must not matter
        assert station.state.rows() == json.loads(json.dumps(self.station.state.rows()))

    # -------------------------------------------------------------- checks

    def check_registration(self, new: list[dict], number: str | None) -> None:
        samples = [r for r in new if r["kind"] == "sample"]
        assert len(samples) <= 1  # one scan, at most one registration
        if samples:
            assert number is not None and samples[0]["id_number"] == number
            day = samples[0]["at"][:10]
            earlier = self.live_samples(number, day, before=samples[0]["seq"])
            # never silently twice: a second one that day is a confirmed duplicate
            assert not earlier or samples[0]["duplicate_of"] in earlier
            # and never another person's sample (the index only hashes: each hit is checked)
            duplicate = next((r for r in self.records if r["record_id"] == samples[0]["duplicate_of"]), None)
            assert duplicate is None or (duplicate["id_number"] == number and duplicate["at"][:10] == day)

    def live_samples(self, number: str, day: str, before: int) -> list[str]:
        voided = {r["voided_record_id"] for r in self.records if r["kind"] == "void"}
        return [
            r["record_id"]
            for r in self.records
            if r["kind"] == "sample" and r["id_number"] == number and r["at"][:10] == day and r["seq"] < before and r["record_id"] not in voided
        ]

    @invariant()
    def no_tube_over_capacity(self):
        capacity, members, moved = {}, {}, {}
        for r in self.records:
            if r["kind"] == "tube_open":
                capacity[r["tube_id"]] = r["capacity"]
                assert r["capacity"] in POOL_CAPACITY.values()
            elif r["kind"] == "sample":
                members.setdefault(r["tube_id"], []).append(r["record_id"])
                assert r["position"] == len(members[r["tube_id"]]) + sum(len(members.get(o, [])) for o in moved.get(r["tube_id"], []))
            elif r["kind"] == "tube_replace":
                capacity[r["tube_id"]] = capacity[r["old_tube_id"]]
                moved.setdefault(r["tube_id"], []).extend(moved.get(r["old_tube_id"], []) + [r["old_tube_id"]])
                assert r["count"] <= capacity[r["tube_id"]]
        for tube_id, ids in members.items():
            assert len(ids) <= capacity[tube_id]
        for tube_id, olds in moved.items():
            assert len(members.get(tube_id, [])) + sum(len(members.get(o, [])) for o in olds) <= capacity[tube_id]

    @invariant()
    def every_person_is_in_exactly_one_tube_and_box_lists_are_true(self):
        where = {}
        for r in self.records:
            if r["kind"] == "sample":
                where[r["record_id"]] = r["tube_id"]
            elif r["kind"] == "tube_replace":
                for sample_id in r["samples"]:
                    assert where[sample_id] == r["old_tube_id"]
                    where[sample_id] = r["tube_id"]
            elif r["kind"] == "tube_close":
                assert sorted(r["samples"]) == sorted(k for k, v in where.items() if v == r["tube_id"])
            elif r["kind"] == "box_close":
                assert len(r["tubes"]) == r["tube_count"]
        snapshot = self.station.snapshot()
        if snapshot["tube"]:
            assert snapshot["tube"]["count"] == sum(1 for v in where.values() if v == snapshot["tube"]["id"])
            assert snapshot["tube"]["count"] <= snapshot["tube"]["capacity"]

    @invariant()
    def closed_boxes_were_counted(self):
        last_count = {}
        for r in self.records:
            if r["kind"] == "box_count":
                last_count[r["box_id"]] = r
            elif r["kind"] == "box_close":
                count = last_count[r["box_id"]]
                assert count["counted"] == count["listed"] == r["tube_count"]

    @invariant()
    def only_what_the_rules_need_stays_in_memory(self):
        """Tubes handed to a courier (and their boxes) leave the state; the store has them."""
        st = self.station
        handed = {t for r in self.records if r["kind"] == "box_handover" for t in r["tubes"]}
        assert not handed & set(st.state.tubes)
        gone = {r["box_id"] for r in self.records if r["kind"] == "box_handover"}
        assert not gone & set(st.state.boxes)
        fresh = Station(self.cfg, VOLUNTEERS)
        fresh.restore(self.shelf.rows())  # what a restart would load
        assert json.loads(json.dumps(fresh.state.rows())) == json.loads(json.dumps(st.state.rows()))

    @invariant()
    def nobody_signed_in_without_a_record(self):
        assert (self.station.snapshot()["operator"] is not None) == self.signed_in


def _now(at):
    return Now(at, True)


TableSession.TestCase.settings = settings(
    max_examples=100, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_table_session = TableSession.TestCase


class PrelabelledSession(TableSession):
    """The same, with tubes from the lab opened by scanning their barcodes."""

    def __init__(self):
        super().__init__()
        self.source = "prelabelled"
        self.cfg = make_config("10", "prelabelled", 3)
        self.station = Station(self.cfg, VOLUNTEERS)

    @rule(n=st.integers(1, 40))
    def tube_scanned(self, n):
        self.step(CodeScanned(f"LAB{n:06d}", "scanner"))

    @rule(n=st.integers(41, 80))
    def another_tube_scanned(self, n):
        self.step(CodeScanned(f"LAB{n:06d}", "scanner"))


PrelabelledSession.TestCase.settings = settings(
    max_examples=60, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_prelabelled_session = PrelabelledSession.TestCase
