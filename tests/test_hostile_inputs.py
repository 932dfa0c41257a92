"""Issue 18: every input from the fuzzing pass, exactly as found, gives the documented
refusal (a problem list, a red screen with a reason, StoreCorrupt-and-repair) and never a
traceback, a hang or a wrong acceptance. One section per numbered item."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from firmware_app import config
from tests.test_config import GOOD

# ---------------------------------------------------------------- 1. station file crashes

TOP = GOOD.split("[station]")[0]  # "" : the header-less top of the file
STATION_ONLY = GOOD.split("[authority]")[0]


@pytest.mark.parametrize("text, key", [
    ("sampling = 5\n" + GOOD, "sampling"),
    ("authority = [1]\n" + STATION_ONLY, "authority"),
    ("devices = 1\n" + GOOD, "devices"),
    ('mqtt = "x"\n' + GOOD, "mqtt"),
    ("station = 5\n", "station"),
    (GOOD + "\n[devices]\nprinter = 7\n", "devices.printer"),
    ("ui = 5\n" + GOOD, "ui"),
])
def test_a_top_level_key_that_is_not_a_table_is_a_problem_not_a_traceback(text, key):
    problems = config.check_text(text, allow_demo_keys=True)
    assert any(p.key == key and "not of type 'object'" in p.message for p in problems), problems


@pytest.mark.parametrize("text, words", [
    ("a = " + "[" * 2000 + "\n", "nested more than"),
    (GOOD.replace("[station]", '[sampling]\ntube_pattern = "a{99999999999}"\n[station]'), "not a regular expression"),
    (GOOD.replace("[station]", '[sampling]\ntube_pattern = "' + "(" * 1000 + ")" * 1000 + '"\n[station]'), "longer than"),
    (GOOD.replace("[station]", '[sampling]\ntube_pattern = "' + "(" * 100 + ")" * 100 + '"\n[station]'), "nested groups"),
])
def test_deep_or_huge_input_is_a_problem_not_a_recursion_or_overflow_error(text, words):
    problems = config.check_text(text, allow_demo_keys=True)
    assert problems and any(words in p.message for p in problems), problems


def test_config_check_prints_problems_not_a_traceback(tmp_path):
    for i, text in enumerate(["devices = 1\n" + GOOD, "a = " + "[" * 2000 + "\n", "ui = 5\n"]):
        f = tmp_path / f"s{i}.toml"
        f.write_text(text)
        r = subprocess.run([sys.executable, "-m", "firmware_app", "config", "check", str(f)], capture_output=True, text=True)
        assert r.returncode == 1 and "Traceback" not in r.stderr and "problem(s)" in r.stderr, r.stderr


@pytest.mark.parametrize("text", ["ui = 5\n", "ui = [1]\n[ui.x]\n", "a = " + "[" * 2000 + "\n", "[ui]\nport = true\n",
                                  "\xff"])
def test_the_refusal_screen_reads_its_port_from_any_broken_file(tmp_path, text):
    f = tmp_path / "s.toml"
    f.write_bytes(text.encode("utf-8", "surrogatepass") if text != "\xff" else b"\xff\xfe")
    assert config.ui_port_of(str(f)) in (None, 8080)  # what `run` hands its refusal screen


def test_identifiers_match_whole_a_final_line_break_is_refused():
    problems = config.check_text(GOOD.replace('"t03"', '"t03\\n"'), allow_demo_keys=True)
    assert [p.key for p in problems] == ["station.table"]
    problems = config.check_text(GOOD + '\n[devices.printer]\ntarget = "usb:0x0416:0x5011\\n"\n', allow_demo_keys=True)
    assert [p.key for p in problems] == ["devices.printer.target"]


# ---------------------------------------------------------------- 7. NaN and infinity


@pytest.mark.parametrize("where, line, key", [
    ('table = "t03"', 'table = "t03"\nutc_offset_hours = nan', "station.utc_offset_hours"),
    ("operator_keys", "max_code_age_hours = nan\noperator_keys", "authority.max_code_age_hours"),
    ("operator_keys", "max_code_age_hours = +inf\noperator_keys", "authority.max_code_age_hours"),
    ('table = "t03"', 'table = "t03"\nutc_offset_hours = -nan', "station.utc_offset_hours"),
])
def test_nan_and_inf_are_refused_wherever_a_number_is_configured(where, line, key):
    problems = config.check_text(GOOD.replace(where, line), allow_demo_keys=True)
    assert any(p.key == key and "finite" in p.message for p in problems), problems
    for section, name in [("devices.camera", "fps"), ("devices.idcard", "timeout_s")]:
        problems = config.check_text(GOOD + f"\n[{section}]\n{name} = nan\n", allow_demo_keys=True)
        assert any(p.key == f"{section}.{name}" for p in problems), problems


# ---------------------------------------------------------------- 3. pushed volunteer list

def _pushed_list(tmp_path, text: str):
    from firmware_app import pushed

    (tmp_path / "pushed").mkdir(exist_ok=True)
    (tmp_path / "pushed" / "volunteers.json").write_text(text)
    provisioned = tmp_path / "volunteers.json"
    provisioned.write_text('{"volunteers": [{"cert_id": "V1", "name": "李志愿", "expires": "2027-06-30"}]}')
    return pushed.load_volunteers(str(tmp_path), str(provisioned))


@pytest.mark.parametrize("text", [
    '{"volunteers": [], "pushed": []}',
    '{"volunteers": [], "pushed": {"base_sha256": []}}',
    '{"volunteers": [], "pushed": 5}',
    "[" * 5000 + "]" * 5000,
    '{"volunteers": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"volunteers": [{"cert_id": "V1", "name": "x", "expires": NaN}]}',
])
def test_a_damaged_pushed_list_is_set_aside_and_the_provisioned_one_used(tmp_path, text):
    assert list(_pushed_list(tmp_path, text)) == ["V1"]
    assert not (tmp_path / "pushed" / "volunteers.json").exists()


def test_a_provisioned_list_nested_5000_deep_is_a_volunteer_list_error_not_recursion(tmp_path):
    from firmware_app import volunteers

    f = tmp_path / "v.json"
    f.write_text('{"volunteers": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(volunteers.VolunteerListError, match="nested"):
        volunteers.load(str(f))


def test_the_kiosk_starts_with_a_pushed_list_holding_pushed_as_a_list(tmp_path):
    """The daemon's start-up handler takes OSError/ValueError: nothing else may escape. The
    kiosk `run` builds starts (READY) and its station is up, with nobody able to sign in."""
    from firmware_app import daemon
    from firmware_app.sdnotify import Notifier
    from hw_mocks.table import Table

    table = Table(tmp_path / "table", devices=()).start()
    data = tmp_path / "data"
    (data / "pushed").mkdir(parents=True)
    (data / "pushed" / "volunteers.json").write_text('{"volunteers": [], "pushed": []}')
    text = table.station_file(str(data)).replace(str(table.dir / "volunteers.json"), str(tmp_path / "none.json"))
    (tmp_path / "swabkiosk.toml").write_text(text)
    kiosk = daemon.Kiosk(daemon.station_config(str(tmp_path / "swabkiosk.toml")), use_ui=False, notifier=Notifier({}))
    try:
        kiosk.start()
        assert kiosk.ready_s is not None
        snap = kiosk.runtime.call(kiosk.runtime.station.snapshot)
        assert snap["operator"] is None
    finally:
        kiosk.stop()
        table.stop()


@pytest.mark.parametrize("entry, words", [
    ({"cert_id": "V1", "name": "李\n志愿", "expires": "2027-06-30"}, "one-line"),
    ({"cert_id": "V1", "name": "李志愿", "expires": 20270630}, "YYYY-MM-DD"),
    ({"cert_id": "V1", "name": "李志愿", "expires": "2027-W26-3"}, "YYYY-MM-DD"),
    ({"cert_id": "V1", "name": "李志愿", "expires": "２０２７-06-30"}, "YYYY-MM-DD"),
    ({"cert_id": "V1\n", "name": "李志愿", "expires": "2027-06-30"}, "one-line"),
    ({"cert_id": "V1:x", "name": "李志愿", "expires": "2027-06-30"}, "cert_id"),
])
def test_volunteer_entries_are_checked_whole(entry, words):
    from firmware_app import volunteers

    with pytest.raises(volunteers.VolunteerListError, match=words):
        volunteers.parse({"volunteers": [entry]})


# ---------------------------------------------------------------- 10. ID-card text fields

# The 256-byte text block of 李四 (hw_mocks LI_SI) with a line feed in the name: 4E67 0A00 DB56
LI_SI_NEWLINE_NAME = bytes.fromhex(
    "4e670a00db56200020002000200020002000200020002000200020002000320030003100310039003400390031003200330031001753ac4e"
    "025e1d6733963a534b6dd58b578853903200f753200020002000200020002000200020002000200020002000200020002000200020002000"
    "200020002000200020003100310030003100300035003100390034003900310032003300310030003000320058001753ac4e025e6c51895b"
    "405c1d6733960652405c20002000200020002000320030003100300030003100300031007f951f6720002000200020002000200020002000"
    "2000200020002000200020002000200020002000200020002000200020002000")


def _base_info(text: bytes) -> bytes:
    return (256).to_bytes(2, "big") + (0).to_bytes(2, "big") + text


@pytest.mark.parametrize("change, field", [
    ({"birth": "19491399"}, "birth"),  # not a date
    ({"nation": "00"}, "nation"),
    ({"birth": "19500101"}, "birth"),  # a real date, but not the one in the ID number
    ({"name": "李\n四"}, "name"),
    ({"gender": "1"}, "gender"),  # 11010519491231002X: sequence 002, even: female
    ({"gender": "9"}, "gender"),
    ({"valid_from": "20101301"}, "valid_from"),
    ({"valid_to": "20000101"}, "valid_to"),  # before valid_from
])
def test_decode_base_info_refuses_fields_that_contradict_themselves(change, field):
    from dataclasses import replace

    from drivers import idcard
    from hw_mocks.idcard_reader import LI_SI, text_block

    with pytest.raises(idcard.CardDataError) as exc:
        idcard.decode_base_info(_base_info(text_block(replace(LI_SI, **change))))
    assert field in exc.value.reason_en and "重新放卡" in exc.value.reason


def test_the_exact_newline_name_block_is_refused():
    from drivers import idcard

    assert len(LI_SI_NEWLINE_NAME) == 256
    with pytest.raises(idcard.CardDataError) as exc:
        idcard.decode_base_info(_base_info(LI_SI_NEWLINE_NAME))
    assert exc.value.reason_en == "card fields malformed: name"


# ---------------------------------------------------------------- 11. QR integers


@pytest.mark.parametrize("index, value", [(2, True), (3, True), (5, False), (8, False), (9, True), (9, False), (9, 2),
                                          (2, 1795000000.0)])
def test_a_signed_personal_body_with_true_false_where_the_format_says_integer_is_malformed(index, value):
    from firmware_app import qr
    from tests.qr_fixtures import SAMPLING_KEY, T0, sign_body

    body = ["p", qr.key_id(SAMPLING_KEY.public_key()), T0, 4320, "张三", 0, "11010519491231002X", "13812345678", 0, 0]
    keys = qr.Keys.from_base64([qr.public_key_base64(SAMPLING_KEY.public_key())], [])
    assert qr.verify(sign_body(body, SAMPLING_KEY), keys, T0 + 60).colour == "green"
    body[index] = value
    with pytest.raises(qr.QrMalformed):
        qr.verify(sign_body(body, SAMPLING_KEY), keys, T0 + 60)


@pytest.mark.parametrize("index", [2, 3])
def test_a_signed_operator_body_with_true_for_a_time_is_malformed(index):
    from firmware_app import qr
    from tests.qr_fixtures import OPERATOR_KEY, T0, sign_body

    body = ["o", qr.key_id(OPERATOR_KEY.public_key()), T0, 600, "DG-V-0001", "李志愿"]
    body[index] = True
    keys = qr.Keys.from_base64([], [qr.public_key_base64(OPERATOR_KEY.public_key())])
    with pytest.raises(qr.QrMalformed):
        qr.verify(sign_body(body, OPERATOR_KEY), keys, T0 + 1)


# ---------------------------------------------------------------- 13. scanner chunking

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _lines(chunks, terminator="LF", max_line=4096):
    from drivers.scanner import NEED_DATA, LineParser

    parser, out = LineParser(terminator, max_line=max_line), []
    for chunk in chunks:
        parser.receive_data(chunk)
        while (event := parser.next_event()) is not NEED_DATA:
            out.append(event)
    return out


def test_lf_mode_4095_bytes_three_crs_then_lf_is_the_same_in_one_piece_or_two():
    data = b"A" * 4095 + b"\r\r\r"  # 41 41 .. 41 0d 0d 0d, then 0a
    assert _lines([data, b"\n"]) == _lines([data + b"\n"])
    assert [e.kind for e in _lines([data, b"\n"])] == ["too_long"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"A", b"AB", b"\r", b"\n", b"\t", b"\r\n", b"\xff", b"AAAAAAAA", b"\r\r\r"]), max_size=40),
       st.sampled_from(["CR", "LF", "CRLF", "TAB"]), st.lists(st.integers(0, 80), max_size=8))
def test_the_lines_never_depend_on_how_the_bytes_were_chunked(parts, terminator, cuts):
    data = b"".join(parts)
    pieces, at = [], 0
    for cut in sorted(cuts):
        pieces.append(data[at:cut])
        at = max(at, cut)
    pieces.append(data[at:])
    assert _lines(pieces, terminator, max_line=8) == _lines([data], terminator, max_line=8)


# ---------------------------------------------------------------- 6. screen command bodies


@pytest.mark.parametrize("body", [
    b'{"name":"switch_mode","args":{"mode":[]}}',
    b'{"name":"switch_mode","args":{"mode":{}}}',
    b'{"name":"switch_mode","args":{"mode":' + b"[" * 2000 + b"]" * 2000 + b"}}",  # < 4,096 bytes, 2,002 deep
    b"[" * 2040 + b"]" * 2040,
    b'{"name":"close_tube","args":{},"x":NaN}',
])
def test_a_hostile_screen_command_gets_a_400_answer_not_a_dropped_connection(tmp_path, body):
    from tests.test_ui import post_command
    from tests.ui_fixtures import serving_ui

    assert len(body) <= 4096
    with serving_ui(tmp_path) as ui:
        resp, payload = post_command(ui, body)
        assert resp.status == 400 and json.loads(payload)["ok"] is False
        resp, payload = post_command(ui, {"name": "switch_mode", "args": {"mode": "20"}})  # still serving
        assert resp.status == 202


def test_the_mode_validator_refuses_an_unhashable_mode_with_a_value_error():
    from firmware_app import commands

    for mode in ([], {}, ["10"], 10, None):
        with pytest.raises(ValueError, match="mode"):  # CommandError is a ValueError: the screen answers 400
            commands.check("switch_mode", {"mode": mode}, "ui")


# ---------------------------------------------------------------- 9. no full ID number leaves the station

import datetime as _dt  # noqa: E402
import unicodedata

from firmware_app import idnumber, privacy  # noqa: E402
from firmware_app.model import CommandResult, Say, Show  # noqa: E402

LEAKED = "11010519491231002X"
TODAY = _dt.date(2026, 11, 18)

id_numbers = st.builds(
    lambda region, birth, seq: (lambda first17: first17 + idnumber.check_char(first17))(f"{region}{birth:%Y%m%d}{seq:03d}"),
    st.sampled_from(["110105", "440104", "650102", "810000", "910000"]),
    st.dates(_dt.date(1900, 1, 1), TODAY), st.integers(0, 999))
old_numbers = st.builds(lambda region, birth, seq: f"{region}{birth:%y%m%d}{seq:03d}",
                        st.sampled_from(["110105", "440104"]), st.dates(_dt.date(1900, 1, 1), _dt.date(1999, 12, 31)),
                        st.integers(0, 999))
filler = st.text(st.sampled_from("管原因：,. -_0123456789Xx*：() abc١٢"), max_size=12)


def _id_char(ch: str) -> str:
    """One character as a reader of ID numbers takes it: a decimal digit of any script as its
    ASCII digit, x/X (half- or full-width) as X, anything else as a break ("\0")."""
    if ch in "xXＸｘ":
        return "X"
    digit = unicodedata.decimal(ch, None)
    return str(digit) if digit is not None else "\0"


def _surviving(text: str) -> list[str]:
    """Every valid 18-character ID number in text (digits of any script read as ASCII)."""
    norm = "".join(_id_char(ch) for ch in text)
    return [norm[k:k + 18] for k in range(len(norm) - 17) if idnumber.is_valid(norm[k:k + 18], TODAY)]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(filler, id_numbers, id_numbers.map(str.lower), old_numbers), max_size=6))
def test_no_valid_id_number_survives_masking_and_nothing_else_changes(parts):
    text = "".join(parts)
    masked = privacy.mask_ids(text)
    assert _surviving(masked) == []
    assert len(masked) == len(text)
    assert all(a == b or b == "*" for a, b in zip(text, masked))
    for part in parts:
        if len(part) == 18 and idnumber.is_valid(part, TODAY) and part in text:
            assert part not in masked


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Nd",)), max_size=40))
def test_text_without_digits_is_unchanged(text):
    assert privacy.mask_ids(text) == text


def test_every_string_of_show_say_and_command_result_is_masked_recursively():
    show = privacy.mask_effect(Show("error", f"关管原因无效：{LEAKED}", f"not {LEAKED!r}",
                                    {"people": [{"id": LEAKED, "n": 3}], LEAKED: (LEAKED,)}))
    say = privacy.mask_effect(Say(f"身份证{LEAKED}"))
    result = privacy.mask_effect(CommandResult("close_tube", LEAKED, False, f"reason {LEAKED}", {"box_id": LEAKED, "k": [LEAKED]}))
    for effect in (show, say, result):
        assert LEAKED not in repr(effect) and "110105********002X" in repr(effect)
    assert show.detail["people"][0]["n"] == 3 and result.name == "close_tube" and result.ok is False


@pytest.mark.parametrize("command, args", [
    ("close_tube", {"reason": LEAKED}),
    ("void", {"record_id": LEAKED}),
    ("replace_tube", {"tube_id": LEAKED}),
    ("replace_tube", {"new_tube_id": LEAKED, "reason": LEAKED}),
    ("handover_box", {"courier": LEAKED}),
    ("box_count", {"count": LEAKED}),
])
def test_the_station_effects_for_an_id_number_argument_carry_none_once_masked(command, args):
    """What station.handle returns today leaks (item 9); the one line at its return masks it."""
    from firmware_app.model import Command as Cmd
    from tests.test_station import person, signed_in

    t = signed_in()
    t.scan(person(1), "camera")
    effects = t.do(Cmd(command, args, "mqtt", txn="t1"))
    shown = [privacy.mask_effect(e) for e in effects if isinstance(e, (Show, Say, CommandResult))]
    assert shown and not any(LEAKED in repr(e) for e in shown)


# ---------------------------------------------------------------- 4, 8. void cards with other scripts' digits


@pytest.mark.parametrize("digits", ["⁰⁰⁰⁰⁰⁰⁰⁰⁰¹", "٠٠٠٠٠٠٠٠٠٤", "０００００００００４", "000000000４"])
def test_a_void_card_with_non_ascii_digits_is_refused_and_voids_nothing(digits):
    from tests.test_station import person, signed_in

    t = signed_in()
    for n in range(1, 5):
        t.scan(person(n), "camera")
    before = len(t.records)
    t.card(f"SWABCMD:void:{t.cfg.station.device_id}-{digits}")  # no ValueError from _ordinal
    assert t.show.level == "error" and len(t.records) == before
    assert not t.station.snapshot()["last"]["voided"]
    assert not any(r["kind"] == "void" for r in t.records)


# ---------------------------------------------------------------- 12. MQTT txn matched whole


def test_a_txn_with_a_final_line_break_is_refused():
    from firmware_app import uplink

    command, txn, why = uplink.validate_command("close_tube", b'{"txn": "abc\\n", "args": {}}')
    assert command is None and txn is None and "txn" in why[1]


# ---------------------------------------------------------------- 5. damaged legacy store files

import pathlib  # noqa: E402
import tarfile  # noqa: E402

LEGACY = pathlib.Path(__file__).parent / "fixtures" / "legacy_store.tar.gz"


LEGACY_DAMAGE = {
    "doc id 1 -> q": ("meta.json", lambda raw: raw.replace(b'{"1":', b'{"q":', 1)),
    "ack line seqs 5": ("segments/0000000001.acks", lambda raw: b'{"at":1,"seqs":5}\n' + raw),
    "meta is a list": ("meta.json", lambda raw: b'{"meta":[]}'),
    "meta entry v []": ("meta.json", lambda raw: raw.replace(b'"v":19', b'"v":[]', 1)),
    "segment meta []": ("segments/0000000001.json", lambda raw: raw[:-1] + b',"meta":[]}' if b'"meta"' not in raw
                        else raw.replace(b'"meta":{', b'"meta":[],"x":{', 1)),
    "meta nested 5000": ("meta.json", lambda raw: b'{"meta":' + b"[" * 5000 + b"]" * 5000 + b"}"),
    "segment nested 5000": ("segments/0000000001.json", lambda raw: b"[" * 5000 + b"]" * 5000),
    "ack nested 5000": ("segments/0000000001.acks", lambda raw: b"[" * 5000 + b"\n" + raw),
    "meta key a list": ("meta.json", lambda raw: raw.replace(b'"key":"uplink"', b'"key":["uplink"]', 1)),
    "meta key a number": ("meta.json", lambda raw: raw.replace(b'"key":"uplink"', b'"key":7', 1)),
}


@pytest.mark.parametrize("name", list(LEGACY_DAMAGE))
def test_a_damaged_legacy_data_dir_imports_or_is_repaired_and_the_kiosk_starts(tmp_path, name):
    from firmware_app import daemon
    from firmware_app.store_schema import StoreError

    with tarfile.open(LEGACY) as tar:
        tar.extractall(tmp_path)
    data = tmp_path / "data"
    rel, damage = LEGACY_DAMAGE[name]
    path = data / rel
    path.write_bytes(damage(path.read_bytes()))
    try:
        store = daemon.open_store(str(data))
    except StoreError as exc:  # a refusal in plain words is allowed; a plain exception is not
        assert getattr(exc, "args", None)
        return
    with store:
        kept = len(list(store.iter_records()))
        assert kept >= (97 if rel.startswith("segments/0000000001.json") else 129)  # that file held seqs 1-32
        assert store.reports()[-1]["kept"] == kept


# ---------------------------------------------------------------- found by the long fuzz run

PERMIT_WITH_NATION_GARBAGE = bytes.fromhex("01000000205f094e2000200020002000200020002000200020002000200020002000310020002040310039003900350030003600310035007f5e1c4e01771c4e9e83025e9e83ce57578853904b6dd58bef8d3100f753200020002000200020002000200020002000200020002000200020002000200020002000200020003900310030003000300030003100390039003500300036003100350030003000310030001c4e9e83025e6c51895b405c9e83ce570652405c200020002000200020003200300031003500300031003000310032003000330035003000310030003100200020002000200020002000200020002000200020002000200020004a00200020002000")  # card type J, nation field " \u4020"


def test_a_permit_whose_reserved_nation_field_is_not_blank_is_refused():
    from drivers import idcard

    with pytest.raises(idcard.CardDataError) as exc:
        idcard.decode_base_info(PERMIT_WITH_NATION_GARBAGE)
    assert "nation" in exc.value.reason_en
