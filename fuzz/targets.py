"""One fuzz target per parser: ``TARGETS[name](data: bytes)`` returns quietly for any input the
parser handles as documented (an answer, or its documented refusal) and raises for anything
else: an exception the caller would not catch (a traceback on the kiosk) or an oracle saying
the answer is wrong. atheris reports either as a crash; ``python -m fuzz`` runs them.

Kept importable without atheris: the same functions run under hypothesis or on a corpus.
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable

from drivers import idcard, scanner
from firmware_app import boundedjson, config, idnumber, pushed, qr, volunteers

TODAY = dt.date(2026, 11, 18)
NOW = 1795000000.0


class OracleError(AssertionError):
    """The parser answered, but wrongly."""


def _b64url(data: bytes) -> str:
    """base64url without padding, as docs/qr-payload.md defines it (the oracle's own, not qr's)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check(condition: bool, what: str | Callable[[], str]) -> None:
    """Raise OracleError(what) unless condition; a message costly to build (a repr of the
    input) is given as a function, called only on failure (not for every input)."""
    if not condition:
        raise OracleError(what() if callable(what) else what)


# --------------------------------------------------------------------------- SAM frame codec


def _xor(body: bytes) -> int:
    x = 0
    for b in body:
        x ^= b
    return x


def sam_frames(data: bytes) -> None:
    """Oracle: every Response is a checksum-valid frame that is in the input; chunking (split at
    the first byte's value) never changes the responses; the buffer stays bounded."""
    if not data:
        return
    cut = data[0] % (len(data) + 1)
    stream = data[1:]

    def decode(chunks: list[bytes]) -> list[idcard.Response]:
        dec, out = idcard.ResponseDecoder(), []
        for chunk in chunks:
            dec.receive_data(chunk)
            while (event := dec.next_event()) is not idcard.NEED_DATA:
                _check(isinstance(event, (idcard.Response, idcard.FrameError)), lambda: f"unknown event {event!r}")
                if isinstance(event, idcard.Response):
                    out.append(event)
            _check(dec.pending <= len(stream), "decoder holds more than it was given")
        return out

    whole = decode([stream])
    for r in whole:
        body_len = 3 + len(r.data) + 1
        body = bytes([body_len >> 8, body_len & 0xFF, r.sw1, r.sw2, r.sw3]) + r.data
        frame = idcard.PREAMBLE + body + bytes([_xor(body)])  # not the codec's own checksum()
        _check(frame in stream, "a Response that is not a checksum-valid frame of the input")
        _check(idcard.MIN_LEN <= body_len <= idcard.MAX_LEN, "a Response whose LEN is out of bounds")
    split = decode([stream[:cut], stream[cut:]])
    _check(split == whole, "the responses depend on how the bytes were chunked")


# --------------------------------------------------------------------------- ID-card text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def idcard_text(data: bytes) -> None:
    """Oracle: only IdCardError refuses; an accepted card is self-consistent (valid number,
    birth = the number's, gender = its parity, nation 01-56/97/98, one-line text fields)."""
    try:
        card = idcard.decode_base_info(data)
    except idcard.IdCardError:
        return
    n = card.id_number
    _check(bool(re.fullmatch(r"[0-9]{17}[0-9X]", n)) and idnumber.check_char(n[:17]) == n[17], "bad ID number accepted")
    _check(card.birth == n[6:14], "birth field differs from the ID number's")
    _check(card.gender == ("1" if int(n[16]) % 2 else "2"), "gender contradicts the sequence digit")
    _check(card.nation == "" or card.nation in idcard.NATIONS, "nation code accepted outside GB/T 3304")
    for name in ("name", "address", "authority"):
        _check(not _CONTROL.search(getattr(card, name)), f"control character in {name}")
    dt.date(int(card.birth[:4]), int(card.birth[4:6]), int(card.birth[6:]))  # raises if not a date


# --------------------------------------------------------------------------- ID numbers

_W = [2 ** (17 - i) % 11 for i in range(17)]  # GB 11643 weights, computed rather than copied
_PROVINCES = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
              50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 91}


