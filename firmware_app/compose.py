"""The composition root: the one place the kiosk is put together from a station file.

``Kiosk`` builds the store, the station, the runtime (the loop: facts -> step -> one commit
-> effects), the uplink, the screen and every configured device under a supervisor, and
stops them in the reverse order. `swabkiosk run`, `run --simulate` and `swabkiosk simulate`
all build this one thing (firmware_app.daemon, firmware_app.simulate), as do the tests and
the benchmarks.

Devices start in their own threads, so READY does not wait for a slow USB device. Stop:
devices first (no new people), the loop finishes what was already read, the printer after
it (labels of the last steps are queued), the uplink says offline, then the store closes.
"""

from __future__ import annotations

import errno
import importlib
import logging
import threading
import time
from typing import Any, Callable, TypeVar

from firmware_app import __version__, config, pushed
from firmware_app.config import Config
from firmware_app.model import Event
from firmware_app.push_commands import PushCommands
from firmware_app.runtime import PENDING_LABELS, Runtime
from firmware_app.voice import Speaker
from firmware_app.sdnotify import Notifier, Watchdog
from firmware_app.signals import stop_on_signals, wait_for
from firmware_app.station import Station
from firmware_app.store import Store, StoreCorrupt
from firmware_app.store_schema import StoreError
from firmware_app.supervisor import Supervisor
from firmware_app.ui import UiServer
from firmware_app.uplink import Uplink, UplinkSettings


log = logging.getLogger("swabkiosk.daemon")
_Part = TypeVar("_Part")

# Device shells by config section: (module, class). Imported in the supervisor's thread, so the
# camera and printer libraries never hold up READY.
DEVICE_SHELLS = {
    "idcard": ("drivers.idcard_reader", "IdCardReader"),
    "scanner": ("drivers.scanner", "Scanner"),
    "camera": ("drivers.camera", "Camera"),
    "printer": ("drivers.printer", "Printer"),
}
# Heartbeat age after which a device's loop counts as hung and is restarted.
# The printer polls its status every 15 s and may wait 2 x 3 s on I/O.
DEVICE_STALE_S = {"printer": 40.0}
DEFAULT_DEVICE_STALE_S = 30.0
UPLINK_STALE_S = 20.0


def version() -> str:
    return __version__


