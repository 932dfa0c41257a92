"""Resident ID-card reader (GA 467 "SAM") protocol: a sans-I/O codec.

No I/O here: ``encode_command`` gives the bytes to write, ``ResponseDecoder``
takes whatever the serial port delivered (any chunking, garbage included) and
hands back whole frames as events, h11 style::

    decoder.receive_data(chunk)
    while (event := decoder.next_event()) is not NEED_DATA:
        ...  # Response or FrameError

``decode_base_info`` turns the data of a read-base-info answer into
``firmware_app.model.IdCard`` (or raises ``CardDataError`` / ``UnsupportedCard``).
Frame layout and status codes: docs/idcard.md and shared/idcard-protocol.md.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from firmware_app.catalogue import both, en, zh
from firmware_app.idnumber import check_char
from firmware_app.model import IdCard

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"

# Commands (CMD, PARA) the driver sends
SAM_STATUS = (0x11, 0xFF)
FIND_CARD = (0x20, 0x01)
SELECT_CARD = (0x20, 0x02)
READ_BASE = (0x30, 0x01)
SET_MAX_RF_FRAME = (0x61, 0xFF)  # sent with data 0x50 by some drivers at start-up

SW_OK = 0x90
SW_CARD_FOUND = 0x9F
SW_NO_CARD = 0x80

# LEN counts SW1 SW2 SW3 + data + CHK. The largest known answer is read base
# info with fingerprint: 3 + 6 + 256 + 1024 + 1024 + 1 = 2314. Anything above
# this bound is a corrupt length, not a frame to wait for.
MIN_LEN = 4
MAX_LEN = 2314

# SW3 -> its catalogue key (texts in firmware_app/catalogue/devices.py). Unknown codes are
# reported as unknown, never as success.
STATUS_REASONS: dict[int, str] = {
    code: f"idcard.sw_{code:02x}"
    for code in (0x90, 0x9F, 0x10, 0x11, 0x21, 0x24, 0x31, 0x32, 0x33, 0x40, 0x41, 0x47, 0x60, 0x66, 0x80, 0x81, 0x91)
}


def status_reason(sw3: int) -> tuple[str, str]:
    """Plain words (zh, en) for a status byte; unknown codes say so."""
    key = STATUS_REASONS.get(sw3)
    return both(key) if key else both("idcard.sw_unknown", code=f"0x{sw3:02X}")


def checksum(body: bytes | bytearray) -> int:
    """XOR of LEN_H, LEN_L and every following byte up to (not including) CHK."""
    # the bytes as one integer folded in halves: ~11 steps for a 1,295-byte answer (4 us, a
    # Python step per byte took 41 us; under the fuzzer's coverage tracing 40x more)
    x, width = int.from_bytes(body, "little"), len(body)
    while width > 1:
        width = (width + 1) // 2
        x = (x >> (8 * width)) ^ (x & ((1 << (8 * width)) - 1))
    return x


def encode_command(cmd: int, para: int, data: bytes = b"") -> bytes:
    """Frame one host -> reader command. ``encode_command(0x20, 0x01)`` is find card."""
    if not (0 <= cmd <= 0xFF and 0 <= para <= 0xFF):
        raise ValueError("cmd and para are single bytes")
    length = 2 + len(data) + 1
    if length > 0xFFFF:
        raise ValueError("command data too long")
    body = bytes([length >> 8, length & 0xFF, cmd, para]) + bytes(data)
    return PREAMBLE + body + bytes([checksum(body)])


# --------------------------------------------------------------------------
# Decoder events
# --------------------------------------------------------------------------


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True)
class Response:
    """One checksum-valid reader answer."""

    sw1: int
    sw2: int
    sw3: int
    data: bytes = b""

    def is_(self, sw3: int) -> bool:
        """True when the answer is exactly this status with a clean SW1 SW2."""
        return self.sw1 == 0 and self.sw2 == 0 and self.sw3 == sw3

    @property
    def reason(self) -> tuple[str, str]:
        if (self.sw1, self.sw2) != (0, 0):
            return both("idcard.card_status", code=f"{self.sw1:02X}{self.sw2:02X}")
        return status_reason(self.sw3)

    def answers(self, cmd: tuple[int, int]) -> bool:
        """Whether this can be the answer to ``cmd``. An answer names no command, and one that
        came after its command timed out arrives while the host waits for the next one's. The
        two success statuses tell them apart: 9F (card found) answers only find card, 90 (OK)
        every other command; a success of the other kind is an earlier command's answer, never
        this one's (a failure status may answer anything, and is taken as this one's)."""
        if (self.sw1, self.sw2) != (0, 0) or self.sw3 not in (SW_OK, SW_CARD_FOUND):
            return True
        return (self.sw3 == SW_CARD_FOUND) == (cmd == FIND_CARD)

    def __repr__(self) -> str:  # never dump card data (names, photo) into logs
        return f"Response(sw={self.sw1:02X}{self.sw2:02X}{self.sw3:02X}, data={len(self.data)} bytes)"


@dataclass(frozen=True)
class FrameError:
    """Bytes that looked like a frame but were not a valid one; decoding carries on."""

    kind: str  # "checksum" | "length" | "garbage" | "truncated"
    reason: str  # zh-CN
    reason_en: str


def _frame_error(kind: str) -> FrameError:
    zh, en = both(f"idcard.frame_{kind}")  # kind: checksum | length | garbage | truncated
    return FrameError(kind, zh, en)


class ResponseDecoder:
    """Reader -> host frames out of an arbitrary byte stream.

    Resynchronises on the preamble: bytes before it are reported once as a
    ``FrameError("garbage")``; a bad LEN or checksum is reported and scanning
    restarts one byte after the false preamble, so a good frame hidden behind
    a corrupt one is still found.
    """

    def __init__(self, max_len: int = MAX_LEN) -> None:
        self._buf = bytearray()
        self._max_len = max_len

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget buffered bytes (before a new command: stale answers are not its answer)."""
        self._buf.clear()

    def give_up(self) -> FrameError | None:
        """No more bytes are coming (the answer timed out). A frame still waiting
        for its tail is dropped as truncated and scanning restarts one byte on,
        so a complete frame that a false preamble had swallowed is found."""
        if not self._buf:
            return None
        if self._buf.startswith(PREAMBLE):
            del self._buf[:1]
        else:
            self._buf.clear()
        return _frame_error("truncated")

    def next_event(self) -> Response | FrameError | _NeedData:
        buf = self._buf
        start = buf.find(PREAMBLE)
        if start < 0:
            # Keep a tail that could be the start of a preamble split across chunks.
            keep = 0
            for n in range(min(len(PREAMBLE) - 1, len(buf)), 0, -1):
                if buf.endswith(PREAMBLE[:n]):
                    keep = n
                    break
            dropped = len(buf) - keep
            if dropped:
                del buf[:dropped]
                return _frame_error("garbage")
            return NEED_DATA
        if start > 0:
            del buf[:start]
            return _frame_error("garbage")
        if len(buf) < 7:
            return NEED_DATA
        length = (buf[5] << 8) | buf[6]
        if not MIN_LEN <= length <= self._max_len:
            del buf[:1]
            return _frame_error("length")
        total = 7 + length
        if len(buf) < total:
            return NEED_DATA
        if checksum(buf[5 : total - 1]) != buf[total - 1]:
            del buf[:1]
            return _frame_error("checksum")
        frame = bytes(buf[7 : total - 1])
        del buf[:total]
        return Response(frame[0], frame[1], frame[2], frame[3:])


