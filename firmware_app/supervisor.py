"""Keeps each configured device running without ever taking the daemon down.

A device shell (drivers area) is built by a factory, started, and watched: when
``start()`` raises, or its loop stops beating (``heartbeat`` older than
``stale_after``), it is stopped and built again after a backoff (1 s doubling to
30 s). Every change is reported as a ``DeviceStatus`` event so the volunteer sees
"printer not connected" (``printer.not_connected``) instead of a frozen kiosk, and the district sees it in `status`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, cast, get_args

import drivers
from firmware_app.catalogue import both
from firmware_app.model import DeviceName, DeviceStatus, Event

log = logging.getLogger("swabkiosk.supervisor")

TICK_S = 1.0
QUIET_UP_S = 2.0  # a shell that says nothing about itself this long after start counts as up


class Supervisor:
    def __init__(self, name: str, factory: Callable[[Callable[[Event], None]], Any],
                 on_event: Callable[[Event], None], *, stale_after: float | None = 30.0,
                 backoff: tuple[float, float] = (1.0, 30.0)) -> None:
        if name not in get_args(DeviceName):
            raise ValueError(f"no such device: {name!r}")
        self.name = cast(DeviceName, name)  # checked just above
        self.factory = factory
        self.on_event = on_event
        self.stale_after = stale_after
        self.backoff_min, self.backoff_max = backoff
        self.heartbeat = time.monotonic()
        self.device: Any = None
        self.ok = False
        self.reason = "starting"
        self.restarts = 0
        self._device_spoke = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # The device calls this from its own thread.
    def _device_event(self, event: Event) -> None:
        if isinstance(event, DeviceStatus) and event.device == self.name:
            self._device_spoke = True
            self.ok, self.reason = event.ok, event.reason
        self.on_event(event)

    def _report(self, ok: bool, words: tuple[str, str] = ("", ""), raw: str = "") -> None:
        event = drivers.status(self.name, ok, words, raw)
        if (ok, event.reason) == (self.ok, self.reason):
            return  # retries of the same failure are not news
        (log.info if ok else log.warning)("%s %s%s%s", self.name, "up" if ok else "down",
                                          f": {words[1]}" if words[1] else "", f" ({raw})" if raw else "")
        self.ok, self.reason = ok, event.reason
        self.on_event(event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"supervise-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = self.backoff_min
        healthy_since = 0.0
        while not self._stop.is_set():
            now = self.heartbeat = time.monotonic()
            if self.device is None:
                if not self._start_device():
                    self._wait(delay)
                    delay = min(delay * 2, self.backoff_max)
                    continue
                healthy_since = time.monotonic()
            elif self._hung(now):
                self._report(False, both("device_error.not_responding", seconds=f"{now - self.device.heartbeat:.0f}"))
                self._stop_device()
                self.restarts += 1
                self._wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            else:
                if not self._device_spoke and now - healthy_since > QUIET_UP_S:
                    self._report(True)  # started, beating, and no complaint of its own: up
                    self._device_spoke = True
                if now - healthy_since > 60:
                    delay = self.backoff_min  # a minute of health forgives earlier failures
            self._wait(TICK_S)
        self._stop_device()

    def _wait(self, seconds: float) -> None:
        # Sleep in ticks so our own heartbeat stays fresh for the watchdog.
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            left = end - self.heartbeat
            if left <= 0:
                return
            self._stop.wait(min(left, TICK_S))

    def _start_device(self) -> bool:
        self._device_spoke = False
        try:
            device = self.factory(self._device_event)
            device.start()
        except Exception as exc:  # any failure of one device must not kill the daemon
            log.debug("%s start failed", self.name, exc_info=True)
            self._report(False, both("device_error.start_failed"), drivers.why(exc, 300))
            return False
        self.device = device
        return True

    def _hung(self, now: float) -> bool:
        beat = getattr(self.device, "heartbeat", None)
        return self.stale_after is not None and isinstance(beat, (int, float)) and now - beat > self.stale_after

    def _stop_device(self) -> None:
        device, self.device = self.device, None
        if device is None:
            return
        # stop() of a hung device may hang too: give it a bounded time on a helper thread.
        t = threading.Thread(target=_quiet_stop, args=(device, self.name), name=f"stop-{self.name}", daemon=True)
        t.start()
        t.join(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=8)

    def state(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "restarts": self.restarts}


def _quiet_stop(device: Any, name: str) -> None:
    try:
        device.stop()
    except Exception:
        log.warning("%s stop failed", name, exc_info=True)
