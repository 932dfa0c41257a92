"""A SAM ID-card reader on a pseudo-terminal, answering the real protocol.

Framing and the text block are built here independently of drivers/idcard.py,
so a bug in the driver's codec is not mirrored by the simulator.

    reader = SimIdCardReader(tmp_path / "idcard")   # plugged at once
    reader.place(ZHANG_SAN)      # card on the reader
    reader.lift()
    reader.unplug(); reader.plug()
    reader.fail_reads = 1        # next read answers 41 (read failed)
    reader.corrupt_reads = 1     # next read answer has a bad checksum
    reader.garbage = b"..."      # sent before the next answer
    reader.delay_s = 0.4         # slow answers
    reader.hiccup = ((0x20, 0x02), 0.8)  # the next answer to select comes 0.8 s late, once
    reader.silent = True         # answers nothing
    reader.stall_host = ((0x30, 0x01), pid, 2.5)  # the host process is not run while the read's answer comes
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from firmware_app.model import IdCard
from hw_mocks.pty_device import PtyDevice

PREAMBLE = bytes.fromhex("AAAAAA9669")


def check_char(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


# Placeholder people (张三/李四 are the Chinese "John Doe"); check-digit-valid numbers.
ZHANG_SAN = IdCard(
    name="张三", gender="1", nation="01", birth="19900307", address="广东省东莞市莞城街道测试路1号",
    id_number="44190019900307001" + check_char("44190019900307001"), authority="东莞市公安局莞城分局",
    valid_from="20150101", valid_to="20350101",
)
LI_SI = IdCard(
    name="李四", gender="2", nation="01", birth="19491231", address="北京市朝阳区测试街道2号",
    id_number="11010519491231002X", authority="北京市公安局朝阳分局",
    valid_from="20100101", valid_to="长期",
)
# A minority nation code and a long name that fills the field.
AYI_GULI = IdCard(
    name="阿依古丽·测试尔", gender="2", nation="05", birth="20010815", address="新疆维吾尔自治区乌鲁木齐市天山区测试路3号",
    id_number="65010220010815002" + check_char("65010220010815002"), authority="乌鲁木齐市公安局天山分局",
    valid_from="20200101", valid_to="20300101",
)


def _ucs2(value: str, nbytes: int) -> bytes:
    raw = value.encode("utf-16-le")
    if len(raw) > nbytes:
        raise ValueError(f"{value!r} does not fit in {nbytes} bytes")
    return raw + " ".encode("utf-16-le") * ((nbytes - len(raw)) // 2)


def text_block(card: IdCard, card_type: str = "") -> bytes:
    """The 256-byte UCS-2 LE text block a resident card holds (type "J": HK/MO/TW permit)."""
    block = b"".join([
        _ucs2(card.name, 30), _ucs2(card.gender, 2), _ucs2(card.nation, 4), _ucs2(card.birth, 16),
        _ucs2(card.address, 70), _ucs2(card.id_number, 36), _ucs2(card.authority, 30),
        _ucs2(card.valid_from, 16), _ucs2(card.valid_to, 16),
        _ucs2("", 28), _ucs2(card_type, 2), _ucs2("", 6),  # reserved, type flag at byte 248
    ])
    assert len(block) == 256
    return block


def foreign_text_block() -> bytes:
    """A foreign permanent-resident card's text block (English name first, type "I")."""
    block = b"".join([
        _ucs2("TEST, SAMPLE PERSON", 120), _ucs2("1", 2), _ucs2("USA110080101001", 30), _ucs2("USA", 6),
        _ucs2("测试", 30), _ucs2("20200101", 16), _ucs2("20300101", 16), _ucs2("19800101", 16),
        _ucs2("01", 4), _ucs2("1100", 8), _ucs2("I", 2), _ucs2("", 6),
    ])
    assert len(block) == 256
    return block


def fake_photo(seed: str) -> bytes:
    """1024 opaque bytes standing in for the WLT photo."""
    out = b""
    while len(out) < 1024:
        out += hashlib.sha256(f"{seed}:{len(out)}".encode()).digest()
    return out[:1024]


def frame(sw3: int, data: bytes = b"", sw1: int = 0, sw2: int = 0, *, bad_checksum: bool = False) -> bytes:
    """One reader -> host answer."""
    length = 3 + len(data) + 1
    body = bytes([length >> 8, length & 0xFF, sw1, sw2, sw3]) + data
    chk = 0
    for b in body:
        chk ^= b
    if bad_checksum:
        chk ^= 0x5A
    return PREAMBLE + body + bytes([chk])


