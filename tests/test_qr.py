import base64
import json
import os
import stat
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_app import qr
from tests.qr_fixtures import (DAY, KEYS, OPERATOR_KEY, STRANGER_KEY, T0, b64url, operator_code, person_code,
                               sign_body)


def test_valid_personal_code_round_trips():
    code = qr.verify(person_code(colour="yellow", key_person=True), KEYS, T0 + 60)
    assert isinstance(code, qr.PersonalCode)
    assert (code.name, code.id_number, code.colour, code.key_person) == ("张三", "11010519491231002X", "yellow", True)
    assert code.expires_at == T0 + 3 * DAY
    assert "11010519491231002X" not in repr(code)


def test_valid_operator_certificate():
    cert = qr.verify(operator_code(), KEYS, T0)
    assert cert == qr.OperatorCert("DG-V-0001", "李志愿", T0 - 30 * DAY, T0 + 335 * DAY)


def test_passport_code():
    code = qr.verify(person_code(id_type="passport", id_number="e1234567", name="ANNA MEIER"), KEYS, T0)
    assert (code.id_type, code.id_number) == ("passport", "E1234567")


def test_forged_signature_is_refused():
    text = person_code(colour="red")
    body, sig = text[len("SWB1:") :].split(".")
    fields = json.loads(base64.urlsafe_b64decode(body + "=="))
    fields[8] = 0  # red code turned green... by someone without the key
    forged_body = base64.urlsafe_b64encode(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode())
    with pytest.raises(qr.QrForged) as err:
        qr.verify("SWB1:" + forged_body.rstrip(b"=").decode() + "." + sig, KEYS, T0)
    assert "伪造" in err.value.reason


def test_code_signed_by_an_untrusted_key_is_refused():
    with pytest.raises(qr.QrUnknownKey):
        qr.verify(person_code(key=STRANGER_KEY), KEYS, T0)


def test_operator_key_cannot_sign_personal_codes():
    with pytest.raises(qr.QrUnknownKey):
        qr.verify(person_code(key=OPERATOR_KEY), KEYS, T0)


def test_stranger_key_forging_a_trusted_key_id_is_refused():
    # A forger copies the trusted key id into a body they sign with their own key.
    trusted_kid = next(iter(KEYS.personal))
    body = ["p", trusted_kid, T0, 60, "张三", 0, "11010519491231002X", "", 0, 0]
    text = sign_body(body, STRANGER_KEY)
    with pytest.raises(qr.QrForged):
        qr.verify(text, KEYS, T0)


def test_expired_and_too_old_and_future_codes():
    with pytest.raises(qr.QrExpired):
        qr.verify(person_code(valid=DAY), KEYS, T0 + DAY + 61)
    with pytest.raises(qr.QrExpired):
        qr.verify(person_code(valid=30 * DAY), KEYS, T0 + 4 * DAY, max_age_s=72 * 3600)
    with pytest.raises(qr.QrNotYetValid):
        qr.verify(person_code(issued_at=T0 + DAY), KEYS, T0)
    # an unsynchronised clock (days behind) does not block sampling
    assert qr.verify(person_code(issued_at=T0 + DAY), KEYS, T0, check_not_before=False)
    with pytest.raises(qr.QrExpired):
        qr.verify(operator_code(valid=DAY), KEYS, T0)


def test_truncated_codes_are_refused_at_every_length():
    text = person_code()
    for cut in range(len(text)):
        with pytest.raises(qr.QrError):
            qr.verify(text[:cut], KEYS, T0)


def test_oversized_code_is_refused_before_parsing():
    with pytest.raises(qr.QrOversized):
        qr.verify("SWB1:" + "A" * 5000 + "." + "B" * 86, KEYS, T0)


def test_bad_id_number_inside_a_signed_code_is_refused():
    with pytest.raises(qr.QrBadIdNumber) as err:
        qr.verify(person_code(id_number="110105194912310021"), KEYS, T0)
    assert "校验位" in err.value.reason


@given(st.text(max_size=400))
def test_random_text_never_verifies(text):
    with pytest.raises(qr.QrError):
        qr.verify(text, KEYS, T0)


@given(st.binary(max_size=300), st.binary(min_size=64, max_size=64))
def test_random_bytes_in_swb1_shape_never_verify(body, sig):
    text = "SWB1:" + b64url(body) + "." + b64url(sig)
    with pytest.raises(qr.QrError):
        qr.verify(text, KEYS, T0)