# --------------------------------------------------------------------------
# Card data
# --------------------------------------------------------------------------


class IdCardError(Exception):
    """A read whose data cannot be used; ``str()`` is the zh-CN reason."""

    def __init__(self, reason: str, reason_en: str, raw: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.reason_en = reason_en
        self.raw = raw  # for the technician panel: what exactly did not fit


class CardDataError(IdCardError):
    """The read-base-info data is malformed (wrong lengths, undecodable text)."""


class UnsupportedCard(IdCardError):
    """A card this kiosk does not read (e.g. a foreign permanent-resident card)."""


TEXT_LEN = 256
# (field, byte offset, byte length) of the resident card's UCS-2 LE text block
TEXT_FIELDS = (
    ("name", 0, 30),
    ("gender", 30, 2),
    ("nation", 32, 4),
    ("birth", 36, 16),
    ("address", 52, 70),
    ("id_number", 122, 36),
    ("authority", 158, 30),
    ("valid_from", 188, 16),
    ("valid_to", 204, 16),
)
# Bytes 248-249 hold a card-type flag on cards issued under the extended
# layout: blank on resident ID cards, "J" on HK/Macao/Taiwan residence
# permits (same layout; nation field reserved), "I" on foreign
# permanent-resident cards (a different layout: English name first).
CARD_TYPE_AT = 248
LONG_TERM = "\u957f\u671f"  # "changqi" (long-term), as the card's valid_to says it

# ASCII digits only: \d and str.isdigit() would also take other scripts' digits.
_ID_RE = re.compile(r"[0-9]{17}[0-9X]")
_DATE_RE = re.compile(r"[0-9]{8}")
_NATION_RE = re.compile(r"[0-9]{2}")
# GB/T 3304 nation codes: 01-56 the 56 nationalities, 97 other, 98 of foreign origin.
NATIONS = frozenset(f"{n:02d}" for n in range(1, 57)) | {"97", "98"}
# GB/T 2261.1 on the card: 1 male, 2 female; the ID number's 17th digit says the same (odd, even).
GENDER_OF_PARITY = ("2", "1")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff]")


