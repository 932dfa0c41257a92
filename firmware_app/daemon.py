"""`swabkiosk run`: the program systemd runs at the sampling table.

It opens the store, rebuilds the station from it (the open tube and the sequence
continue across a restart), starts the station loop, the uplink, the screen and
then every configured device under a supervisor, and tells systemd READY.
Devices start in their own threads, so READY does not wait for a slow USB
device. SIGTERM: devices stop first (no new people), the loop finishes what was
already read, the uplink says offline, then STOPPING; nothing stored is lost.

What the district pushes (volunteer list, station file) is kept in the data dir, as /etc
is read-only for the service (``firmware_app.pushed`` decides which copy wins at start).

A station file with problems is refused with every problem listed (exit 78,
EX_CONFIG); when the screen is available it shows them until the technician
fixes the file, so the volunteer at the table sees why the kiosk is not working.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import select
import signal
import sys
import threading
import time
from typing import Any, Callable

from firmware_app import logsetup
from firmware_app.model import Event
from firmware_app.sdnotify import Notifier, Watchdog
from firmware_app.supervisor import Supervisor

log = logging.getLogger("swabkiosk.daemon")

EX_CONFIG = 78
# Device shells by config section: (module, class). Imported in the supervisor's thread.
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
    from firmware_app import __version__

    return __version__


class Kiosk:
    """Everything `run` starts, in one process; `simulate` builds the same thing."""

    def __init__(self, cfg: Any, *, data_dir: str | None = None, ui_port: int | None = None,
                 notifier: Notifier | None = None, use_ui: bool = True,
                 device_overrides: dict[str, dict] | None = None, any_ui_port: bool = False,
                 config_path: str | None = None, restart: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path  # where a pushed station file is written (None: refused)
        self.restart = restart or (lambda: None)
        # Settings the station file cannot hold, e.g. the simulator's camera replaying one live frame.
        self.device_overrides = device_overrides or {}
        self.any_ui_port = any_ui_port  # the simulator takes a free port when its own is busy
        self.data_dir = data_dir or cfg.store.data_dir
        self.ui_port = ui_port
        self.use_ui = use_ui
        self.notifier = notifier or Notifier()
        self.store: Any = None
        self.runtime: Any = None
        self.uplink: Any = None
        self.ui: Any = None
        self.supervisors: dict[str, Supervisor] = {}
        self.watchdog: Watchdog | None = None
        self.final_stats: dict[str, Any] = {}
        self.ready_s: float | None = None

    # ------------------------------------------------------------- start
    def start(self) -> None:
        t0 = time.monotonic()
        from firmware_app.runtime import Runtime, Speaker

        self.store = open_store(self.data_dir, int(self.cfg.store.get("archive_days", 30)))
        self.runtime = Runtime(self.store, self._make_station, uplink=None,
                               get_printer=self._printer if "printer" in self._devices() else None,
                               speaker=Speaker(bool(self.cfg.ui.get("sound", True))), version=version(),
                               unsent_minutes=(int(self.cfg.ui.get("unsent_warn_minutes", 15)),
                                               int(self.cfg.ui.get("unsent_alarm_minutes", 60))))
        self.runtime.shell_commands["push_config"] = self._push_config
        self.runtime.shell_commands["push_volunteers"] = self._push_volunteers
        self.runtime.observers.append(self._after_step)
        self.uplink = self.runtime.uplink = self._make_uplink()
        self.runtime.start()
        self.uplink.start()
        self.ui = self.runtime.ui = self._make_ui()
        # Devices last: their threads import the camera and printer libraries, which would
        # otherwise compete with the main thread on its way to READY.
        for name, settings in self._devices().items():
            sup = Supervisor(name, self._factory(name, settings), self.runtime.post,
                             stale_after=DEVICE_STALE_S.get(name, DEFAULT_DEVICE_STALE_S))
            self.supervisors[name] = sup
            sup.start()
        beats: dict[str, Callable[[], float]] = {"station loop": lambda: self.runtime.heartbeat}
        for name, sup in self.supervisors.items():
            beats[f"{name} supervisor"] = lambda sup=sup: sup.heartbeat
        beats["uplink"] = lambda: self.uplink.heartbeat
        # The uplink's thread may sit in a TCP/TLS connect (paho: 5 s each) to a far broker.
        self.watchdog = Watchdog(self.notifier, beats, limits={"uplink": UPLINK_STALE_S}, status=self.status_line)
        self.watchdog.start()
        self.ready_s = time.monotonic() - t0
        snap = self.runtime.snapshot
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
                from firmware_app.runtime import PENDING_LABELS

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

    def _make_station(self) -> Any:
        from firmware_app import pushed, station

        path = self.cfg.volunteers.get("list_file", "")
        try:
            people = pushed.load_volunteers(self.data_dir, path)
        except (OSError, ValueError) as exc:
            if getattr(exc, "errno", None) in (errno.EMFILE, errno.ENFILE):
                raise  # out of descriptors, not a bad list: the runtime rebuilds later (issue 13, finding 5)
            log.error("volunteer list %s unusable (%s): nobody can sign in until it is fixed or pushed", path, exc)
            people = {}
        return station.Station(self.cfg, people)

    def _signed_push(self, command: Any, kind: str, envelope: Any) -> Any:
        """The verified push (firmware_app.signedpush.Push) or a refusal (PushRefused): signed by
        a district key, for this station or site, newer than the last accepted, not expired,
        over mqtts:// (plain mqtt:// only where the station file says it is a test setup)."""
        from firmware_app import signedpush

        url = str(self.cfg.mqtt.get("url", ""))
        if not url.startswith("mqtts://") and self.cfg.authority.get("plain_mqtt_pushes") != "test setup only":
            raise signedpush.PushRefused("plain_mqtt", "pushes are accepted over mqtts:// only; this kiosk's broker "
                                                       "link is not TLS")
        station = self.cfg.station
        last = self.store.get_meta(signedpush.META_VERSION + kind, 0)
        return signedpush.verify(envelope, self.cfg.district_keys, kind=kind, device_id=station["device_id"],
                                 district=station["district"], site=station["site"], now=time.time(),
                                 last_version=int(last or 0))

    def _push_refused(self, command: Any, what_zh: str, what_en: str, why: list[str], reason: str = "") -> list:
        from firmware_app.model import CommandResult, Show

        log.warning("%s refused (%s): %s", command.name, reason or "invalid", "; ".join(why))
        return [Show("error", f"{what_zh}被拒绝，仍用原{what_zh[2:]}", f"{what_en} refused; the old one stays"),
                CommandResult(command.name, command.txn, False, "; ".join(why),
                              {"problems": why, **({"reason": reason} if reason else {})})]

    def _push_config(self, command: Any) -> list:
        """cmd/push_config: a new station file from the district, in a signed envelope.

        The envelope is checked first (``_signed_push``); the file inside is checked like any
        input, and may not change what only provisioning sets (``pushed.locked_changes``:
        [authority], the broker, credentials, CA, certificates, every path). A good file is saved
        in the data dir (pushed/swabkiosk.toml, the last push kept as .previous; /etc is
        read-only for the service), its version kept in the store's meta, and the kiosk restarts
        cleanly to apply it; anything else is refused with every problem and the running file stays."""
        from firmware_app import config, pushed, signedpush
        from firmware_app.model import CommandResult, Show

        what = ("远程配置", "pushed station file")
        if not self.config_path:
            return self._push_refused(command, *what, ["this kiosk was not started from a station file"])
        try:
            push = self._signed_push(command, "config", command.args.get("config"))
        except signedpush.PushRefused as exc:
            return self._push_refused(command, *what, [str(exc)], exc.reason)
        text = push.body
        problems = [str(p) for p in config.check_text(text)] if isinstance(text, str) else \
            ["the signed body must be the station file's text"]
        if not problems:
            locked = pushed.locked_changes(self.cfg.to_dict(), config.parse_text(text).to_dict())
            if locked:
                problems.append("不能远程更改 / cannot be changed remotely (provision them on the boot partition): "
                                + ", ".join(locked))
        if problems:
            return self._push_refused(command, *what, problems, "invalid" if not locked_in(problems) else "locked")
        try:
            saved = pushed.save_config(self.data_dir, self.config_path, text)
            self.store.set_meta(signedpush.META_VERSION + "config", push.version)
        except Exception as exc:  # OSError, a store refusal: the running file stays
            log.error("pushed station file not saved: %s", exc)
            return [Show("error", "远程配置未能保存，仍用原配置", "pushed station file not saved; the old one stays"),
                    CommandResult(command.name, command.txn, False, f"not saved: {exc}")]
        log.warning("signed station file version %d pushed over MQTT and saved to %s; restarting to apply it",
                    push.version, saved)
        self.restart()
        return [Show("info", "已收到新配置，正在重启", "new station file received; restarting"),
                CommandResult(command.name, command.txn, True, "saved; the kiosk restarts to apply it",
                              {"version": push.version})]

    def _push_volunteers(self, command: Any) -> list:
        """cmd/push_volunteers: the certified list in a signed envelope (``volunteers`` is a
        one-element list holding it); the verified list goes to the station as before."""
        from firmware_app import signedpush
        from firmware_app.model import Command, CommandResult

        what = ("志愿者名单", "pushed volunteer list")
        raw = command.args.get("volunteers")
        envelope = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
        try:
            push = self._signed_push(command, "volunteers", envelope)
        except signedpush.PushRefused as exc:
            return self._push_refused(command, *what, [str(exc)], exc.reason)
        inner = Command("push_volunteers", {"volunteers": push.body}, "mqtt", command.txn)
        effects = self.runtime._handle(inner)
        if not any(isinstance(e, CommandResult) and not e.ok for e in effects):
            try:
                self.store.set_meta(signedpush.META_VERSION + "volunteers", push.version)
            except Exception as exc:  # applied; only a replay of this very version could be taken again
                log.error("version of the pushed volunteer list not kept: %s", exc)
        return effects

    def _after_step(self, event: Any, effects: list) -> None:
        """Keep what the station accepted from a volunteer-list push across restarts."""
        from firmware_app.model import Command, CommandResult

        if not (isinstance(event, Command) and event.name == "push_volunteers"):
            return
        if any(isinstance(e, CommandResult) and not e.ok for e in effects):
            return
        from firmware_app import pushed

        try:
            saved = pushed.save_volunteers(self.data_dir, self.cfg.volunteers.get("list_file", ""),
                                           self.runtime.station.volunteers)
        except (OSError, ValueError) as exc:
            log.error("pushed volunteer list applied but not saved (it lasts until the next restart): %s", exc)
        else:
            log.info("pushed volunteer list saved to %s", saved)

    def _make_uplink(self) -> Any:
        from firmware_app.uplink import Uplink

        return Uplink(self.store, uplink_settings(self.cfg), on_command=self.runtime.post)

    def _make_ui(self) -> Any:
        if not self.use_ui:
            return None
        try:
            from firmware_app.ui import UiServer
        except ImportError:
            log.info("screen not available in this build; running without it")
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
        snap = self.runtime.snapshot if self.runtime else {}
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
        if self.runtime is not None:
            self.runtime.stop()
        if "printer" in self.supervisors:
            self.supervisors["printer"].stop()  # after the loop: labels of the last steps are queued
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.uplink is not None:  # None only when start() failed early
            try:
                self.uplink.stop()
            except Exception:
                log.warning("uplink stop failed", exc_info=True)
        if self.ui is not None:
            try:
                self.ui.stop()
            except Exception:
                log.warning("screen stop failed", exc_info=True)
        if self.store is not None:
            stats = self.final_stats = self.store.stats()
            log.info("stopped; %s records (%s of them people) wait for the broker, kept in %s",
                     stats.get("backlog", 0) + stats.get("backlog_events", 0), stats.get("backlog", 0), self.data_dir)
            self.store.close()
        self.notifier.close()