def _gb11643(number: str) -> str | None:
    """An independent GB 11643 check: the normalised number, or None."""
    s = number.strip().upper()
    if len(s) != 18 or any(c not in "0123456789" for c in s[:17]) or s[17] not in "0123456789X":
        return None
    if int(s[:2]) not in _PROVINCES:
        return None
    try:
        birth = dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return None
    if birth.year < 1900 or birth > TODAY:
        return None
    total = sum(int(c) * w for c, w in zip(s[:17], _W))
    return s if "10X98765432"[total % 11] == s[17] else None


def id_numbers(data: bytes) -> None:
    """Oracle: validate agrees with an independent implementation; only IdNumberError refuses."""
    text = data.decode("utf-8", "replace")
    expected = _gb11643(text)
    try:
        got = idnumber.validate(text, TODAY)
    except idnumber.IdNumberError:
        got = None
    _check(got == expected, lambda: f"validate says {got!r}, GB 11643 says {expected!r} for {text!r}")


# --------------------------------------------------------------------------- QR codes

_KEY = None


def _key():
    global _KEY
    if _KEY is None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))  # not a demo key
        b64 = qr.public_key_base64(private.public_key())
        _KEY = (private, qr.Keys.from_base64([b64], [b64]))
    return _KEY


def qr_verify(data: bytes) -> None:
    """Oracle: only QrError refuses. Raw text (first byte even) is accepted only if it is exactly
    the trusted key's signature of its body (one text per code); a body signed by the trusted key (first byte odd) is accepted only
    with the format's types (integers that are not bools, a valid ID number, colour, 0/1)."""
    private, keys = _key()
    if not data:
        return
    if data[0] % 2 == 0:
        text = data[1:].decode("utf-8", "replace")
        try:
            qr.verify(text, keys, NOW)
        except qr.QrError:
            return
        signed, _, _sig = text.rpartition(".")
        # Ed25519 signatures are deterministic: an accepted text is exactly the key's signing of it
        _check(signed.isascii() and text == signed + "." + _b64url(private.sign(signed.encode("ascii"))),
               "a code not signed by the trusted key was accepted")
    body = data[1:].decode("utf-8", "replace")
    signed = qr.PREFIX + _b64url(body.encode())
    text = signed + "." + _b64url(private.sign(signed.encode("ascii")))
    try:
        result = qr.verify(text, keys, NOW, max_age_s=72 * 3600)
    except qr.QrError:
        return
    raw = json.loads(body)
    ints = [raw[2], raw[3]] + ([raw[5], raw[8], raw[9]] if raw[0] == "p" else [])
    _check(all(type(v) is int and v >= 0 for v in ints), f"non-integer accepted where the format says integer: {ints}")
    _check(result.expires_at >= NOW and result.issued_at <= NOW + qr.CLOCK_SKEW_S, "an expired code was accepted")
    if isinstance(result, qr.PersonalCode):
        _check(raw[9] in (0, 1), "key person other than 0/1")
        _check(NOW - result.issued_at <= 72 * 3600, "a code older than max_age was accepted")
        if result.id_type == "resident_id":
            _check(_gb11643(result.id_number) == result.id_number, "an invalid ID number was accepted")


# --------------------------------------------------------------------------- scanner lines


def scanner_lines(data: bytes) -> None:
    """Oracle: the same events however the bytes are chunked; no line holds a terminator or
    exceeds max_line; no exception."""
    if len(data) < 2:
        return
    terminator = ("CR", "LF", "CRLF", "TAB")[data[0] % 4]
    cut = data[1] % (len(data) - 1)
    stream = data[2:]

    def run(chunks):
        parser, out = scanner.LineParser(terminator, max_line=64), []
        for chunk in chunks:
            parser.receive_data(chunk)
            while (event := parser.next_event()) is not scanner.NEED_DATA:
                out.append(event)
        out.append(parser.end_of_stream())
        return out

    whole = run([stream])
    _check(run([stream[:cut], stream[cut:]]) == whole, "the lines depend on how the bytes were chunked")
    term = scanner.TERMINATORS[terminator].decode()
    for e in whole:
        if isinstance(e, scanner.Line):
            _check(term not in e.text and len(e.text.encode()) <= 64, "a line with its terminator or too long")


