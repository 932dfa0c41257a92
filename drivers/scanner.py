"""Handheld barcode scanner on a serial (USB-CDC) port: one code per line.

``LineParser`` is sans-I/O (``receive_data`` / ``next_event``); ``Scanner`` is
the pyserial shell emitting ``CodeScanned(text, "scanner")``. Command cards
(``SWABCMD:...``) come through here like any code; the station classifies them.
"""

from __future__ import annotations

import queue
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import serial

from drivers import said, settings_of
from drivers.serial_port import ProbeOutput, SerialDevice, probe_parser
from firmware_app.catalogue import both, en, zh
from firmware_app.model import CodeScanned, DeviceError, DeviceStatus, Event

TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}
MAX_LINE = 4096  # a QR code holds at most 2953 bytes; more is a scanner without a terminator
IDLE_FLUSH_S = 1.0  # a scan arrives in one burst; bytes left this long never got their terminator


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True)
class Line:
    text: str


@dataclass(frozen=True)
class LineError:
    kind: str  # "too_long" | "prefix" | "suffix" | "encoding" | "empty" | "unterminated"
    reason: str  # zh-CN
    reason_en: str


def _error(kind: str) -> LineError:
    return LineError(kind, *both(f"scanner.{kind}"))


class LineParser:
    """Bytes -> lines. CR and LF modes also accept CRLF (many scanners send it
    whatever they are set to); empty lines are skipped. A line longer than
    ``max_line`` is dropped with one ``LineError`` and its tail up to the next
    terminator is discarded too, so memory stays bounded and no fragment
    ever becomes a code."""

    def __init__(self, terminator: str = "CR", prefix: str = "", suffix: str = "",
                 encoding: str = "utf-8", max_line: int = MAX_LINE) -> None:
        if terminator.upper() not in TERMINATORS:
            raise ValueError(said(both("scanner.terminator", choices=", ".join(TERMINATORS), value=repr(terminator))))
        self.terminator = terminator.upper()
        self._term = TERMINATORS[self.terminator]
        self._prefix = prefix.encode(encoding)
        self._suffix = suffix.encode(encoding)
        self._encoding = encoding
        self._max = max_line
        # bytes a line may carry beyond max_line and still be read: the CR/LF of a CRLF
        # scanner in CR or LF mode; in CRLF and TAB mode nothing is stripped
        self._slack = 1 if self.terminator in ("CR", "LF") else 0
        self._buf = bytearray()
        self._skipping = False  # inside the tail of an over-long line

    @property
    def pending(self) -> bool:
        """A partial line is waiting (a lone CR/LF left by a CRLF scanner is not one)."""
        return not self._skipping and bool(self._buf.strip(b"\r\n"))

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_event(self) -> Line | LineError | _NeedData:
        while True:
            end = self._buf.find(self._term)
            if end < 0:
                if len(self._buf) > self._max + self._slack + len(self._term) - 1:
                    keep = len(self._term) - 1  # a split terminator may straddle chunks
                    del self._buf[: len(self._buf) - keep]
                    if not self._skipping:
                        self._skipping = True
                        return _error("too_long")
                return NEED_DATA
            raw = bytes(self._buf[:end])
            del self._buf[: end + len(self._term)]
            if self._skipping:
                self._skipping = False
                continue
            # The length bound is on the bytes as they came (the chunked path above can only
            # count those): max_line plus the one CR/LF a CRLF scanner adds. Checked before the
            # strip, so how the bytes were chunked never changes the result.
            too_long = len(raw) > self._max + self._slack
            if self.terminator == "CR":
                raw = raw.lstrip(b"\n")  # the LF of a CRLF scanner
            elif self.terminator == "LF":
                raw = raw.rstrip(b"\r")
            if not raw and not too_long:
                continue
            if too_long or len(raw) > self._max:
                return _error("too_long")
            return self._line(raw)

    def end_of_stream(self) -> LineError | None:
        """Port lost or idle: a pending partial line is reported, never delivered."""
        had = self.pending
        self._buf.clear()
        self._skipping = False
        return _error("unterminated") if had else None

    def _line(self, raw: bytes) -> Line | LineError:
        if self._prefix:
            if not raw.startswith(self._prefix):
                return _error("prefix")
            raw = raw[len(self._prefix):]
        if self._suffix:
            if not raw.endswith(self._suffix):
                return _error("suffix")
            raw = raw[: -len(self._suffix)]
        try:
            text = raw.decode(self._encoding)
        except UnicodeDecodeError:
            return _error("encoding")
        return Line(text) if text else _error("empty")


