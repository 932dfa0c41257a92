"""ID-card reader shell: pyserial around the sans-I/O codec in drivers/idcard.py.

Polls find (20 01) -> select (20 02) -> read (30 01) and emits exactly one
``CardRead`` per card placement. Readers differ after a successful read: most
refuse to find the same card again until it is lifted, some find it on every
poll. Both give one event: a card counts as lifted only after ``LIFT_MISSES``
"no card" answers in a row, and a card found again while lying there is
recognised by the serial number select returns and not read again.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import serial

from drivers import idcard, said, settings_of
from drivers.idcard import FrameError, Response
from drivers.serial_port import ProbeOutput, SerialDevice, probe_parser
from firmware_app.catalogue import both, en, zh
from firmware_app.model import CardRead, DeviceError, DeviceStatus, Event, mask_id, mask_name

LIFT_MISSES = 2  # one lost find (RF noise) must not turn one placement into two
MAX_ATTEMPTS = 3  # failed reads per placement before asking for the card to be lifted
NO_ANSWER_LIMIT = 3  # unanswered commands in a row before the reader counts as down
COMMAND_TIMEOUT_S = 0.5  # find / select / status answers come in a few ms
FRAME_ERROR_GRACE_S = 0.2  # after a bad frame, wait this long for a good one behind it
LATE_DRAINS = 2  # reads, past a command's deadline, of bytes already waiting (a 2,321-byte answer needs one)

log = logging.getLogger(__name__)


@dataclass
class IdCardSettings:
    port: str = "/dev/swabkiosk-idcard"
    baud: int = 115200
    poll_ms: int = 300
    timeout_s: float = 2.0  # read base info: 0.5-1 s on the card's RF link
    set_rf_frame: bool = False  # send 61 FF 50 (max RF frame) at start-up, as some drivers do


class IdCardReader(SerialDevice):
    device = "idcard"

    def __init__(self, settings: IdCardSettings | Mapping[str, Any], on_event: Callable[[Event], None]) -> None:
        settings = settings_of(IdCardSettings, settings)
        super().__init__(settings.port, settings.baud, on_event)
        self.settings = settings
        self._decoder = idcard.ResponseDecoder()
        # (select serial, ID number) of the card taken as lying on the reader, and
        # of the last card read. After a reopen the last card is taken as lying
        # there until a lift is seen: a reader power-cycled by an unplug finds the
        # card again, and that is the same placement, not a second person.
        self._held: tuple[bytes, str] | None = None
        self._last: tuple[bytes, str] | None = None
        self._misses = 0
        self._attempts = 0
        self._unanswered = 0
        self._last_error: str | None = None

    # -- one session on an open port ---------------------------------------

    def session(self, port: serial.Serial) -> None:
        self._unanswered = 0
        self._misses = 0
        self._held = self._held or self._last
        if self.settings.set_rf_frame:
            self._command(port, idcard.SET_MAX_RF_FRAME, b"\x50")
        # SAM status tells us the reader itself answers, not just that the port opened.
        self._command(port, idcard.SAM_STATUS)
        poll_s = self.settings.poll_ms / 1000
        while not self.stopping:
            self.beat()
            self._poll(port)
            if self.wait(poll_s):
                return

    def _poll(self, port: serial.Serial) -> None:
        found = self._command(port, idcard.FIND_CARD)
        if not isinstance(found, Response):
            self._bad(found)
            return
        if found.is_(idcard.SW_NO_CARD):
            self._misses += 1
            if self._misses >= LIFT_MISSES:
                self._held = None
                self._attempts = 0
                self._last_error = None
            return
        if not found.is_(idcard.SW_CARD_FOUND):
            self._report(found.reason, _sw(found))
            return
        self._misses = 0
        selected = self._command(port, idcard.SELECT_CARD)
        if not isinstance(selected, Response):
            self._bad(selected)
            return
        if not selected.is_(idcard.SW_OK):
            if self._held is None:
                self._report(selected.reason, _sw(selected))
            return
        card_serial = selected.data if any(selected.data) else b""  # some readers send zeros
        if self._held is not None and card_serial and card_serial == self._held[0]:
            return  # the card already read is still lying there
        if self._held is None and self._attempts >= MAX_ATTEMPTS:
            return  # gave up on this placement: wait for a lift
        self._read(port, card_serial)

    def _read(self, port: serial.Serial, card_serial: bytes) -> None:
        answer = self._command(port, idcard.READ_BASE, timeout=self.settings.timeout_s)
        if not isinstance(answer, Response):
            self._failed(card_serial, answer)
            return
        if not answer.is_(idcard.SW_OK):
            self._failed(card_serial, answer)
            return
        try:
            card = idcard.decode_base_info(answer.data)
        except idcard.UnsupportedCard as exc:
            if self._held is None or self._held[1] != "":
                self.error((exc.reason, exc.reason_en), exc.raw)
            self._held = self._last = (card_serial, "")  # nothing to retry: wait for the next card
            return
        except idcard.CardDataError as exc:
            self._failed(card_serial, exc)
            return
        same = self._held is not None and self._held[1] == card.id_number
        self._held = self._last = (card_serial, card.id_number)
        self._attempts = 0
        self._last_error = None
        if not same:  # a reader without serials, or after a reopen: same card, no second event
            self.on_event(CardRead(card))

    def _failed(self, card_serial: bytes, why: Response | FrameError | idcard.IdCardError | None) -> None:
        self._attempts += 1
        raw = ""
        if why is None:
            words = both("idcard.read_timeout")
        elif isinstance(why, Response):
            words, raw = why.reason, _sw(why)
        elif isinstance(why, FrameError):
            words = (why.reason, why.reason_en)
        else:
            words, raw = (why.reason, why.reason_en), why.raw
        if self._attempts >= MAX_ATTEMPTS:
            words = (zh("idcard.lift_card", reason=words[0]), en("idcard.lift_card", reason=words[1]))
        self.error(words, raw)

    # -- commands -----------------------------------------------------------

    def _command(self, port: serial.Serial, cmd: tuple[int, int], data: bytes = b"",
                 timeout: float = COMMAND_TIMEOUT_S) -> Response | FrameError | None:
        """Send one command, return its answer: a Response, the FrameError that
        replaced it, or None when nothing answered in time."""
        port.reset_input_buffer()  # a late answer to an earlier command must not be taken for this one
        self._decoder.reset()
        port.write(idcard.encode_command(*cmd, data))
        deadline = time.monotonic() + timeout
        frame_error: FrameError | None = None
        garbage: FrameError | None = None
        drained = 0
        while not self.stopping:
            self.beat()  # a 2 s read is the loop working, not a hang
            event = self._decoder.next_event()
            if isinstance(event, Response):
                if not event.answers(cmd):
                    # an earlier command's answer, late past its timeout (a loaded machine):
                    # not this one's, and not an error to show; keep waiting for the real one
                    log.debug("idcard: dropped a late answer %r while waiting for %02X %02X", event, *cmd)
                    continue
                self._answered()
                return event
            if isinstance(event, FrameError):
                if event.kind == "garbage":
                    garbage = event
                elif frame_error is None:
                    frame_error = event
                    deadline = min(deadline, time.monotonic() + FRAME_ERROR_GRACE_S)
                continue
            now = time.monotonic()
            if now >= deadline:
                waiting = port.in_waiting
                if waiting and drained < LATE_DRAINS:
                    # bytes that came in time but were not read yet (this thread was not run
                    # for a while: a loaded machine): read them before giving up, or a whole
                    # answer waiting in the port would be reported as truncated or missing
                    drained += 1
                    self._decoder.receive_data(port.read(min(waiting, 4096)))
                    continue
                if self._decoder.pending and (lost := self._decoder.give_up()) is not None:
                    frame_error = frame_error or lost
                    continue  # rescan what is left for a whole frame
                break
            chunk = port.read(max(1, min(port.in_waiting, 4096)))
            if chunk:
                self._decoder.receive_data(chunk)
        if frame_error is not None:
            self._answered()
            return frame_error
        # Nothing, or only bytes that never formed a frame (a wrong baud rate looks like this).
        # Down only after NO_ANSWER_LIMIT in a row, at start-up too: one answer late past its
        # timeout on a loaded machine is a hiccup the next poll retries, not a reader to repair.
        self._unanswered += 1
        if self._unanswered >= NO_ANSWER_LIMIT:
            self.status(False, both("idcard.no_answer"), f"no answer on {self.port} at {self.baud} baud")
        return garbage

    def _answered(self) -> None:
        self._unanswered = 0
        self.status(True, both("idcard.ready"), self.port)

    def _bad(self, what: FrameError | None) -> None:
        if isinstance(what, FrameError):
            self._report((what.reason, what.reason_en), f"frame: {what.kind}")

    def _report(self, words: tuple[str, str], raw: str = "") -> None:
        """A reader-level problem, reported once until something else happens."""
        if words[0] != self._last_error:
            self._last_error = words[0]
            self.error(words, raw)


def _sw(answer: Response) -> str:
    """The raw status of an answer, for the technician panel."""
    return f"sw {answer.sw1:02X}{answer.sw2:02X}{answer.sw3:02X}"


# --------------------------------------------------------------------------
# swabkiosk probe idcard PORT
# --------------------------------------------------------------------------


def probe(argv: list[str]) -> int:
    args = probe_parser("idcard", "Wait for one ID card on the reader and show what was read (masked).", 115200,
                        "a card").parse_args(argv)

    out = ProbeOutput("idcard", args.port, args.baud, args.json)
    if (refused := out.port_refused()) is not None:
        return refused

    events: queue.Queue[Event] = queue.Queue()
    reader = IdCardReader(IdCardSettings(port=args.port, baud=args.baud), events.put)
    started = time.monotonic()
    deadline = started + args.timeout
    no_answer_by = started + COMMAND_TIMEOUT_S * (NO_ANSWER_LIMIT + 1) + 1.0
    answered = False
    out.say(said(both("idcard.probe_place", port=args.port, baud=args.baud, seconds=f"{args.timeout:g}")))
    reader.start()
    try:
        while (now := time.monotonic()) < deadline and (answered or now < no_answer_by):
            try:
                ev = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(ev, DeviceStatus):
                answered = ev.ok
            elif isinstance(ev, DeviceError):
                out.error(ev.reason)
            elif isinstance(ev, CardRead):
                c = ev.card
                card = {"name": mask_name(c.name), "id_number": mask_id(c.id_number), "gender": c.gender,
                        "nation": c.nation, "valid_to": c.valid_to, "photo_bytes": len(c.photo)}
                ms = round((time.monotonic() - started) * 1000)
                return out.done(0, {"ok": True, "card": card, "errors": out.errors, "elapsed_ms": ms},
                                said(both("idcard.probe_read", name=card["name"], id_number=card["id_number"],
                                          gender=c.gender, nation=c.nation, valid_to=c.valid_to, photo=len(c.photo))))
    finally:
        reader.stop()
    if not answered:
        return out.done(1, {"ok": False, "error": "no_answer", "errors": out.errors},
                        said(both("idcard.probe_no_answer", port=args.port, baud=args.baud)))
    return out.done(1, {"ok": False, "error": "no_card", "errors": out.errors},
                    said(both("idcard.probe_no_card", seconds=f"{args.timeout:g}")))