@given(st.integers(0, 210), st.sampled_from("AQgw_-9"))
def test_any_changed_character_fails(pos, char):
    text = person_code()
    pos = len("SWB1:") + pos
    changed = text[:pos] + char + text[pos + 1 :]
    if changed != text:
        with pytest.raises(qr.QrError):
            qr.verify(changed, KEYS, T0)


def test_key_from_base64_rejects_wrong_length():
    with pytest.raises(ValueError, match="32"):
        qr.public_key_from_base64(base64.b64encode(b"x" * 31).decode())
    with pytest.raises(ValueError):
        qr.public_key_from_base64("REPLACE-WITH-KEY!")


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "firmware_app", "qr", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_keygen_issue_and_png(tmp_path):
    import zxingcpp
    from PIL import Image

    keyfile = tmp_path / "authority.pem"
    out = run_cli("keygen", "--out", str(keyfile))
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    pub = out.stdout.strip()
    keys = qr.Keys.from_base64([pub], [pub])
    assert run_cli("keygen", "--out", str(keyfile)).returncode == 1  # never overwrites a key

    png = tmp_path / "code.png"
    out = run_cli("issue", "--key", str(keyfile), "--person", "--name", "王五", "--id-number", "11010519491231002x",
                  "--colour", "red", "--png", str(png))  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout.strip()
    code = qr.verify(text, keys, time.time())
    assert (code.name, code.colour, code.id_number) == ("王五", "red", "11010519491231002X")
    decoded = zxingcpp.read_barcodes(Image.open(png))
    assert [d.text for d in decoded] == [text]

    out = run_cli("issue", "--key", str(keyfile), "--operator", "--cert-id", "V9", "--name", "赵六")
    assert out.returncode == 0
    assert qr.verify(out.stdout.strip(), keys, time.time()).cert_id == "V9"


def test_cli_refuses_without_key_file_and_bad_id(tmp_path):
    out = run_cli("issue", "--person", "--name", "王五", "--id-number", "11010519491231002X")
    assert out.returncode == 2 and "--key" in out.stderr
    out = run_cli("issue", "--key", str(tmp_path / "missing.pem"), "--person", "--name", "a", "--id-number", "1")
    assert out.returncode == 1
    (tmp_path / "k").write_text("not a key")
    out = run_cli("issue", "--key", str(tmp_path / "k"), "--operator", "--cert-id", "V", "--name", "n")
    assert out.returncode == 1


# ------------------------------------------------------------- issue 13, findings 8 and 9
def test_a_code_issued_far_in_the_future_is_refused_even_with_an_unsynchronised_clock():
    from firmware_app import qr as q
    from tests.qr_fixtures import KEYS, T0, person_code

    ten_years = person_code(issued_at=T0 + 10 * 365 * 86400, valid=3 * 86400)
    for check in (True, False):
        with pytest.raises(q.QrNotYetValid):
            q.verify(ten_years, KEYS, T0, check_not_before=check)
    hours_ahead = person_code(issued_at=T0 + 6 * 3600)  # an unsynchronised clock a few hours behind
    assert q.verify(hours_ahead, KEYS, T0, check_not_before=False).name


@pytest.mark.parametrize("phone,ok", [("13812345678", True), ("+86 138 1234 5678", True), ("0769-22223333", True),
                                      ("+14155550123", True), ("", True), ("=HYPERLINK(\"x\")", False),
                                      ("12345", False), ("1381234567\t", False), ("9" * 19, False)])
def test_phone_numbers_in_codes_are_validated(phone, ok):
    from firmware_app import qr as q
    from tests.qr_fixtures import KEYS, T0, person_code

    code = person_code(phone=phone)
    if ok:
        assert q.verify(code, KEYS, T0 + 60).phone == phone
    else:
        with pytest.raises(q.QrMalformed):
            q.verify(code, KEYS, T0 + 60)


def test_a_key_that_is_not_one_is_refused_in_both_languages():
    with pytest.raises(qr.KeyTextError) as exc:
        qr.public_key_from_base64("AAAA")
    assert exc.value.reason == "解码后是 3 字节，Ed25519 公钥应为 32 字节"
    assert str(exc.value) == exc.value.reason_en == "decodes to 3 bytes, an Ed25519 public key has 32"
    with pytest.raises(ValueError, match="not base64"):  # still a ValueError for the station file check
        qr.public_key_from_base64("not a key!")
