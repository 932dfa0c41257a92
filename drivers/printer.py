"""ESC/POS label printer shell: a queue of labels that survives restarts.

Every label is persisted (``save_pending``) before ``print_label`` returns,
then a worker thread asks the printer's status (DLE EOT), marks the label as
being sent, sends the bytes, and asks again. A label prints at most once: two
stickers with one tube barcode are a mix-up waiting to happen. A label whose
bytes went out but whose after-print status was bad (paper ran out, cover
opened, unplugged), or that was being sent when the kiosk stopped, leaves the
queue and the volunteer is told to check it and scan "reprint label" (the reprint command) if
it did not come out. The tube id (``ref``) travels with the label through the
queue and the store, so the tube <-> label link survives a crash or a power cut.

Targets (``[devices.printer] target``):
  serial:/dev/ttyUSB0[:baud]   usb:0x0416:0x5011   tcp://HOST[:9100]   file:/dev/usb/lp0
``file:`` cannot read status back (the kernel's usblp is write-only for us):
labels are taken as printed once written.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import drivers
from drivers import escpos_label, said
from firmware_app.catalogue import both, en, zh
from firmware_app.model import Event, Label

RETRY_S = 3.0  # how often a failing printer is tried again
POLL_S = 15.0  # status poll while idle, so "paper out" shows before it is needed
IO_TIMEOUT_S = 3.0
# DLE EOT is answered in real time, before buffered data has printed: ask the
# after-print status once a 58 mm printer (50-90 mm/s) has fed a label out.
# The default of [devices.printer] settle_s and of `swabkiosk probe printer --settle`.
SETTLE_S = 1.0

# What a printer can be, as catalogue keys (texts in firmware_app/catalogue/devices.py) ...
NOT_CONNECTED_KEY, NOT_ANSWERING_KEY = "printer.not_connected", "printer.not_answering"
PAPER_OUT_KEY, PAPER_LOW_KEY = "printer.paper_out", "printer.paper_low"
COVER_OPEN_KEY, OFFLINE_KEY = "printer.cover_open", "printer.offline"
# ... and as the one-line "zh / en" reason of its DeviceStatus
NOT_CONNECTED, NOT_ANSWERING = said(both(NOT_CONNECTED_KEY)), said(both(NOT_ANSWERING_KEY))
PAPER_OUT, PAPER_LOW = said(both(PAPER_OUT_KEY)), said(both(PAPER_LOW_KEY))
COVER_OPEN, OFFLINE = said(both(COVER_OPEN_KEY)), said(both(OFFLINE_KEY))
TEST_BARCODE = escpos_label.probe_label("", "").barcode


class PrinterError(Exception):
    """The printer cannot print now: ``words`` (zh, en) for the volunteer, ``raw`` the
    error as the library gave it (technician panel); ``str()`` is both, for probes."""

    def __init__(self, key: str, raw: str = "") -> None:
        self.key, self.words, self.raw = key, both(key), raw
        super().__init__(said(self.words) + (f": {raw}" if raw else ""))


@dataclass(frozen=True)
class Target:
    kind: str  # serial | usb | tcp | file
    address: str  # device path, host, or VID:PID
    number: int = 0  # baud or TCP port

    @property
    def reads_status(self) -> bool:
        return self.kind != "file"


def parse_target(text: str) -> Target:
    """``serial:/dev/ttyUSB0:9600`` -> Target; ValueError with a clear message."""
    try:
        if text.startswith("serial:"):
            path, _, baud = text[7:].partition(":")
            if not path.startswith("/"):
                raise ValueError
            return Target("serial", path, int(baud or 9600))
        if text.startswith("usb:"):
            vid, pid = text[4:].split(":")
            return Target("usb", f"{int(vid, 16):04x}:{int(pid, 16):04x}")
        if text.startswith("tcp://"):
            host, _, port = text[6:].rstrip("/").partition(":")
            if not host:
                raise ValueError
            return Target("tcp", host, int(port or 9100))
        if text.startswith("file:") and text[5:].startswith("/"):
            return Target("file", text[5:])
    except ValueError:
        pass
    raise ValueError(said(both("printer.unknown_target", target=repr(text))))


def open_target(target: Target):
    """A connected python-escpos printer object for the target (raises PrinterError)."""
    escpos_label._escpos_class()  # sets the capabilities cache before the import below
    from escpos.exceptions import DeviceNotFoundError

    try:
        if target.kind == "tcp":
            from escpos.printer.network import Network
            p = Network(target.address, target.number, timeout=IO_TIMEOUT_S)
        elif target.kind == "serial":
            from escpos.printer.serial import Serial
            p = Serial(target.address, baudrate=target.number, timeout=IO_TIMEOUT_S)
        elif target.kind == "usb":
            from escpos.printer.usb import Usb
            vid, pid = (int(x, 16) for x in target.address.split(":"))
            p = Usb(vid, pid, timeout=int(IO_TIMEOUT_S * 1000))
        else:
            if not os.path.exists(target.address):  # never create a plain file in its place
                raise PrinterError(NOT_CONNECTED_KEY, f"{target.address} does not exist")
            from escpos.printer.file import File
            p = File(target.address)
        p.open()
    except PrinterError:
        raise
    except (DeviceNotFoundError, OSError) as exc:
        raise PrinterError(NOT_CONNECTED_KEY, str(exc).strip()) from exc
    except Exception as exc:  # pyusb without libusb (NoBackendError), serial.SerialException, ...
        if type(exc).__name__ == "NoBackendError":
            raise PrinterError(NOT_CONNECTED_KEY, "libusb missing (apt install libusb-1.0-0)") from exc
        raise PrinterError(NOT_CONNECTED_KEY, f"{type(exc).__name__}: {exc}") from exc
    if p.device is None:  # python-escpos logs instead of raising for some targets
        raise PrinterError(NOT_CONNECTED_KEY, "python-escpos opened no device")
    return p


def close(printer) -> None:
    """Close a python-escpos printer whose device may already be gone.

    Its Serial.close() flushes first, which raises on an unplugged port and
    would raise again from __del__; close the port itself and mark it closed."""
    try:
        printer.close()
    except Exception:
        try:
            printer._device.close()
        except Exception:  # nothing left to release
            pass
        printer._device = False


def query(printer, target: Target, n: int) -> int:
    """DLE EOT n: one real-time status byte (raises PrinterError if none comes)."""
    try:
        printer._raw(b"\x10\x04" + bytes([n]))
        # python-escpos' Serial._read() waits for 16 bytes (the full timeout);
        # the answer is one byte, so read exactly one.
        data = printer.device.read(1) if target.kind == "serial" else printer._read()
    except Exception as exc:
        raise PrinterError(NOT_ANSWERING_KEY, str(exc)) from exc
    if not data:
        raise PrinterError(NOT_ANSWERING_KEY, f"no answer to DLE EOT {n}")
    return data[-1]


def read_status(printer, target: Target, enabled: bool = True) -> tuple[bool, str]:
    """(can print, catalogue key of the reason or ""). Paper end and cover come from DLE EOT 4 and 2."""
    if not (enabled and target.reads_status):
        return True, ""
    paper = query(printer, target, 4)
    if paper & 0x60:
        return False, PAPER_OUT_KEY
    online = query(printer, target, 1)
    if online & 0x08:
        cause = query(printer, target, 2)
        if cause & 0x20:
            return False, PAPER_OUT_KEY
        if cause & 0x04:
            return False, COVER_OPEN_KEY
        return False, OFFLINE_KEY
    return True, PAPER_LOW_KEY if paper & 0x0C else ""


@dataclass(frozen=True)
class Pending:
    """A label waiting to print, with the tube/box it belongs to."""

    ref: str
    label: Label
    queued_at: float
    sending: bool = False  # its bytes may have gone out: never sent again by itself

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["label"]["lines"] = list(self.label.lines)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Pending:
        lab = d["label"]
        return Pending(d["ref"], Label(kind=lab["kind"], barcode=lab["barcode"],
                                       lines=tuple(lab["lines"]), qr=lab.get("qr", "")),
                       float(d["queued_at"]), bool(d.get("sending", False)))


def doubt(ref: str, reason: tuple[str, str]) -> tuple[str, str]:
    """What the volunteer is told about a label that may not have come out (``reason``: zh, en)."""
    return zh("printer.doubt", ref=ref, reason=reason[0]), en("printer.doubt", ref=ref, reason=reason[1])


class Printer:
    """Device shell. ``settings`` is ``[devices.printer]``: ``target`` and
    optionally ``query_status`` (default true), ``barcode`` ("printer", the
    default, or "image": see drivers/escpos_label.py) and ``settle_s`` (SETTLE_S).

    ``save_pending(list_of_dicts)`` must store durably (e.g. Store.set_meta)
    and raise if it cannot; ``load_pending()`` returns what was saved. Both
    default to memory only. ``save_sending`` stores the queue when a label is
    marked as being sent or leaves it (default: ``save_pending``; the daemon
    passes a write without its own flush: the next registration's commit makes
    it durable). ``on_printed(ref, label)`` is called from the printer thread
    after a label came out."""

    def __init__(self, settings: dict[str, Any], on_event: Callable[[Event], None], *,
                 save_pending: Callable[[list[dict]], None] | None = None,
                 load_pending: Callable[[], list[dict]] | None = None,
                 on_printed: Callable[[str, Label], None] | None = None,
                 save_sending: Callable[[list[dict]], None] | None = None,
                 retry_s: float = RETRY_S, poll_s: float = POLL_S, settle_s: float | None = None) -> None:
        self.target = parse_target(settings["target"])
        # Printers (or USB-serial cables without RX) that never answer DLE EOT
        # would otherwise keep every label pending: `query_status = false`.
        self.query_status = bool(settings.get("query_status", True)) and self.target.reads_status
        self.barcode = settings.get("barcode", "printer")
        if self.barcode not in escpos_label.BARCODE_MODES:
            raise ValueError(said(both("printer.barcode_mode", choices=", ".join(escpos_label.BARCODE_MODES))))
        self._on_event = on_event
        self._save = save_pending or (lambda items: None)
        self._save_sending = save_sending or self._save
        self._on_printed = on_printed or (lambda ref, label: None)
        self._retry_s, self._poll_s = retry_s, poll_s
        # after-print wait: given here (tests, the simulator), else [devices.printer] settle_s
        self._settle_s = float(settings.get("settle_s", SETTLE_S)) if settle_s is None else settle_s
        loaded = [Pending.from_dict(d) for d in (load_pending() if load_pending else [])]
        # labels that were being sent when the kiosk stopped: the volunteer decides (reprint or not)
        self._doubts = [p.ref for p in loaded if p.sending]
        self._queue = [p for p in loaded if not p.sending]
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._device = None
        self._status: tuple[bool, str] | None = None  # (ok, catalogue key of the reason)
        self.heartbeat = time.monotonic()

    # -- API for the daemon ------------------------------------------------

    def start(self) -> None:
        if self._doubts:
            try:
                self._save_sending([p.to_dict() for p in self._queue])
            except Exception:  # noqa: BLE001 - still told below; at worst told again after a restart
                pass
            for ref in self._doubts:
                self._on_event(drivers.error("printer", doubt(ref, both("printer.restarted_while_printing"))))
            self._doubts = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=2 * IO_TIMEOUT_S + 1)
        self._close()

    def print_label(self, label: Label, ref: str = "") -> None:
        """Queue a label; it is durable (saved) when this returns.

        Raises LabelError for a label no printer could print, and whatever
        save_pending raises (e.g. StoreFull) when it cannot be kept."""
        escpos_label.render(label, self.barcode)  # refuse now, not after it sat in the queue
        with self._cond:
            queue = [*self._queue, Pending(ref, label, time.time())]
            self._save([p.to_dict() for p in queue])
            self._queue = queue
            self._cond.notify_all()

    def print_labels(self, jobs: list[tuple[Label, str]],
                     commit: Callable[[list[dict]], None]) -> list[tuple[str, Exception]]:
        """Queue labels (label, ref) and save the new queue with ``commit`` instead of
        ``save_pending``: the daemon's commit stores the step's records and this queue
        in one durable write. ``commit`` is called even when no label is printable
        (the records must still be stored); what it raises is raised here and nothing
        is queued. Returns (ref, LabelError) for each label no printer could print."""
        refused: list[tuple[str, Exception]] = []
        added = []
        for label, ref in jobs:
            try:
                escpos_label.render(label, self.barcode)  # refuse now, not after it sat in the queue
            except escpos_label.LabelError as exc:
                refused.append((ref, exc))
                continue
            added.append(Pending(ref, label, time.time()))
        with self._cond:
            queue = [*self._queue, *added]
            commit([p.to_dict() for p in queue])
            self._queue = queue
            self._cond.notify_all()
        return refused

    def pending(self) -> list[Pending]:
        with self._cond:
            return list(self._queue)

    def status(self) -> tuple[bool, str] | None:
        """Last known (ok, reason as "zh / en"); None before the first check."""
        if self._status is None:
            return None
        ok, key = self._status
        return ok, said(both(key)) if key else ""

    # -- worker ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            with self._cond:
                if self._stopping:
                    return
                if not self._queue or self._status is None or not self._status[0]:
                    wait = self._poll_s if self._status and self._status[0] else self._retry_s
                    if self._status is not None:
                        self._cond.wait(timeout=wait)
                if self._stopping:
                    return
                head = self._queue[0] if self._queue else None
            self._attempt(head)

    def _attempt(self, head: Pending | None) -> None:
        # A connection kept open for a while may have been dropped by the
        # printer (idle timeout, power save): reconnect once before reporting,
        # but only if nothing was sent yet (never print a label twice for it).
        for last_try in (False, True):
            reused = self._device is not None
            sent = False
            try:
                device = self._device = self._device or open_target(self.target)
                ok, key = read_status(device, self.target, self.query_status)
                raw = ""
                if ok and head is not None:
                    head = self._mark_sending(head)
                    sent = True
                    device._raw(escpos_label.render(head.label, self.barcode))
                    if self.query_status:
                        with self._cond:
                            self._cond.wait_for(lambda: self._stopping, timeout=self._settle_s)
                    ok, key = read_status(device, self.target, self.query_status)
                    self._done(head, "" if ok else key)
                break
            except Exception as exc:  # PrinterError; OSError, termios.error, USBError while writing
                self._close()
                ok = False
                if isinstance(exc, PrinterError):
                    key, raw = exc.key, exc.raw
                else:
                    key, raw = NOT_CONNECTED_KEY, f"{type(exc).__name__}: {exc}"
                if sent and head is not None:
                    self._done(head, key, raw)
                if sent or not reused or last_try:
                    break
        self._report(ok, key, raw)

    def _mark_sending(self, head: Pending) -> Pending:
        """Mark the head as being sent before its bytes go out (a restart then never sends it
        again by itself). Raises if the mark cannot be saved: nothing is sent."""
        with self._cond:
            marked = Pending(head.ref, head.label, head.queued_at, sending=True)
            queue = [marked if p is head else p for p in self._queue]
            self._save_sending([p.to_dict() for p in queue])
            self._queue = queue
            return marked

    def _done(self, head: Pending, key: str, raw: str = "") -> None:
        """The head's bytes went out: it leaves the queue. With a bad after-print status
        (``key``) the volunteer is asked to check it and reprint if it did not come out."""
        with self._cond:
            self._queue = [p for p in self._queue if p is not head]
            try:
                self._save_sending([p.to_dict() for p in self._queue])
            except Exception as exc:  # it stays marked as being sent: reported, not sent, after a restart
                self._on_event(drivers.status("printer", False, both("printer.queue_unsaved"), drivers.why(exc, 300)))
        if key:
            self._on_event(drivers.error("printer", doubt(head.ref, both(key)), raw))
        else:
            self._on_printed(head.ref, head.label)

    def _report(self, ok: bool, key: str, raw: str = "") -> None:
        if (ok, key) != self._status:
            self._status = (ok, key)
            self._on_event(drivers.status("printer", ok, both(key) if key else ("", ""), raw))

    def _close(self) -> None:
        dev, self._device = self._device, None
        if dev is not None:
            close(dev)


def probe(argv: list[str]) -> int:
    """`swabkiosk probe printer ...`: drivers/printer_probe.py."""
    from drivers.printer_probe import probe as run

    return run(argv)
