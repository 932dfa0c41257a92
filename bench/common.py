"""Pieces every benchmark shares: our Mosquitto, a kiosk on a table of mocks, unique people.

The broker is config/mosquitto/test-password.conf (the district config's ACL and
persistence on a plain loopback listener with a password file), started by
``tests.broker.Broker`` on a free port. Each station user is a topic path
``district/site/table``, as the ACL wants.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.broker import OPERATOR, PASSWORDS, Broker

ROOT = Path(__file__).resolve().parent.parent
STATION_PASSWORD = "bench-pw"
# One station user per benchmark that talks to the broker.
USERS = ("bench/drain/t01", "bench/kill/t01", "bench/chaos/t01")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def start_broker(workdir: str | os.PathLike) -> Broker:
    """Our Mosquitto config on a free loopback port, with a password file for USERS + the district."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    passwd = workdir / "passwd"
    passwd.write_text("")
    for user, pw in [(OPERATOR, PASSWORDS[OPERATOR])] + [(u, STATION_PASSWORD) for u in USERS]:
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, pw], check=True, capture_output=True)
    os.chmod(passwd, 0o600)
    broker = Broker(workdir, "test-password.conf", {"password_file": str(passwd)})
    broker.start()
    return broker


def broker_url(user: str, port: int) -> str:
    from urllib.parse import quote

    return f"mqtt://{quote(user, safe='')}:{STATION_PASSWORD}@127.0.0.1:{port}"


class UniquePeople:
    """hw_mocks.people with no one twice (a same-day repeat would wait for a confirm)."""

    def __init__(self, seed: int) -> None:
        from hw_mocks.people import People

        self.people = People(seed)
        self.seen: set[str] = set()

    def next(self, via: str = "card") -> Any:
        while True:
            person = self.people.person(via=via)
            if person.id_number not in self.seen:
                self.seen.add(person.id_number)
                return person


def station_text(table: Any, data_dir: str, *, broker: str = "", mode: str = "10", device_id: str | None = None) -> str:
    """The table's station file; ``device_id`` gives a trial its own MQTT session and record ids."""
    text = table.station_file(data_dir, broker=broker, mode=mode)
    if device_id:
        text = "\n".join(f'device_id = "{device_id}"' if line.startswith("device_id =") else line
                         for line in text.splitlines())
    return text


class KioskDriver:
    """The real daemon assembly (firmware_app.daemon.Kiosk) on a table of mocks, driven step by step.

    Inputs are posted to the station loop as the device shells post them; ``step``
    returns the effects of that input once the loop has carried them out (records
    durable, labels queued), seen through a runtime observer.
    """

    def __init__(self, workdir: str, data_dir: str, *, devices: tuple[str, ...] = (), broker: str = "",
                 mode: str = "10", device_id: str | None = None, seed: int = 2022) -> None:
        from firmware_app import config
        from firmware_app.daemon import Kiosk
        from firmware_app.sdnotify import Notifier
        from hw_mocks.table import Table

        self.table = Table(workdir, devices=devices, seed=seed).start()
        cfg = config.parse_text(station_text(self.table, data_dir, broker=broker, mode=mode, device_id=device_id))
        # The schema fills in default serial ports for the reader and scanner; the table has
        # only the devices asked for (the others' inputs are posted by ``step``).
        self.cfg = dataclasses.replace(cfg, devices=config.Section(
            {name: settings for name, settings in cfg.devices.items() if name in devices}))
        self.kiosk = Kiosk(self.cfg, use_ui=False, notifier=Notifier({}))
        self._cond = threading.Condition()
        self._waiting: Any = None  # the input posted by step(), matched by identity
        self._effects: list | None = None

    def start(self) -> KioskDriver:
        self.kiosk.start()
        self.kiosk.runtime.observers.append(self._observe)
        return self

    def _observe(self, event: Any, effects: list) -> None:
        with self._cond:
            if event is self._waiting:
                self._effects = effects
                self._cond.notify_all()

    def step(self, event: Any, timeout: float = 30.0) -> list:
        """Post one input; its effects once the loop has handled it."""
        with self._cond:
            self._waiting, self._effects = event, None
        self.kiosk.runtime.post(event)
        with self._cond:
            if not self._cond.wait_for(lambda: self._effects is not None, timeout):
                raise TimeoutError("station loop did not handle the input")
            effects, self._waiting, self._effects = self._effects, None, None
            return effects

    def sign_in(self) -> None:
        from firmware_app.model import CodeScanned
        from hw_mocks.table import OPERATOR as VOLUNTEER

        cert = self.table.authority.operator_cert(*VOLUNTEER, issued_at=time.time() - 60)
        level = shown(self.step(CodeScanned(cert, "scanner")))
        if level not in ("ok", "info"):
            raise RuntimeError(f"sign-in refused ({level})")

    def stop(self) -> None:
        try:
            self.kiosk.stop()
        finally:
            self.table.stop()


def shown(effects: list) -> str:
    """The level of the last Show of a step ("" if none)."""
    from firmware_app.model import Show

    levels = [e.level for e in effects if isinstance(e, Show)]
    return levels[-1] if levels else ""


def sample_ids(effects: list) -> list[str]:
    from firmware_app.model import Persist

    return [e.record["record_id"] for e in effects if isinstance(e, Persist) and e.record.get("kind") == "sample"]
