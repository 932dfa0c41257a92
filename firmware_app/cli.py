"""`swabkiosk` command line: a thin dispatcher.

Each subcommand lives in its own module as ``main(argv) -> int`` and is
imported only when used, so `swabkiosk --help` and `config check` stay fast
on a Pi and never pay for the camera or printer libraries.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module:function, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("firmware_app.daemon:main", "run the kiosk daemon (systemd starts this)"),
    "simulate": ("firmware_app.simulate:main", "a whole table session headless on simulated devices"),
    "doctor": ("firmware_app.doctor:main", "self-test for technicians: devices, broker, disk, clock, config"),
    "probe": ("drivers.probe:main", "one real read/print on one device (idcard, scanner, printer, camera)"),
    "status": ("firmware_app.store_cli:status", "backlog, last acknowledgement, broker state"),
    "tube": ("firmware_app.store_cli:tube", "who was in a tube (masked)"),
    "export": ("firmware_app.store_cli:export", "a day, tube or box as CSV, Excel (--xlsx) or the paper register (--register, A4 PDF)"),
    "config": ("firmware_app.config:cli", "config check FILE: validate a station file"),
    "provision": ("firmware_app.provision:main", "install the station file from the boot partition (first boot)"),
    "qr": ("firmware_app.qr:cli", "qr issue / qr keygen: mint signed codes for tests and training"),
    "district-sign": ("firmware_app.signedpush:cli", "sign a station file or volunteer list for cmd/push_* (district key)"),
    # the district's receiver: its own package, imported only here (the kiosk never loads it)
    "district": ("district.cli:main", "district receiver: run / status / tube (records exactly once, gaps resent)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: swabkiosk COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `swabkiosk COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from firmware_app import __version__

        print(f"swabkiosk {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"swabkiosk: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, func_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(f"swabkiosk {name}: not built yet", file=sys.stderr)
        return 3
    except AttributeError:
        print(f"swabkiosk {name}: not built yet", file=sys.stderr)
        return 3
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
