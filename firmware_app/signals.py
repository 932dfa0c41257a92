"""SIGTERM and SIGINT for `swabkiosk run` and `run --simulate`: a clean stop, never a kill.

``stop_on_signals`` is installed before anything starts and before READY (systemd may send
SIGTERM the moment it hears READY); ``wait_for`` turns the signal into a set ``Event``.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
from types import FrameType

log = logging.getLogger("swabkiosk.daemon")

# The read end of the pipe Python's C-level signal handler writes each signal's number to
# (signal.set_wakeup_fd); wait_for reads it. One pipe per process, made on first use.
_signal_pipe: int | None = None


def _record_signal(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: it does nothing, on purpose. It runs in the main thread
    between two bytecodes, possibly while that thread holds a lock (an Event's, logging's) or
    while it runs this very handler for the previous signal (GNU timeout sends SIGTERM to the
    child and to its process group): taking any lock here could deadlock. The signal number
    is already in the wakeup pipe, written by the interpreter's C handler, and wait_for acts
    on it. Installing it (instead of SIG_DFL) is what keeps SIGTERM from killing us."""


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT stop the kiosk: wait_for(stop) sets ``stop`` when one arrived. Installed
    before anything starts and before READY: systemd may send SIGTERM the moment it hears
    READY (or while we start), and the default action would kill us without the clean stop
    (STOPPING, availability offline). A signal that arrives while starting waits in the pipe."""
    global _signal_pipe
    if _signal_pipe is None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)  # the C handler must never block; a full pipe drops bytes
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        _signal_pipe = read_end
    signal.signal(signal.SIGTERM, _record_signal)
    signal.signal(signal.SIGINT, _record_signal)


def wait_for(stop: threading.Event) -> None:
    """Until a signal arrived (stop_on_signals) or another thread set ``stop`` (a restart)."""
    while not stop.is_set():
        if _signal_pipe is None:
            stop.wait(0.2)
            continue
        ready, _, _ = select.select([_signal_pipe], [], [], 0.2)
        if not ready:
            continue
        try:
            got = os.read(_signal_pipe, 512)
        except BlockingIOError:
            continue
        names = sorted({signal.Signals(n).name for n in got if n in (signal.SIGTERM, signal.SIGINT)})
        if names:
            log.info("%s received", ", ".join(names))
            stop.set()