def _real_date(text: str) -> bool:
    if not _DATE_RE.fullmatch(text):
        return False
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


def split_base_info(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Data after SW3 of a read-base-info answer -> (text, photo, fingerprint).

    Readers send two big-endian lengths (text, photo) or, on 30 10 and on
    some models even for 30 01, three (text, photo, fingerprint).
    """
    for n in (2, 3):
        head = 2 * n
        if len(data) < head:
            break
        lens = [int.from_bytes(data[2 * i : 2 * i + 2], "big") for i in range(n)]
        if head + sum(lens) == len(data) and lens[0] == TEXT_LEN:
            text = data[head : head + lens[0]]
            photo = data[head + lens[0] : head + lens[0] + lens[1]]
            fp = data[head + lens[0] + lens[1] :]
            return text, photo, fp
    raise CardDataError(*both("idcard.data_length"), raw=f"{len(data)} bytes of base info")


def card_type(text: bytes) -> str:
    """The type flag of a text block: "" resident, "I" foreign, "J" HK/MO/TW permit, other."""
    return text[CARD_TYPE_AT : CARD_TYPE_AT + 2].decode("utf-16-le", "replace").strip(" \x00")


def decode_text(text: bytes, photo: bytes = b"") -> IdCard:
    """The 256-byte text block -> IdCard; refuses anything it would misread."""
    if len(text) != TEXT_LEN:
        raise CardDataError(*both("idcard.text_length"), raw=f"text block is {len(text)} bytes, expected {TEXT_LEN}")
    kind = card_type(text)
    if kind == "I":
        raise UnsupportedCard(*both("idcard.foreign_card"))
    if kind not in ("", "J"):
        raise UnsupportedCard(*both("idcard.unsupported_card", kind=repr(kind)))
    try:
        fields = {
            name: text[at : at + size].decode("utf-16-le").strip(" \x00\u3000")
            for name, at, size in TEXT_FIELDS
        }
    except UnicodeDecodeError:
        raise CardDataError(*both("idcard.text_undecodable")) from None
    _check_fields(fields, kind)
    return IdCard(**fields, photo=bytes(photo))


def decode_base_info(data: bytes) -> IdCard:
    """Data after SW3 of a successful read-base-info answer -> IdCard."""
    text, photo, _fingerprint = split_base_info(data)
    return decode_text(text, photo)


def _check_fields(f: dict[str, str], kind: str) -> None:
    """A chip read is authenticated by the SAM, so a field that does not fit
    means the layout is not what we think: refuse rather than misread."""
    bad = []
    for name in ("name", "address", "authority"):  # one line each: a newline would forge log lines
        if _CONTROL_RE.search(f[name]):
            bad.append(name)
    if not f["name"]:
        bad.append("name")
    number = f["id_number"].upper()
    number_ok = bool(_ID_RE.fullmatch(number)) and check_char(number[:17]) == number[17]
    if not number_ok:
        bad.append("id_number")
    f["id_number"] = number
    if f["gender"] not in GENDER_OF_PARITY or (number_ok and f["gender"] != GENDER_OF_PARITY[int(number[16]) % 2]):
        bad.append("gender")  # the SAM authenticates both: disagreeing means we misread the layout
    if f["nation"] not in (NATIONS if kind == "" else ("",)):  # a J permit's nation field is reserved: blank
        bad.append("nation")
    if not _real_date(f["birth"]) or (number_ok and f["birth"] != number[6:14]):
        bad.append("birth")
    if not _real_date(f["valid_from"]):
        bad.append("valid_from")
    if not (_real_date(f["valid_to"]) or f["valid_to"] == LONG_TERM):
        bad.append("valid_to")
    elif f["valid_to"] != LONG_TERM and "valid_from" not in bad and f["valid_to"] < f["valid_from"]:
        bad.append("valid_to")
    if bad:
        raise CardDataError(zh("idcard.fields_malformed", fields="\u3001".join(zh(f"idcard.field_{n}") for n in bad)),
                            en("idcard.fields_malformed", fields=", ".join(en(f"idcard.field_{n}") for n in bad)),
                            raw="fields: " + ", ".join(bad))
