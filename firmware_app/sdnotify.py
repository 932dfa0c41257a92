"""systemd notification (sd_notify) over $NOTIFY_SOCKET with a plain socket.

READY=1 once the kiosk is up, STATUS= lines for `systemctl status`, STOPPING=1 on
shutdown, and WATCHDOG=1 pings that are sent only while every watched part of the
daemon (station loop, device supervisors, uplink) has a fresh heartbeat: a hung loop
stops the pings and systemd restarts the service after WatchdogSec.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable

log = logging.getLogger("swabkiosk.sdnotify")


class Notifier:
    """Sends sd_notify datagrams; a no-op when not started by systemd."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        if path.startswith("@"):  # abstract namespace socket
            path = "\0" + path[1:]
        self._address = path or None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process systemd expects the pings from.
        for_us = not pid or pid == str(os.getpid())
        self.watchdog_s: float | None = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and for_us else None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *lines: str) -> bool:
        if self._address is None:
            return False
        data = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(data, self._address)
                return True
            except OSError as exc:
                log.warning("sd_notify to %r failed: %s", self._address, exc)
                return False

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self, status: str = "") -> None:
        self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class Watchdog:
    """Pings systemd at half of WatchdogSec, but only while every heartbeat is fresh.

    ``heartbeats`` maps a part's name to a function returning its last
    ``time.monotonic()`` heartbeat; a part whose heartbeat is older than
    ``stale_after`` seconds (or its own entry in ``limits``, if longer) is hung,
    and then no ping is sent.
    """

    def __init__(self, notifier: Notifier, heartbeats: dict[str, Callable[[], float]],
                 stale_after: float | None = None, limits: dict[str, float] | None = None,
                 status: Callable[[], str] | None = None) -> None:
        self.notifier = notifier
        self.heartbeats = heartbeats
        self.status = status  # STATUS= for `systemctl status`, sent with a ping when it changed
        self._last_status = ""
        self.limits = limits or {}  # parts allowed longer silences (e.g. a blocking TLS connect)
        wd = notifier.watchdog_s
        self.interval = wd / 2 if wd else None
        # A part is hung when silent longer than this; below WatchdogSec so the
        # missing pings reach systemd in time, above the loops' 1 s idle tick.
        self.stale_after = stale_after if stale_after is not None else max(2.0, min(10.0, (wd or 20) / 2))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stale: set[str] = set()

    def stale(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        return sorted(name for name, beat in self.heartbeats.items()
                      if now - beat() > max(self.stale_after, self.limits.get(name, 0.0)))

    def check_and_ping(self) -> bool:
        stale = self.stale()
        newly = set(stale) - self._stale
        if newly:
            log.error("watchdog: %s not responding for over %.0f s; no ping sent (systemd will restart us)",
                      ", ".join(sorted(newly)), self.stale_after)
        elif self._stale and not stale:
            log.warning("watchdog: every part responding again")
        self._stale = set(stale)
        if stale:
            self.notifier.status(f"not responding: {', '.join(stale)}")
            self._last_status = ""
            return False
        text = self.status() if self.status is not None else ""
        if text and text != self._last_status:
            self._last_status = text
            self.notifier.send("WATCHDOG=1", f"STATUS={text}")
        else:
            self.notifier.watchdog()
        return True

    def start(self) -> None:
        if self.interval is None or not self.notifier.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check_and_ping()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