class Kiosk:
    """Everything `run` starts, in one process; `simulate` builds the same thing."""

    def __init__(self, cfg: Config, *, data_dir: str | None = None, ui_port: int | None = None,
                 notifier: Notifier | None = None, use_ui: bool = True,
                 device_overrides: dict[str, dict] | None = None, any_ui_port: bool = False,
                 config_path: str | None = None, restart: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path  # where a pushed station file is written (None: refused)
        self.restart = restart or (lambda: None)
        # Settings the station file cannot hold, e.g. the simulator's camera replaying one live frame.
        self.device_overrides = device_overrides or {}
        self.any_ui_port = any_ui_port  # the simulator takes a free port when its own is busy
        self.data_dir: str = data_dir or cfg.store.data_dir
        self.ui_port = ui_port
        self.use_ui = use_ui
        self.notifier = notifier or Notifier()
        self._store: Store | None = None
        self._runtime: Runtime | None = None
        self._uplink: Uplink | None = None
        self.ui: UiServer | None = None  # None without a screen
        self.supervisors: dict[str, Supervisor] = {}
        self.watchdog: Watchdog | None = None
        self.final_stats: dict[str, Any] = {}
        self.ready_s: float | None = None

    # ------------------------------------------------------------- the parts, once started
    @property
    def store(self) -> Store:
        return _started(self._store, "store")

    @property
    def runtime(self) -> Runtime:
        return _started(self._runtime, "runtime")

    @property
    def uplink(self) -> Uplink:
        return _started(self._uplink, "uplink")

    # ------------------------------------------------------------- start
    def start(self) -> None:
        t0 = time.monotonic()
        store = self._store = open_store(self.data_dir, int(self.cfg.store.get("archive_days", 30)))
        runtime = self._runtime = Runtime(store, self._make_station, uplink=None,
                                          get_printer=self._printer if "printer" in self._devices() else None,
                                          speaker=Speaker(bool(self.cfg.ui.get("sound", True))), version=version(),
                                          unsent_minutes=(int(self.cfg.ui.get("unsent_warn_minutes", 15)),
                                                          int(self.cfg.ui.get("unsent_alarm_minutes", 60))))
        PushCommands(self.cfg, self.data_dir, self.config_path, store, runtime, self.restart).install()
        uplink = self._uplink = runtime.uplink = self._make_uplink()
        runtime.start()
        uplink.start()
        self.ui = runtime.ui = self._make_ui()
        # Devices last: their threads import the camera and printer libraries, which would
        # otherwise compete with the main thread on its way to READY.
        for name, settings in self._devices().items():
            sup = Supervisor(name, self._factory(name, settings), runtime.post,
                             stale_after=DEVICE_STALE_S.get(name, DEFAULT_DEVICE_STALE_S))
            self.supervisors[name] = sup
            sup.start()
        beats: dict[str, Callable[[], float]] = {"station loop": lambda: runtime.heartbeat}
        for name, sup in self.supervisors.items():
            beats[f"{name} supervisor"] = _heartbeat_of(sup)
        beats["uplink"] = lambda: uplink.heartbeat
        # The uplink's thread may sit in a TCP/TLS connect (paho: 5 s each) to a far broker.
        self.watchdog = Watchdog(self.notifier, beats, limits={"uplink": UPLINK_STALE_S}, status=self.status_line)
        self.watchdog.start()
        self.ready_s = time.monotonic() - t0
        snap = runtime.snapshot
        tube = snap.get("tube") or {}
        log.info("ready in %.3f s: %d device(s) starting, broker %s, open tube %s", self.ready_s,
                 len(self.supervisors), self.cfg.mqtt.get("url") or "none (offline: records wait in the store)",
                 tube.get("id") or "none")
        self.notifier.ready(self.status_line())

    def _devices(self) -> dict[str, Any]:
        """Configured devices with their settings; a camera with source "none" is not there."""
        devices = {}
        for name in DEVICE_SHELLS:
            if name not in self.cfg.devices:
                continue
            settings = {**self.cfg.devices[name], **self.device_overrides.get(name, {})}
            if name == "camera" and settings.get("source") == "none":
                continue
            devices[name] = settings
        return devices

    def _factory(self, name: str, settings: Any) -> Callable[[Callable[[Event], None]], Any]:
        module_name, class_name = DEVICE_SHELLS[name]

        def build(on_event: Callable[[Event], None]) -> Any:
            cls = getattr(importlib.import_module(module_name), class_name)
            if name == "printer":
                shell = {k: v for k, v in settings.items() if k != "settle_s"}
                timing = {"settle_s": settings["settle_s"]} if "settle_s" in settings else {}
                return cls(shell, on_event, **timing,
                           save_pending=lambda items: self.store.set_meta(PENDING_LABELS, items),
                           save_sending=lambda items: self.store.set_meta(PENDING_LABELS, items, flush=False),
                           load_pending=lambda: list(self.store.get_meta(PENDING_LABELS, []) or []),
                           on_printed=lambda ref, label: log.info("%s label printed for %s", label.kind, ref))
            return cls(settings, on_event)

        return build

    def _printer(self) -> Any:
        sup = self.supervisors.get("printer")
        return sup.device if sup is not None else None

    def _make_station(self) -> Station:
        path = self.cfg.volunteers.get("list_file", "")
        try:
            people = pushed.load_volunteers(self.data_dir, path)
        except (OSError, ValueError) as exc:
            if getattr(exc, "errno", None) in (errno.EMFILE, errno.ENFILE):
                raise  # out of descriptors, not a bad list: the runtime rebuilds later (issue 13, finding 5)
            log.error("volunteer list %s unusable (%s): nobody can sign in until it is fixed or pushed", path, exc)
            people = {}
        return Station(self.cfg, people)

    def _make_uplink(self) -> Uplink:
        return Uplink(self.store, uplink_settings(self.cfg), on_command=self.runtime.post)

    def _make_ui(self) -> UiServer | None:
        if not self.use_ui:
            return None
        host = self.cfg.ui.get("host", "127.0.0.1")
        port = self.ui_port if self.ui_port is not None else int(self.cfg.ui.get("port", 8080))
        ui = UiServer(host, port, self.runtime.post, language=self.cfg.ui.get("language", "zh-CN"),
                      sound=bool(self.cfg.ui.get("sound", True)))
        try:
            ui.start()
        except OSError as exc:  # port taken: the kiosk still works, the screen says nothing
            if not self.any_ui_port:
                log.error("screen server could not listen on %s:%s: %s", host, port, exc)
                return None
            ui.port = 0
            ui.start()
        ui.update(self.runtime.snapshot)
        return ui

    def status_line(self) -> str:
        """systemd's STATUS= line (a technician reads it in `systemctl status`)."""
        snap = self._runtime.snapshot if self._runtime else {}
        down = [n for n, s in self.supervisors.items() if not s.ok and s.reason != "starting"]
        today = snap.get("today") or {}
        try:
            backlog = self.store.stats().get("backlog", 0)
        except Exception:
            backlog = "?"
        return (f"{today.get('people', 0)} people, {today.get('tubes', 0)} tubes today; "
                f"{backlog} records waiting; devices down: {', '.join(down) or 'none'}")

    # ------------------------------------------------------------- stop
    def stop(self) -> None:
        self.notifier.stopping("stopping: finishing the current step")
        log.info("stopping: devices first, then the queued steps, then the uplink")
        for sup in self.supervisors.values():
            if sup.name != "printer":
                sup.stop()
        if self._runtime is not None:
            self._runtime.stop()
        if "printer" in self.supervisors:
            self.supervisors["printer"].stop()  # after the loop: labels of the last steps are queued
        if self.watchdog is not None:
            self.watchdog.stop()
        if self._uplink is not None:  # None only when start() failed early
            try:
                self._uplink.stop()
            except Exception:
                log.warning("uplink stop failed", exc_info=True)
        if self.ui is not None:
            try:
                self.ui.stop()
            except Exception:
                log.warning("screen stop failed", exc_info=True)
        if self._store is not None:
            stats = self.final_stats = self._store.stats()
            log.info("stopped; %s records (%s of them people) wait for the broker, kept in %s",
                     stats.get("backlog", 0) + stats.get("backlog_events", 0), stats.get("backlog", 0), self.data_dir)
            self._store.close()
        self.notifier.close()


def _started(part: _Part | None, name: str) -> _Part:
    if part is None:
        raise RuntimeError(f"the kiosk's {name} is not started (Kiosk.start)")
    return part


def _heartbeat_of(sup: Supervisor) -> Callable[[], float]:
    return lambda: sup.heartbeat


def uplink_settings(cfg: Config) -> UplinkSettings:
    """[station] + [mqtt] of the station file -> UplinkSettings (password read from its file)."""
    mqtt, station = cfg.mqtt, cfg.station
    password = ""
    if mqtt.get("password_file"):
        try:
            with open(mqtt["password_file"], encoding="utf-8") as f:
                password = f.read().strip()
        except OSError as exc:  # the uplink then reports the refused login; records wait
            log.error("cannot read mqtt.password_file %s: %s", mqtt["password_file"], exc.strerror)
    return UplinkSettings(url=mqtt.get("url", ""), device_id=station["device_id"], district=station["district"],
                          site=station["site"], table=station["table"], username=mqtt.get("username", ""),
                          password=password, ca_file=mqtt.get("ca_file", ""), cert_file=mqtt.get("cert_file", ""),
                          key_file=mqtt.get("key_file", ""), keepalive=int(mqtt.get("keepalive", 30)))


def open_store(data_dir: str, archive_days: int = 30) -> Store:
    """Open the store; a damaged database is set aside (never deleted), rebuilt from every readable
    record, and the repair report (kept / lost, where the files went) kept in ``Store.reports()``."""
    try:
        return Store(data_dir, archive_days=archive_days)
    except StoreCorrupt as exc:
        log.error("store damaged (%s): setting the damaged database aside and keeping every readable record", exc)
        for entry in Store.repair(data_dir):
            log.error("repaired: %s records kept, %s lost, damaged files in %s (%s)", entry.get("kept"),
                      entry.get("lost"), entry.get("moved_to"), entry.get("note", ""))
        return Store(data_dir, archive_days=archive_days)


def station_config(path: str, data_dir: str | None = None) -> Config:
    """The provisioned station file, or the district's pushed one while it still applies
    (firmware_app.pushed says which wins). Raises ConfigError for a broken provisioned file."""
    cfg = config.load(path)
    return pushed.effective_config(cfg, path, data_dir or cfg.store.data_dir)[0]


def serve(kiosk: Kiosk, stop: threading.Event | None = None, started: Callable[[Kiosk], None] | None = None) -> int:
    """Start ``kiosk``, wait for SIGTERM/SIGINT (or ``stop``), stop it cleanly; the exit code."""
    stop = stop or threading.Event()
    stop_on_signals(stop)  # before any thread starts and before READY
    try:
        kiosk.start()
    except Exception as exc:
        if isinstance(exc, StoreError):  # a known refusal (card read-only, store locked): plain words
            log.error("could not start: %s", exc)
        else:
            log.exception("could not start: %s", exc)
        kiosk.notifier.stopping(f"failed to start: {exc}")
        return 1
    if started is not None:
        started(kiosk)
    wait_for(stop)
    kiosk.stop()
    return 0
