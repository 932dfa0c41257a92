"""Shared helpers for the serial-device tests: real pyserial over pty mocks."""

from __future__ import annotations

import threading
import time
from typing import Callable

import pytest

from drivers.idcard_reader import IdCardReader, IdCardSettings
from drivers.scanner import Scanner, ScannerSettings
from drivers.serial_port import open_problem
from firmware_app.model import Event
from hw_mocks.idcard_reader import SimIdCardReader
from hw_mocks.scanner import SimScanner

WAIT_S = 10.0  # upper bound for any awaited event; tests end as soon as it arrives
POLL_MS = 50  # tests poll faster than the 300 ms default to stay quick


class Events:
    """Thread-safe event log a driver writes to; tests wait on conditions, not sleeps."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[Event] = []
        self.at: list[float] = []

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.items.append(event)
            self.at.append(time.monotonic())
            self._cond.notify_all()

    def of(self, kind: type) -> list:
        with self._cond:
            return [e for e in self.items if isinstance(e, kind)]

    def wait_for(self, pred: Callable[[list[Event]], bool], timeout: float = WAIT_S) -> list[Event]:
        with self._cond:
            if not self._cond.wait_for(lambda: pred(self.items), timeout):
                raise AssertionError(f"condition not met within {timeout}s; events: {self.items!r}")
            return list(self.items)

    def wait_count(self, kind: type, n: int, timeout: float = WAIT_S) -> list:
        self.wait_for(lambda items: sum(isinstance(e, kind) for e in items) >= n, timeout)
        return self.of(kind)


def wait_until(pred: Callable[[], bool], timeout: float = WAIT_S, step: float = 0.01) -> None:
    """For conditions on a mock (e.g. "the reader was polled N more times")."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(step)


def assert_running(device) -> None:
    """The device's loop goes on: it holds its port (a probe cannot take it) and its heartbeat moves."""
    assert open_problem(device.port, device.baud) is not None
    first = device.heartbeat
    wait_until(lambda: device.heartbeat > first)


def assert_stopped(device, quiet_s: float = 0.3) -> None:
    """What stop() leaves: the port free at once for another program (``swabkiosk probe`` opens it
    exclusively) and nothing running: the heartbeat stays where it is."""
    assert open_problem(device.port, device.baud) is None
    beat = device.heartbeat
    time.sleep(quiet_s)
    assert device.heartbeat == beat


def polls(sim: SimIdCardReader) -> int:
    return sum(1 for c in sim.commands if c == (0x20, 0x01))


@pytest.fixture
def idcard_sim(tmp_path):
    sim = SimIdCardReader(tmp_path / "idcard")
    yield sim
    sim.close()


@pytest.fixture
def idcard_driver(idcard_sim):
    events = Events()
    reader = IdCardReader(IdCardSettings(port=str(idcard_sim.path), poll_ms=POLL_MS), events)
    reader.start()
    yield reader, events
    reader.stop()


@pytest.fixture
def scanner_sim(tmp_path):
    sim = SimScanner(tmp_path / "scanner")
    yield sim
    sim.close()


@pytest.fixture
def scanner_driver(scanner_sim):
    events = Events()
    scanner = Scanner(ScannerSettings(port=str(scanner_sim.path)), events)
    scanner.start()
    yield scanner, events
    scanner.stop()