def locked_in(problems: list[str]) -> bool:
    return any("cannot be changed remotely" in p for p in problems)


def uplink_settings(cfg: Any) -> Any:
    """[station] + [mqtt] of the station file -> UplinkSettings (password read from its file)."""
    from firmware_app.uplink import UplinkSettings

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


def open_store(data_dir: str, archive_days: int = 30) -> Any:
    """Open the store; a damaged database is set aside (never deleted), rebuilt from every readable
    record, and the repair report (kept / lost, where the files went) kept in ``Store.reports()``."""
    from firmware_app.store import Store, StoreCorrupt

    try:
        return Store(data_dir, archive_days=archive_days)
    except StoreCorrupt as exc:
        log.error("store damaged (%s): setting the damaged database aside and keeping every readable record", exc)
        for entry in Store.repair(data_dir):
            log.error("repaired: %s records kept, %s lost, damaged files in %s (%s)", entry.get("kept"),
                      entry.get("lost"), entry.get("moved_to"), entry.get("note", ""))
        return Store(data_dir, archive_days=archive_days)


# The read end of the pipe Python's C-level signal handler writes each signal's number to
# (signal.set_wakeup_fd); wait_for reads it. One pipe per process, made on first use.
_signal_pipe: int | None = None


def _record_signal(_signum, _frame) -> None:
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