# --------------------------------------------------------------------------- station file


def _finite(value) -> bool:
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def station_file(data: bytes) -> None:
    """Oracle: only ConfigError refuses (a problem list); an accepted file has no NaN/inf, its
    identifiers match whole, and its tube pattern compiles."""
    text = data.decode("utf-8", "replace")
    try:
        cfg = config.parse_text(text, allow_demo_keys=True)
    except config.ConfigError as exc:
        _check(bool(exc.problems) and all(isinstance(p, config.Problem) for p in exc.problems), "an empty problem list")
        return
    d = cfg.to_dict()
    _check(_finite(d), "NaN or inf accepted")
    for key in ("device_id", "district", "site", "table"):
        _check(re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", d["station"][key]) is not None, f"station.{key} not whole")
    re.compile(d["sampling"]["tube_pattern"])


# --------------------------------------------------------------------------- volunteer list


def volunteer_list(data: bytes) -> None:
    """Oracle: only VolunteerListError refuses; every accepted entry is whole."""
    try:
        people = volunteers.parse(volunteers.decode(data))
    except volunteers.VolunteerListError:
        return
    for cert_id, v in people.items():
        _check(cert_id == v.cert_id and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,63}", cert_id) is not None, "cert id")
        _check(not _CONTROL.search(v.name) and v.name == v.name.strip() and v.name, "name")
        _check(isinstance(v.expires, dt.date) and isinstance(v.revoked, bool), "types")


# --------------------------------------------------------------------------- pushed files

_DIR = None
_PROVISIONED_LIST = '{"volunteers": [{"cert_id": "V1", "name": "李志愿", "expires": "2027-06-30"}]}'


def _pushed_dir() -> tuple[str, dict[bool, str], object]:
    """The data dir (made once, its pushed/ emptied after each input), the provisioned files'
    stamps and the provisioned config: none of them depends on the input, so they are made
    once (parsing the provisioned station file for every input was half a run's time)."""
    global _DIR
    if _DIR is None:
        # in the run's work dir (python -m fuzz removes it; atheris exits without atexit) or,
        # replayed in a test process, removed at its exit: one was left in /tmp per run
        d = tempfile.mkdtemp(prefix="swabkiosk-fuzz-pushed-", dir=os.environ.get("SWABKIOSK_FUZZ_WORK"))
        atexit.register(shutil.rmtree, d, ignore_errors=True)
        with open(os.path.join(d, "volunteers.json"), "w", encoding="utf-8") as f:
            f.write(_PROVISIONED_LIST)
        with open(os.path.join(d, "station.toml"), "w", encoding="utf-8") as f:
            f.write(SEED_STATION)
        stamps = {which: pushed.base_of(os.path.join(d, "station.toml" if which else "volunteers.json"))
                  for which in (True, False)}
        _DIR = (d, stamps, config.parse_text(SEED_STATION, allow_demo_keys=True))
    return _DIR


def pushed_files(data: bytes) -> None:
    """Oracle: whatever sits in <data_dir>/pushed/, the kiosk starts: load_volunteers and
    effective_config return (never raise), and a pushed copy that is not used is set aside."""
    d, stamps, base_cfg = _pushed_dir()
    provisioned_list = os.path.join(d, "volunteers.json")
    provisioned_cfg = os.path.join(d, "station.toml")
    folder = os.path.join(d, pushed.DIR)
    os.makedirs(folder, exist_ok=True)
    which = data[:1] == b"c"
    name = pushed.CONFIG if which else pushed.VOLUNTEERS
    body = data[1:]
    if data[:1] in (b"s", b"c"):  # stamped with the right base: the pushed copy is really read
        stamp = stamps[which]
        body = (pushed.HEADER + stamp + "\n").encode() + body if which else body.replace(b"$BASE", stamp.encode())
    with open(os.path.join(folder, name), "wb") as f:
        f.write(body)
    if which:
        got, _source = pushed.effective_config(base_cfg, provisioned_cfg, d)
        _check(isinstance(got, config.Config), "effective_config returned no config")
    else:
        people = pushed.load_volunteers(d, provisioned_list)
        _check(isinstance(people, dict), "load_volunteers returned no list")
    for leftover in os.listdir(folder):
        os.unlink(os.path.join(folder, leftover))


# --------------------------------------------------------------------------- command cards

_TABLE = None


def _table():
    global _TABLE
    if _TABLE is None:
        from tests.station_fixtures import Table
        from tests.test_station import person

        t = Table()
        t.sign_in()
        for n in range(1, 4):
            t.scan(person(n), "camera")
        _TABLE = (t.cfg, json.dumps(t.rows), list(t.records), t.now, t.shelf)  # rows as JSON: encoded once
    return _TABLE


def command_card(data: bytes) -> None:
    """Oracle: a scanned SWABCMD: card never raises out of the station; what it persists agrees
    with the store (a void names a stored sample); no full ID number is shown."""
    from firmware_app import privacy
    from firmware_app.model import CodeScanned, Now, Persist, Show
    from firmware_app.station import Station
    from tests.station_fixtures import VOLUNTEERS, handle

    cfg, rows_json, records, now, shelf = _table()
    station = Station(cfg, VOLUNTEERS)
    station.restore(json.loads(rows_json))  # a fresh copy of the stored rows for every input
    text = "SWABCMD:" + data.decode("utf-8", "replace")
    # the facts come from the table's real store; the step's own records are not stored
    effects = handle(station, CodeScanned(text, "scanner"), Now(now.at + 20, True), shelf)
    ids = {r["record_id"] for r in records if r["kind"] == "sample"}
    for e in effects:
        if isinstance(e, Persist) and e.record["kind"] == "void":
            _check(e.record["voided_record_id"] in ids, "a void of a record the store does not hold")
    shown = [privacy.mask_effect(e) for e in effects if isinstance(e, Show)]
    _check(bool(shown), "no screen answer")


# --------------------------------------------------------------------------- screen command body

_UI = None


def screen_body(data: bytes) -> None:
    """Oracle: the screen server's body handling (do_POST) answers ValueError/TypeError (a 400)
    or a Command with clean args; nothing else escapes."""
    global _UI
    from firmware_app.model import POOL_CAPACITY, Command
    from firmware_app.ui import server

    if _UI is None:
        _UI = server.UiServer("127.0.0.1", 0, lambda c: None, provision_errors=None)
    if len(data) > server.MAX_BODY:
        return
    try:
        body = boundedjson.loads(data, max_bytes=server.MAX_BODY, max_depth=server.MAX_BODY_DEPTH)
        if not isinstance(body, dict):
            raise ValueError("body must be an object")
        command = _UI._command(body)
    except (ValueError, TypeError):
        return
    from firmware_app import commands

    _check(isinstance(command, Command) and command.name in commands.COMMANDS, "unknown command accepted")
    _check("ui" in commands.COMMANDS[command.name].sources, "a command the screen may not send accepted")
    try:
        commands.check(command.name, command.args, "ui")  # what was let through passes the table's own check
    except commands.CommandError:
        _check(False, "arguments the command table refuses accepted")
    if command.name == "switch_mode":
        _check(command.args["mode"] in POOL_CAPACITY, "bad mode accepted")


SEED_STATION = """[station]
device_id = "gd-dg-0001-t03"
district = "dongguan"
site = "guancheng"
table = "t03"

[authority]
sampling_code_keys = ["KEY"]
operator_keys = ["KEY"]
"""

SEED_STATION = SEED_STATION.replace("KEY", qr.public_key_base64(_key()[0].public_key()))

TARGETS: dict[str, Callable[[bytes], None]] = {
    "sam_frames": sam_frames,
    "idcard_text": idcard_text,
    "id_numbers": id_numbers,
    "qr_verify": qr_verify,
    "scanner_lines": scanner_lines,
    "station_file": station_file,
    "volunteer_list": volunteer_list,
    "pushed_files": pushed_files,
    "command_card": command_card,
    "screen_body": screen_body,
}
