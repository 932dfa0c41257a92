"""`swabkiosk` command line: a thin dispatcher.

Each subcommand lives in its own module as ``main(argv) -> int`` and is
imported only when used, so `swabkiosk --help` and `config check` stay fast
on a Pi and never pay for the camera or printer libraries.
"""

from __future__ import annotations

import importlib
import sys

from firmware_app import __version__
from firmware_app.catalogue import en

# name -> module:function; its one-line help is the catalogue's "cli.help.<name>" (catalogue/daemon.py)
COMMANDS: dict[str, str] = {
    "run": "firmware_app.daemon:main",
    "simulate": "firmware_app.simulate:main",
    "doctor": "firmware_app.doctor:main",
    "probe": "drivers.probe:main",
    "status": "firmware_app.store_cli:status",
    "tube": "firmware_app.store_cli:tube",
    "export": "firmware_app.store_cli:export",
    "config": "firmware_app.config:cli",
    "provision": "firmware_app.provision:main",
    "qr": "firmware_app.qr:cli",
    "district-sign": "firmware_app.signedpush:cli",
    # the district's receiver: its own package, imported only here (the kiosk never loads it)
    "district": "district.cli:main",
}


def help_of(name: str) -> str:
    return en("cli.help." + name.replace("-", "_"))


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [en("cli.usage"), "", en("cli.commands")]
    lines += [f"  {name:<{width}}  {help_of(name)}" for name in COMMANDS]
    lines += ["", en("cli.more_help")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"swabkiosk {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(en("cli.unknown_command", name=repr(name)) + "\n\n" + usage(), file=sys.stderr)
        return 2
    target = COMMANDS[name]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, func_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        print(en("cli.not_built", name=name), file=sys.stderr)
        return 3
    except AttributeError:
        print(en("cli.not_built", name=name), file=sys.stderr)
        return 3
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
