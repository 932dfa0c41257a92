"""The kiosk's voice: short prompts through espeak-ng (Mandarin), one at a time."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess

from firmware_app.catalogue import zh

log = logging.getLogger(__name__)

_LONG_ID = re.compile(r"[A-Z]{1,6}-?[A-Z]?[0-9]{8,}|[0-9]{9,}")


def speakable(text: str) -> str:
    """What espeak-ng is given for a prompt: long ids as their last four digits."""
    def tail(m: re.Match) -> str:
        digits = re.sub(r"[^0-9]", "", m.group(0))[-4:]
        names = zh("runtime.digits")
        return zh("runtime.id_tail", digits="".join(names[int(d)] for d in digits))
    return _LONG_ID.sub(tail, text)


class Speaker:
    """Say effects through espeak-ng (Mandarin voice "cmn") when present and wanted; else
    logged. bin/bootstrap, deploy/install.sh and the pi-gen stage install espeak-ng.
    ``wav``: write each prompt to that file instead of the sound card (tests, diagnosis)."""

    def __init__(self, enabled: bool = True, wav: str | None = None) -> None:
        self.program = shutil.which("espeak-ng") if enabled else None
        self.wav = wav
        self.said: list[str] = []  # what was said, as given to espeak-ng (bounded)
        self._current: subprocess.Popen | None = None

    def command(self, text: str) -> list[str]:
        return [self.program or "espeak-ng", "-v", "cmn", "-s", "150", *(["-w", self.wav] if self.wav else []),
                speakable(text)]

    def say(self, text: str) -> None:
        log.info("say: %s", text)
        self.said = [*self.said[-49:], speakable(text)]
        if not self.program:
            return
        if self._current is not None and self._current.poll() is None:
            self._current.terminate()  # a new prompt replaces one still speaking
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._current.wait(timeout=1)  # reaped, not left <defunct>
        try:
            self._current = subprocess.Popen(self.command(text),
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            log.warning("espeak-ng failed: %s", exc)

    def wait(self, timeout: float | None = None) -> None:
        """Until the prompt being spoken has ended (subprocess.TimeoutExpired after timeout)."""
        if self._current is not None:
            self._current.wait(timeout)
