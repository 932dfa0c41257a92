"""Station rules the screen's workflows rely on (issue 15): manual entry for every document
type, the open tube's people, a chosen person voided, the next step in words, refusals
spoken with their reason, and the table fixes (household, mode 1, shift mode, pre-labelled
re-scan, same ID with another name)."""

from __future__ import annotations

from firmware_app.model import DeviceStatus
from tests.station_fixtures import Table, make_id
from tests.test_station import card, person, signed_in


def manual(t: Table, **args) -> None:
    t.cmd("manual_entry", **args)


def test_manual_entry_takes_each_document_type_and_checks_its_number():
    t = signed_in()
    good = {"passport": "E12345678", "hk_macau_permit": "H12345678", "taiwan_permit": "12345678",
            "foreign_permanent": "USA440100000001", "resident_id": make_id(7)}
    for n, (kind, number) in enumerate(good.items(), 1):
        manual(t, name=f"人{n}", id_type=kind, id_number=number, phone="13800000000")
        assert t.show.level == "ok", (kind, t.show.message)
        rec = t.samples()[-1]
        assert (rec["id_type"], rec["source"], rec["operator"]) == (kind, "manual", "V1")  # marked manual, and by whom
    bad = {"hk_macau_permit": "X12345678", "taiwan_permit": "1234", "foreign_permanent": "9" + make_id(3)[1:-1] + "Z",
           "resident_id": make_id(7)[:-1] + ("0" if make_id(7)[-1] != "0" else "1"), "passport": "E1"}
    for kind, number in bad.items():
        manual(t, name="错号", id_type=kind, id_number=number)
        assert t.show.level == "error" and t.new_records == [], kind
        assert t.said and t.said[-1] != "错误"  # the reason is spoken


def test_a_child_with_nothing_is_registered_by_name_and_guardian_phone():
    t = signed_in()
    manual(t, name="王小宝", id_type="none")
    assert t.show.level == "error" and "电话" in t.said[-1]
    manual(t, name="王小宝", id_type="none", phone="13900000000")
    assert t.show.level == "ok" and t.samples()[-1]["id_number"] == ""
    people = t.station.snapshot()["tube"]["people"]
    assert [p["name"] for p in people] == ["王*宝"] and people[0]["id"] == ""


def test_the_open_tubes_people_are_listed_masked_and_any_one_can_be_voided():
    t = signed_in()
    for n in range(1, 4):
        t.scan(person(n), "camera")
    people = t.station.snapshot()["tube"]["people"]
    assert [p["name"] for p in people] == ["市*1", "市*2", "市*3"] and all("*" in p["id"] for p in people)
    middle = people[1]["rid"]
    t.cmd("void", record_id=middle)
    assert t.show.level == "ok" and t.new_records[0]["voided_record_id"] == middle
    assert [p["voided"] for p in t.station.snapshot()["tube"]["people"]] == [False, True, False]
    t.restart()  # the list is in the stored row
    assert [p["voided"] for p in t.station.snapshot()["tube"]["people"]] == [False, True, False]
    t.cmd("close_tube")
    assert t.station.snapshot()["tube"] is None


def test_the_idle_screen_says_the_next_step_and_a_recovered_device_does_not_hide_a_result():
    t = Table()
    assert t.station.snapshot()["message"] == "请扫描志愿者证签到"
    t.do(DeviceStatus("printer", True))
    assert t.station.snapshot()["message"] == "请扫描志愿者证签到"  # not "打印机正常"
    t.sign_in()
    assert "请出示身份证" in t.station.snapshot()["next_step"]["message"]
    t.scan(person(1), "camera")
    result = t.station.snapshot()["message"]
    t.do(DeviceStatus("printer", True))
    assert t.station.snapshot()["message"] == result
    t.do(DeviceStatus("printer", False, "缺纸"))
    assert t.show.level == "error"
    t.do(DeviceStatus("printer", True))
    assert "打印机已恢复" in t.show.message and "请出示身份证" in t.show.message


def test_refusals_are_spoken_with_their_reason():
    t = Table()
    t.scan(person(1), "camera")
    assert t.said == ["请先扫描志愿者证签到，未登记"]


def test_household_prompts_to_close_per_family_and_mode_1_prints_no_label_ahead():
    t = signed_in(mode="household")
    t.scan(person(1), "camera")
    assert "本户结束请按封管" in t.show.message and "本户结束请按封管" in t.said
    t.scan(person(2), "camera")
    assert "封管" in t.station.snapshot()["next_step"]["message"]
    t.cmd("close_tube")
    assert "本户结束" in t.show.message
    t = signed_in(mode="1")
    t.scan(person(1), "camera")
    assert [p.label.kind for p in t.prints] == ["tube"]  # its own label, none for a next tube
    assert t.station.snapshot()["tube"] is None


def test_a_new_shift_starts_in_the_station_files_mode():
    t = signed_in(mode="10")
    t.cmd("switch_mode", mode="20")
    t.cmd("sign_out")
    t.sign_in("V1")
    assert t.station.snapshot()["mode"] == "10"


def test_rescanning_the_open_prelabelled_tube_is_not_a_used_tube():
    t = signed_in(source="prelabelled")
    t.scan("LAB000001")
    t.scan(person(1), "camera")
    t.scan("LAB000001")
    assert t.show.level == "info" and "正在使用" in t.show.message and t.new_records == []


def test_a_duplicate_with_the_same_number_and_another_name_says_so():
    t = signed_in()
    t.do(card(1, name="陈大文"))
    t.do(card(1, name="陈小文"))
    assert t.show.level == "confirm" and "姓名为 陈*文" in t.show.message and "陈大文" not in t.show.message
    assert any("姓名不同" in s for s in t.said)
    assert "陈大文" not in str(t.station.snapshot())


def test_close_tube_while_someone_waits_keeps_the_wait_visible():
    t = signed_in()
    t.scan(person(1), "camera")
    t.scan(person(1), "camera")  # a duplicate: pending
    t.cmd("close_tube")
    assert t.show.level == "confirm" and t.station.snapshot()["pending"]["kind"] == "person"


def test_a_command_card_opens_a_screen_page():
    t = signed_in()
    t.card("SWABCMD:open_view:manual")  # cards are signed for the site (tests/station_fixtures.py)
    assert t.show.level == "info" and t.station.snapshot()["detail"] == {"open": "manual"}
    t.card("SWABCMD:open_view:elsewhere")
    assert t.show.level == "error"
