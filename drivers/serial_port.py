"""The one place where a serial device is kept open: open, run, lose, reopen.

``SerialDevice`` owns the thread, the stop flag, ``heartbeat`` and the
``DeviceStatus`` reports. A subclass implements ``session(port)``: it talks to
the open port until ``self.stopping`` or until the port fails (pyserial raises
``SerialException``/``OSError`` on unplug); then the port is closed and reopened
every ``REOPEN_S`` until the device is back (udev gives it the same path).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import termios
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Callable

import serial

import drivers
from firmware_app.catalogue import both, en
from firmware_app.model import DeviceName, Event

log = logging.getLogger(__name__)

# What a vanished device raises: pyserial wraps most, termios calls (flush) are raw.
PORT_LOST = (serial.SerialException, OSError, termios.error)
REOPEN_S = 0.25  # retry interval while the device is away: replug is seen well within 2 s
READ_TIMEOUT_S = 0.05  # bounds every blocking read, so stop() is prompt


class SerialDevice(ABC):
    device: DeviceName  # "idcard" | "scanner": also the prefix of its texts (idcard.absent, scanner.lost, ...)

    def __init__(self, port: str, baud: int, on_event: Callable[[Event], None]) -> None:
        self.port = port
        self.baud = baud
        self.on_event = on_event
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ok: bool | None = None  # last reported state
        self._said = ""  # and its reason: each change is reported once, not once per retry

    # -- life cycle ---------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.device}-serial", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep that ends early on stop(); True when stopping."""
        return self._stop.wait(seconds)

    def beat(self) -> None:
        self.heartbeat = time.monotonic()

    # -- reports ------------------------------------------------------------

    def status(self, ok: bool, words: tuple[str, str], raw: str = "", key: str = "") -> None:
        """Report up/down, and a new kind of being down, once per change
        (``key`` groups wordings that mean the same state)."""
        if (ok, key or words[0]) != (self._ok, self._said):
            self._ok, self._said = ok, key or words[0]
            self.on_event(drivers.status(self.device, ok, words, raw))

    def error(self, words: tuple[str, str], raw: str = "") -> None:
        self.on_event(drivers.error(self.device, words, raw))

    # -- the loop -----------------------------------------------------------

    @abstractmethod
    def session(self, port: serial.Serial) -> None:
        """Talk to the open port until stopping; raise on a lost port."""

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            try:
                port = serial.Serial(self.port, self.baud, timeout=READ_TIMEOUT_S,
                                     write_timeout=1.0, exclusive=True)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.status(False, both(f"{self.device}.absent", port=self.port), _why(exc), key="absent")
                self._stop.wait(REOPEN_S)
                continue
            try:
                self.session(port)
            except PORT_LOST as exc:
                self.status(False, both(f"{self.device}.lost"), _why(exc), key="absent")
            except Exception as exc:  # a bug must not silently end the device thread
                log.exception("%s session failed", self.device)
                self.status(False, both(f"{self.device}.driver_error"), _why(exc))
                self._stop.wait(REOPEN_S)
            finally:
                try:
                    port.close()
                except PORT_LOST:
                    pass  # a vanished device cannot be closed cleanly; the fd is released anyway
        self.beat()


def open_problem(port: str, baud: int) -> str | None:
    """For probes: why this port cannot be opened right now (raw, for a technician), or None if it can."""
    try:
        serial.Serial(port, baud, timeout=0, exclusive=True).close()
    except (serial.SerialException, OSError, ValueError) as exc:
        hint = f" ({en('device_error.port_in_use')})" if "lock" in str(exc).lower() else ""
        return f"{port}: {_why(exc)}{hint}"
    return None


def probe_parser(device: DeviceName, description: str, baud: int, waits_for: str) -> argparse.ArgumentParser:
    """``swabkiosk probe idcard|scanner PORT``: the arguments both take (a probe adds its own)."""
    ap = argparse.ArgumentParser(prog=f"swabkiosk probe {device}", description=description)
    ap.add_argument("port")
    ap.add_argument("--baud", type=int, default=baud)
    ap.add_argument("--timeout", type=float, default=30.0, help=f"seconds to wait for {waits_for} (default 30)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return ap


class ProbeOutput:
    """What ``swabkiosk probe idcard|scanner`` print: the errors seen on the way (as they come,
    unless --json) and one result at the end, as a JSON object on stdout or as the words for the
    technician (stdout when it worked, stderr when not); its exit code is the probe's."""

    def __init__(self, device: DeviceName, port: str, baud: int, as_json: bool) -> None:
        self.device, self.port, self.baud, self.as_json = device, port, baud, as_json
        self.errors: list[str] = []

    def say(self, text: str) -> None:
        if not self.as_json:
            print(text)

    def error(self, reason: str) -> None:
        self.errors.append(reason)
        if not self.as_json:
            print(f"  {reason}", file=sys.stderr)

    def done(self, code: int, result: dict[str, Any], human: str) -> int:
        if self.as_json:
            print(json.dumps({"device": self.device, "port": self.port, **result}, ensure_ascii=False))
        else:
            print(human, file=sys.stdout if code == 0 else sys.stderr)
        return code

    def port_refused(self) -> int | None:
        """Exit code 2 with why the port cannot be opened right now; None when it can."""
        problem = open_problem(self.port, self.baud)
        if problem is None:
            return None
        return self.done(2, {"ok": False, "error": "port", "message": problem},
                         drivers.said(both(f"{self.device}.probe_port", problem=problem)))


_why = drivers.why