def refuse(problems: list, path: str, ui_port: int | None, stop: threading.Event | None = None) -> int:
    """List every problem; show them on the screen (if there is one) until stopped."""
    print(f"swabkiosk run: {path}: {len(problems)} problem(s); not starting. Fix them and restart "
          f"(check with: swabkiosk config check {path})", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    try:
        from firmware_app.ui import UiServer
    except ImportError:
        return EX_CONFIG
    if ui_port is None:
        return EX_CONFIG
    if stop is None:
        stop = threading.Event()
        stop_on_signals(stop)
    ui = UiServer("127.0.0.1", ui_port, lambda command: None)
    try:
        ui.start()
    except OSError:
        return EX_CONFIG
    ui.update({"level": "error", "problems": [{"key": p.key, "line": p.line, "message": p.message}
                                              for p in problems],
               "message": f"配置文件有误（{len(problems)}处），请联系技术人员",
               "message_en": f"Station file has {len(problems)} problem(s); call the technician"})
    notifier = Notifier()
    notifier.ready(f"config error: {len(problems)} problem(s) in {path}")
    watchdog = Watchdog(notifier, {})  # nothing runs that could hang: keep systemd from restarting us
    watchdog.start()
    wait_for(stop)
    watchdog.stop()
    notifier.stopping()
    ui.stop()
    return EX_CONFIG


def _ui_port_of(path: str) -> int | None:
    """The screen port of a station file that failed its checks, if it can be read at all
    (``ui = 5`` or 2,000 nested brackets included: firmware_app.config.ui_port_of)."""
    from firmware_app import config

    return config.ui_port_of(path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="swabkiosk run", description="Run the kiosk daemon.")
    ap.add_argument("--config", help="station file (TOML), e.g. /etc/swabkiosk/swabkiosk.toml")
    ap.add_argument("--data-dir", help="where records are kept (default: [store] data_dir; "
                                       "with --simulate ./var/sim)")
    ap.add_argument("--ui-port", type=int, help="screen port (default: [ui] port)")
    ap.add_argument("--simulate", action="store_true",
                    help="every device on hw_mocks and simulated people arriving: watch it work")
    ap.add_argument("--broker", default="", help="with --simulate: publish to this broker (mqtt://HOST:PORT)")
    ap.add_argument("--pace", type=float, default=3.0, help="with --simulate: seconds between people")
    ap.add_argument("--people", type=int, default=0, help="with --simulate: stop after this many (0: keep going)")
    ap.add_argument("-v", "--verbose", action="store_true", help="with --simulate: the daemon's log too")
    return ap.parse_args(argv)


def station_config(path: str, data_dir: str | None = None) -> Any:
    """The provisioned station file, or the district's pushed one while it still applies
    (firmware_app.pushed says which wins). Raises ConfigError for a broken provisioned file."""
    from firmware_app import config, pushed

    cfg = config.load(path)
    return pushed.effective_config(cfg, path, data_dir or cfg.store.data_dir)[0]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logsetup.setup()
    if args.simulate:  # it makes its own stop event; serve() installs the handlers before READY
        from firmware_app.simulate import run_watchable

        return run_watchable(args)
    stop = threading.Event()
    stop_on_signals(stop)  # as early as possible: a SIGTERM while starting still stops cleanly
    if not args.config:
        print("swabkiosk run: --config FILE is required (or --simulate)", file=sys.stderr)
        return 2
    from firmware_app import config

    try:
        cfg = station_config(args.config, args.data_dir)
    except config.ConfigError as exc:
        return refuse(exc.problems, args.config, args.ui_port or _ui_port_of(args.config), stop)
    kiosk = Kiosk(cfg, data_dir=args.data_dir, ui_port=args.ui_port, config_path=os.path.abspath(args.config),
                  restart=stop.set)
    return serve(kiosk, stop)


def serve(kiosk: Kiosk, stop: threading.Event | None = None, started: Callable[[Kiosk], None] | None = None) -> int:
    stop = stop or threading.Event()
    stop_on_signals(stop)  # before any thread starts and before READY
    try:
        kiosk.start()
    except Exception as exc:
        from firmware_app.store_schema import StoreError

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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
