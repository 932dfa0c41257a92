"""`swabkiosk run`: the program systemd runs at the sampling table.

The kiosk itself is put together in one place, firmware_app.compose (``Kiosk``): the store,
the station rebuilt from it (the open tube and the sequence continue across a restart), the
station loop, the uplink, the screen and every configured device under a supervisor. This
module is the command line around it: it reads the station file (or the district's pushed
one, firmware_app.pushed), installs the signal handlers before anything starts
(firmware_app.signals), and serves the kiosk until SIGTERM. ``--simulate`` hands over to
firmware_app.simulate, which builds the same kiosk on simulated devices.

A station file with problems is refused with every problem listed (exit 78, EX_CONFIG);
when the screen is available it shows them until the technician fixes the file, so the
volunteer at the table sees why the kiosk is not working.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from firmware_app import config, logsetup
from firmware_app.catalogue import both, en
from firmware_app.compose import (DEFAULT_DEVICE_STALE_S, DEVICE_SHELLS, DEVICE_STALE_S, UPLINK_STALE_S, Kiosk,
                                  open_store, serve, station_config, uplink_settings, version)
from firmware_app.sdnotify import Notifier, Watchdog
from firmware_app.signals import stop_on_signals, wait_for
from firmware_app.ui import UiServer

__all__ = ["DEFAULT_DEVICE_STALE_S", "DEVICE_SHELLS", "DEVICE_STALE_S", "EX_CONFIG", "UPLINK_STALE_S", "Kiosk",
           "main", "open_store", "parse_args", "refuse", "serve", "station_config", "stop_on_signals",
           "uplink_settings", "version", "wait_for"]

EX_CONFIG = 78


def refuse(problems: list[config.Problem], path: str, ui_port: int | None, stop: threading.Event | None = None) -> int:
    """List every problem; show them on the screen (if there is one) until stopped."""
    print(en("cli.run_refused", path=path, count=len(problems)), file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    if ui_port is None:
        return EX_CONFIG
    if stop is None:
        stop = threading.Event()
        stop_on_signals(stop)
    ui = UiServer("127.0.0.1", ui_port, lambda command: None)
    message, message_en = both("daemon.config_refused", count=len(problems))
    # the problems are on the page before it is served (a page loaded at once found none)
    ui.update({"level": "error", "problems": [{"key": p.key, "line": p.line, "message": p.message_zh or p.message,
                                               "message_en": p.message} for p in problems],
               "message": message, "message_en": message_en})
    try:
        ui.start()
    except OSError:
        return EX_CONFIG
    notifier = Notifier()
    notifier.ready(en("daemon.config_refused_status", count=len(problems), path=path))
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
    return config.ui_port_of(path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="swabkiosk run", description=en("cli.run_description"))
    ap.add_argument("--config", help=en("cli.run.config"))
    ap.add_argument("--data-dir", help=en("cli.run.data_dir"))
    ap.add_argument("--ui-port", type=int, help=en("cli.run.ui_port"))
    ap.add_argument("--simulate", action="store_true", help=en("cli.run.simulate"))
    ap.add_argument("--broker", default="", help=en("cli.run.broker"))
    ap.add_argument("--pace", type=float, default=3.0, help=en("cli.run.pace"))
    ap.add_argument("--people", type=int, default=0, help=en("cli.run.people"))
    ap.add_argument("-v", "--verbose", action="store_true", help=en("cli.run.verbose"))
    return ap.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logsetup.setup()
    if args.simulate:  # it makes its own stop event; serve() installs the handlers before READY
        # Here, not at the top: the kiosk on a Pi never loads the simulator (simulate, simulate_days).
        from firmware_app import simulate

        return simulate.run_watchable(args)
    stop = threading.Event()
    stop_on_signals(stop)  # as early as possible: a SIGTERM while starting still stops cleanly
    if not args.config:
        print(en("cli.run_needs_config"), file=sys.stderr)
        return 2
    try:
        cfg = station_config(args.config, args.data_dir)
    except config.ConfigError as exc:
        return refuse(exc.problems, args.config, args.ui_port or _ui_port_of(args.config), stop)
    kiosk = Kiosk(cfg, data_dir=args.data_dir, ui_port=args.ui_port, config_path=os.path.abspath(args.config),
                  restart=stop.set)
    return serve(kiosk, stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