@dataclass
class ScannerSettings:
    port: str = "/dev/swabkiosk-scanner"
    baud: int = 9600
    terminator: str = "CR"
    prefix: str = ""
    suffix: str = ""
    encoding: str = "utf-8"


class Scanner(SerialDevice):
    device = "scanner"

    def __init__(self, settings: ScannerSettings | Mapping[str, Any], on_event: Callable[[Event], None]) -> None:
        settings = settings_of(ScannerSettings, settings)
        super().__init__(settings.port, settings.baud, on_event)
        self.settings = settings
        self._parser = LineParser(settings.terminator, settings.prefix, settings.suffix, settings.encoding)

    def session(self, port: serial.Serial) -> None:
        # Bytes queued before we opened the port are from an unknown time (a
        # command card scanned while the kiosk was down must not act now).
        port.reset_input_buffer()
        # A scanner says nothing until it scans: an open port is all we can know.
        self.status(True, both("scanner.ready"), self.port)
        last_byte = time.monotonic()
        try:
            while not self.stopping:
                self.beat()
                chunk = port.read(max(1, min(port.in_waiting, 4096)))
                now = time.monotonic()
                if chunk:
                    last_byte = now
                    self._parser.receive_data(chunk)
                    self._drain()
                elif self._parser.pending and now - last_byte > IDLE_FLUSH_S:
                    self._flush()
        finally:
            self._flush()

    def _drain(self) -> None:
        while not isinstance(event := self._parser.next_event(), _NeedData):
            if isinstance(event, Line):
                self.on_event(CodeScanned(event.text, "scanner"))
            else:
                self.error((event.reason, event.reason_en), f"line: {event.kind}")

    def _flush(self) -> None:
        if (event := self._parser.end_of_stream()) is not None:
            self.error((event.reason, event.reason_en), f"line: {event.kind}")


# --------------------------------------------------------------------------
# swabkiosk probe scanner PORT
# --------------------------------------------------------------------------

_LONG_DIGITS = re.compile(r"\d{15}")


def shown(text: str) -> str:
    """What a technician may see of a scan: command cards and short codes in
    full; anything that may carry personal data (signed QR codes, ID numbers)
    only by its start and length."""
    if text.startswith("SWABCMD:") or (len(text) <= 24 and not _LONG_DIGITS.search(text)):
        return text
    return f"{text[:6]}… ({len(text)} chars)"


def probe(argv: list[str]) -> int:
    ap = probe_parser("scanner", "Wait for one scanned code and show it.", 9600, "a scan")
    ap.add_argument("--terminator", default="CR", type=str.upper, choices=sorted(TERMINATORS))
    ap.add_argument("--prefix", default="")
    ap.add_argument("--suffix", default="")
    args = ap.parse_args(argv)

    out = ProbeOutput("scanner", args.port, args.baud, args.json)
    if (refused := out.port_refused()) is not None:
        return refused

    events: queue.Queue[Event] = queue.Queue()
    settings = ScannerSettings(port=args.port, baud=args.baud, terminator=args.terminator,
                               prefix=args.prefix, suffix=args.suffix)
    scanner = Scanner(settings, events.put)
    out.say(said(both("scanner.probe_scan", port=args.port, baud=args.baud, terminator=args.terminator,
                      seconds=f"{args.timeout:g}")))
    started = time.monotonic()
    scanner.start()
    try:
        while (left := started + args.timeout - time.monotonic()) > 0:
            try:
                ev = events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if isinstance(ev, DeviceError):
                out.error(ev.reason)
            elif isinstance(ev, DeviceStatus) and not ev.ok:
                return out.done(1, {"ok": False, "error": "port", "message": ev.reason, "raw": ev.raw,
                                    "errors": out.errors},
                                said((zh("scanner.probe_lost", reason=ev.zh), en("scanner.probe_lost", reason=ev.en)))
                                + (f"\n  {ev.raw}" if ev.raw else ""))
            elif isinstance(ev, CodeScanned):
                return out.done(0, {"ok": True, "code": shown(ev.text), "length": len(ev.text),
                                    "command_card": ev.text.startswith("SWABCMD:"), "errors": out.errors},
                                said(both("scanner.probe_scanned", code=shown(ev.text))))
    finally:
        scanner.stop()
    return out.done(1, {"ok": False, "error": "no_scan", "errors": out.errors},
                    said(both("scanner.probe_nothing", seconds=f"{args.timeout:g}", terminator=args.terminator)))