class SimIdCardReader(PtyDevice):
    """refind=False: after a successful read the card is not found again until
    lifted (most readers). refind=True: it is found on every poll."""

    def __init__(self, path, *, refind: bool = False, three_lengths: bool = False, plug: bool = True) -> None:
        super().__init__(path)
        self.refind = refind
        self.three_lengths = three_lengths  # some models add a 0 fingerprint length to 30 01
        self.delay_s = 0.0
        # (command, seconds): the next answer to that command is held back once, as when the
        # machine under load does not run the reader's side for a while; answers behind it wait
        self.hiccup: tuple[tuple[int, int], float] | None = None
        # (command, pid, seconds): once, while answering that command, the host process (a
        # driver in another process, e.g. `swabkiosk probe idcard`) is stopped (SIGSTOP) for
        # that long, as a loaded machine may not run it: the answer waits in its port
        self.stall_host: tuple[tuple[int, int], int, float] | None = None
        self.silent = False
        self.fail_reads = 0
        self.fail_sw3 = 0x41
        self.corrupt_reads = 0
        self.garbage = b""
        self.commands: list[tuple[int, int]] = []
        self._card_lock = threading.Lock()
        self._text: bytes | None = None
        self._photo = b""
        self._serial = b""
        self._read_done = False
        self._selected = False
        self._inbuf = bytearray()
        self._unplugging = threading.Event()
        self.placed_at: float | None = None
        if plug:
            self.plug()

    # -- the card -----------------------------------------------------------

    def place(self, card: IdCard | bytes, photo: bytes | None = None) -> None:
        """Put a card on the reader: an IdCard, or a raw 256-byte text block."""
        text = card if isinstance(card, bytes) else text_block(card)
        seed = hashlib.sha256(text).hexdigest()
        with self._card_lock:
            self._text = text
            self._photo = fake_photo(seed) if photo is None else photo
            self._serial = bytes.fromhex(seed[:16])
            self._read_done = False
            self._selected = False
            self.placed_at = time.monotonic()

    def lift(self) -> None:
        with self._card_lock:
            self._text = None
            self._selected = False

    # -- protocol -----------------------------------------------------------

    def unplug(self) -> None:
        self._unplugging.set()
        super().unplug()
        self._inbuf.clear()

    def plug(self) -> None:
        """Power up: like a real reader, it has forgotten which card it already read."""
        with self._card_lock:
            self._read_done = False
            self._selected = False
        self._unplugging.clear()
        super().plug()

    def on_receive(self, data: bytes) -> None:
        self._inbuf += data
        while True:
            start = self._inbuf.find(PREAMBLE)
            if start < 0:
                del self._inbuf[: max(0, len(self._inbuf) - 4)]
                return
            del self._inbuf[:start]
            if len(self._inbuf) < 7:
                return
            length = (self._inbuf[5] << 8) | self._inbuf[6]
            if len(self._inbuf) < 7 + length:
                return
            body = bytes(self._inbuf[5 : 7 + length - 1])
            chk = self._inbuf[7 + length - 1]
            del self._inbuf[: 7 + length]
            x = 0
            for b in body:
                x ^= b
            if x != chk or length < 3:
                self._answer(frame(0x10))
                continue
            self._answer(self._handle(body[2], body[3], body[4:]), (body[2], body[3]))

    def _answer(self, answer: bytes, cmd: tuple[int, int] | None = None) -> None:
        if self.silent:
            return
        if self.delay_s and self._unplugging.wait(self.delay_s):
            return
        if self.hiccup is not None and self.hiccup[0] == cmd:
            _, held = self.hiccup
            self.hiccup = None
            if self._unplugging.wait(held):
                return
        if self.garbage:
            answer, self.garbage = self.garbage + answer, b""
        if self.stall_host is not None and self.stall_host[0] == cmd:
            _, pid, seconds = self.stall_host
            self.stall_host = None
            time.sleep(0.1)  # the host is in its read loop, waiting for this answer
            os.kill(pid, signal.SIGSTOP)
            try:
                self.send(answer)
                self._unplugging.wait(seconds)
            finally:
                os.kill(pid, signal.SIGCONT)
            return
        self.send(answer)

    def _handle(self, cmd: int, para: int, data: bytes) -> bytes:
        self.commands.append((cmd, para))
        with self._card_lock:
            present = self._text is not None
            if (cmd, para) in ((0x10, 0xFF), (0x11, 0xFF), (0x61, 0xFF)):
                return frame(0x90)
            if (cmd, para) == (0x12, 0xFF):
                return frame(0x90, bytes(range(16)))
            if (cmd, para) == (0x20, 0x01):
                if present and (self.refind or not self._read_done):
                    return frame(0x9F, b"\x00\x00\x00\x00")
                return frame(0x80)
            if (cmd, para) == (0x20, 0x02):
                if not present:
                    return frame(0x81)
                self._selected = True
                return frame(0x90, self._serial)
            if (cmd, para) in ((0x30, 0x01), (0x30, 0x10)):
                if not (present and self._selected):
                    return frame(0x41)
                self._selected = False
                if self.fail_reads:
                    self.fail_reads -= 1
                    return frame(self.fail_sw3)
                fingerprint = para == 0x10
                lengths = [256, len(self._photo)] + ([0] if fingerprint or self.three_lengths else [])
                assert self._text is not None  # a card is on the reader (checked above)
                payload = b"".join(n.to_bytes(2, "big") for n in lengths) + self._text + self._photo
                self._read_done = True
                if self.corrupt_reads:
                    self.corrupt_reads -= 1
                    return frame(0x90, payload, bad_checksum=True)
                return frame(0x90, payload)
            return frame(0x21)

