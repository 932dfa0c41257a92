import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_app.idnumber import PROVINCES, IdNumberError, check_char, validate

TODAY = dt.date(2026, 11, 23)


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",  # the GB 11643 example, check character X
        "110101199003074477",
        "440308199901011218",
        "310104197001010012",
    ],
)
def test_real_numbers_pass(number):
    assert validate(number, TODAY) == number


def test_lowercase_x_is_normalised():
    assert validate("11010519491231002x", TODAY) == "11010519491231002X"


@pytest.mark.parametrize(
    "number, words",
    [
        ("110105194912310021", "check character"),  # X expected
        ("110101199003074478", "check character"),
        ("11010519900230" + "001" + check_char("11010519900230001"), "not a real date"),  # 30 February
        ("99010519491231" + "002" + check_char("99010519491231002"), "region code 99"),
        ("10010519491231" + "002" + check_char("10010519491231002"), "region code 10"),
        ("11010520270101" + "002" + check_char("11010520270101002"), "in the future"),
        ("440524188001010014", "before 1900"),  # valid check digit, born 1880
        ("11010519491231002", "18 characters"),
        ("11010519491231002X1", "18 characters"),
        ("", "18 characters"),
        ("1101051949123100２X", "characters other"),  # full-width digit
        ("11010519491231X02X", "characters other"),
    ],
)
def test_bad_numbers_are_refused_with_a_reason(number, words):
    with pytest.raises(IdNumberError) as err:
        validate(number, TODAY)
    assert words in err.value.reason_en
    assert err.value.reason  # the zh-CN reason for the screen


def test_tomorrow_is_in_the_future_but_today_is_fine():
    born_today = "110105" + TODAY.strftime("%Y%m%d") + "123"
    assert validate(born_today + check_char(born_today), TODAY)
    born_tomorrow = "110105" + (TODAY + dt.timedelta(days=1)).strftime("%Y%m%d") + "123"
    with pytest.raises(IdNumberError):
        validate(born_tomorrow + check_char(born_tomorrow), TODAY)


@st.composite
def valid_numbers(draw):
    province = draw(st.sampled_from(sorted(PROVINCES)))
    region = f"{province:02d}{draw(st.integers(0, 9999)):04d}"
    birth = draw(st.dates(dt.date(1900, 1, 1), TODAY))
    first17 = region + birth.strftime("%Y%m%d") + f"{draw(st.integers(0, 999)):03d}"
    return first17 + check_char(first17)


@given(valid_numbers())
def test_every_well_formed_number_passes(number):
    assert validate(number, TODAY) == number


@given(valid_numbers(), st.integers(0, 17), st.integers(1, 10))
def test_any_single_character_change_fails(number, pos, delta):
    alphabet = "0123456789X" if pos == 17 else "0123456789"
    old = alphabet.index(number[pos])
    changed = number[:pos] + alphabet[(old + delta) % len(alphabet)] + number[pos + 1 :]
    if changed == number:
        return
    with pytest.raises(IdNumberError):
        validate(changed, TODAY)
