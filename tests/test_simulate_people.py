"""The simulator's synthetic people pass the station's own ID checks, never repeat,
and their signed codes verify against the throwaway authority's keys."""

import datetime as dt
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app import idnumber, qr
from hw_mocks.people import REGIONS, Authority, People


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_people_have_valid_distinct_id_numbers(seed):
    crowd = People(seed)
    people = [crowd.person() for _ in range(60)]
    today = dt.date.today()
    assert len({p.id_number for p in people}) == 60
    for p in people:
        assert idnumber.validate(p.id_number, today) == p.id_number
        assert p.id_number[:6] in REGIONS and p.address.startswith(REGIONS[p.id_number[:6]])
        assert int(p.id_number[16]) % 2 == (1 if p.gender == "1" else 0)  # odd sequence: male
        assert p.id_card().birth == p.id_number[6:14]
        assert p.id_number not in repr(p)  # masked when logged


def test_codes_of_every_colour_and_operator_certs_verify():
    authority = Authority()
    keys = qr.Keys.from_base64([authority.personal_public_b64], [authority.operator_public_b64])
    now = time.time()
    crowd = People(7)
    for colour in ("green", "yellow", "red"):
        person = crowd.person(colour=colour, key_person=colour == "red", via="scanner")
        code = qr.verify(authority.sampling_code(person, issued_at=now - 60), keys, now)
        assert (code.id_number, code.colour, code.key_person) == (person.id_number, colour, colour == "red")
    cert = qr.verify(authority.operator_cert("SIM-V-0001", "李志愿", issued_at=now - 60), keys, now)
    assert isinstance(cert, qr.OperatorCert) and cert.cert_id == "SIM-V-0001"
    other = Authority()  # a code signed by another authority is not accepted
    forged = other.sampling_code(crowd.person(), issued_at=now - 60)
    with pytest.raises(qr.QrError):
        qr.verify(forged, keys, now)


def test_households_share_a_number():
    crowd = People(3)
    family = crowd.household(4)
    assert len({p.household for p in family}) == 1 and len({p.id_number for p in family}) == 4
    assert crowd.household(2)[0].household != family[0].household
