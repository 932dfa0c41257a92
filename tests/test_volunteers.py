import datetime as dt
import json
import os
import stat

import pytest

from firmware_app import volunteers as vol

LIST = {
    "volunteers": [
        {"cert_id": "V1", "name": "李志愿", "expires": "2027-06-30"},
        {"cert_id": "V2", "name": "王过期", "expires": "2026-01-31"},
        {"cert_id": "V3", "name": "赵撤销", "expires": "2027-06-30", "revoked": True},
    ]
}
TODAY = dt.date(2026, 11, 23)


def test_check_says_why_someone_may_not_operate():
    people = vol.parse(LIST)
    assert vol.check(people, "V1", TODAY).name == "李志愿"
    assert vol.check(people, "V1", dt.date(2027, 6, 30))  # the expiry day is still valid
    for cert_id, words in [("V1", "expired"), ("V2", "expired"), ("V3", "revoked"), ("V9", "not on")]:
        with pytest.raises(vol.NotCertified) as err:
            vol.check(people, cert_id, dt.date(2027, 7, 1) if cert_id == "V1" else TODAY)
        assert words in err.value.reason_en and err.value.reason


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"volunteers": [{"cert_id": "V1", "name": "a"}]},
        {"volunteers": [{"cert_id": "", "name": "a", "expires": "2027-01-01"}]},
        {"volunteers": [{"cert_id": "V1", "name": "a", "expires": "2027-01-01", "revoked": "no"}]},
        {"volunteers": [{"cert_id": "V1", "name": "a", "expires": "2027-01-01"}] * 2},
    ],
)
def test_a_bad_list_is_refused_whole(data):
    with pytest.raises(vol.VolunteerListError):
        vol.parse(data)


def test_save_and_load_round_trip_private(tmp_path):
    path = tmp_path / "volunteers.json"
    assert vol.load(str(path)) == {}
    vol.save(str(path), vol.parse(LIST))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert vol.load(str(path)) == vol.parse(LIST)
    path.write_text("{not json")
    with pytest.raises(vol.VolunteerListError):
        vol.load(str(path))
    assert json.loads(vol.to_json(vol.parse(LIST)))["volunteers"][2]["revoked"] is True


def test_a_refused_list_says_why_entry_by_entry_in_both_languages():
    bad = {"volunteers": [{"cert_id": "V1", "name": "李志愿", "expires": "2027-02-30"}, "V2",
                          {"cert_id": "V1", "name": "", "expires": "2027-06-30"}]}
    with pytest.raises(vol.VolunteerListError) as exc:
        vol.parse(bad)
    assert exc.value.reason == "第 0 条：expires 2027-02-30 不是真实的日期；第 1 条：不是对象；第 2 条：缺少 name"
    assert exc.value.reason_en == str(exc.value) == (
        "volunteers[0]: expires 2027-02-30 is not a real date; volunteers[1]: not an object; volunteers[2]: name missing")
