"""Fixtures for the camera and printer tests: printer mocks and frame sets.

Import explicitly: ``from tests.media_fixtures import printer_tcp, frames``."""

from __future__ import annotations

import functools

import pytest

from hw_mocks.camera import frame_set
from hw_mocks.printer import PrinterMock


@pytest.fixture
def printer_tcp():
    with PrinterMock("tcp") as mock:
        yield mock


@pytest.fixture
def printer_pty():
    with PrinterMock("pty") as mock:
        yield mock


@functools.cache
def frames(kind: str, count: int, seed: int = 7):
    """Frame sets are costly to render (~50 ms each): share them across tests."""
    return frame_set(kind, count, seed=seed)


def collect(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


class Recorder:
    """Thread-safe event sink with a bounded wait (no sleeps in tests)."""

    def __init__(self) -> None:
        import threading

        self.events: list = []
        self._cond = threading.Condition()

    def __call__(self, event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.events), timeout=timeout)
