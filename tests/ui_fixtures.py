"""The screen server on a free port with a command recorder, for the screen tests."""

from __future__ import annotations

import contextlib
import threading

from firmware_app.model import Command
from firmware_app.ui import UiServer


class Recorder:
    """on_command for tests: remembers commands and lets a test await them."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self._cond = threading.Condition()

    def __call__(self, command: Command) -> None:
        with self._cond:
            self.commands.append(command)
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 5.0) -> list[Command]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.commands) >= n, timeout)
            return list(self.commands)


@contextlib.contextmanager
def serving_ui(tmp_path):
    """A started UiServer whose commands land in ``server.recorder``."""
    rec = Recorder()
    server = UiServer("127.0.0.1", 0, rec, provision_errors=tmp_path / "provision-errors.json")
    server.recorder = rec
    server.start()
    try:
        yield server
    finally:
        server.stop()
