"""First boot: install the station file a technician put on the SD card's boot partition.

The technician copies ``swabkiosk.toml`` (and, beside it, a ``swabkiosk/`` folder with
the files it names: MQTT password, TLS key and certificates, volunteer list) onto the
FAT boot partition. At boot ``swabkiosk-firstboot.service`` runs
``python -m firmware_app.provision``, which:

1. validates the file with ``firmware_app.config.check_text`` plus checks of its own
   (every file the station file names must be supplied or already installed);
2. on any problem installs nothing, keeps the working config, lists every problem on
   stderr (the journal) and in ``/run/swabkiosk/provision-errors.json`` for the
   kiosk screen, and a standalone page ``/run/swabkiosk-screen/provision-errors.html``
   the browser shows while the daemon cannot run;
3. otherwise stages the new ``/etc/swabkiosk`` in a sibling directory (config 0640
   root:swabkiosk, secrets 0600 owned by the service user), swaps it in with one
   atomic rename, writes the network drop-in for the daemon's IP allow list, and
   removes the station file and its folder from the FAT partition (anyone with a card
   reader can read FAT; only the service may read secrets).

On a read-only root (raspi-config overlay file system) /etc lives in RAM: the file is
applied for this boot but left on the boot partition, and a warning says so.

What the district pushes later lives in the daemon's data dir, never here; a file
installed by this step that differs from the one a push replaced wins over that push
(the daemon compares checksums at start: ``firmware_app.pushed``).
"""

from __future__ import annotations

import argparse
import os  # noqa: F401 - tests reach os.unlink through this module (tests/test_provision.py)
import pwd
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from firmware_app.catalogue import en
from firmware_app.provision_checks import (Supplied, config_problems, file_keys, line_of, read_source,
                                           referenced_files, unsafe_source)
from firmware_app.provision_install import (exchange, remove_from_boot, shred, stage, swap_in, volatile,
                                            write_atomic, write_file)
from firmware_app.provision_layout import (DEFAULT_UI_PORT, DROPIN, ERRORS_FILE, ERRORS_PAGE, FILES_DIR,
                                           MAX_STATION_BYTES, MAX_SUPPLIED_BYTES, OPTIONAL_FILE_KEYS,
                                           SECRET_FILE_KEYS, SERVICE_USER, STATION_FILE, Outcome, Owner, Paths,
                                           problem, problem_text)
from firmware_app.provision_network import (allowed_networks, current_kiosk_url, kiosk_url, network_dropin,
                                            network_problems, remote_hosts, screen_dropin, screen_dropin_text)
from firmware_app.provision_report import render_page, report

__all__ = ["DEFAULT_UI_PORT", "DROPIN", "ERRORS_FILE", "ERRORS_PAGE", "FILES_DIR", "MAX_STATION_BYTES",
           "MAX_SUPPLIED_BYTES", "OPTIONAL_FILE_KEYS", "SECRET_FILE_KEYS", "SERVICE_USER", "STATION_FILE", "Outcome",
           "Owner", "Paths", "Supplied", "allowed_networks", "config_problems", "current_kiosk_url", "exchange",
           "file_keys", "kiosk_url", "line_of", "main", "network_dropin", "network_problems", "problem", "provision",
           "read_source", "referenced_files", "remote_hosts", "remove_from_boot", "render_page", "report",
           "screen_dropin", "screen_dropin_text", "shred", "stage", "swap_in", "unsafe_source", "volatile",
           "write_atomic", "write_file"]


def provision(paths: Paths, owner: Owner, reload_systemd: bool = False, read_only_root: bool | None = None) -> Outcome:
    station = paths.boot / STATION_FILE
    kept_previous = (paths.etc / STATION_FILE).is_file()
    if not station.is_file() and not station.is_symlink():
        return Outcome(installed=False)
    refused = unsafe_source(station, MAX_STATION_BYTES)
    if refused:
        outcome = Outcome(False, [problem("", None, refused)])
        report(paths, owner, outcome, kept_previous)
        return outcome
    try:
        text = read_source(station, MAX_STATION_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        outcome = Outcome(False, [problem("", None, problem_text("provision.not_utf8", error=exc))])
        report(paths, owner, outcome, kept_previous)
        return outcome
    problems = config_problems(text)
    supplied: list[Supplied] = []
    warnings: list[str] = []
    data: dict = {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if not problems:  # the validator reports syntax errors itself; never lose one
            problems.append(problem("", None, problem_text("provision.toml_syntax", error=exc)))
    else:
        supplied, file_problems, warnings = referenced_files(text, data, paths)
        problems += file_problems
        problems += [problem("mqtt.allow_networks", line_of(text, "mqtt.allow_networks"), p)
                     for p in network_problems(data)]
    if problems:
        outcome = Outcome(False, problems)
        report(paths, owner, outcome, kept_previous)
        return outcome

    try:
        swap_in(paths, stage(paths, owner, text, supplied))
    except OSError as exc:  # disk full, read-only /etc…: the old config is untouched
        for leftover in paths.etc.parent.glob(f".{paths.etc.name}.new-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        outcome = Outcome(False, [problem("", None, problem_text("provision.cannot_write", path=paths.etc, error=exc))])
        report(paths, owner, outcome, kept_previous)
        return outcome
    changed = False
    for dropin, content in [(paths.dropin_dir / DROPIN, network_dropin(data)), (screen_dropin(paths), screen_dropin_text(data))]:
        if not dropin.is_file() or dropin.read_text() != content:
            write_atomic(dropin, content, 0o644)
            changed = True
    if changed and reload_systemd:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
    outcome = Outcome(True, warnings=warnings)
    if read_only_root is None:
        read_only_root = volatile(paths.etc)
    if read_only_root:
        outcome.warnings.append(problem_text("provision.read_only_root"))
    else:
        try:
            remove_from_boot(paths)
        except OSError as exc:  # e.g. boot partition made read-only (raspi-config enable_bootro)
            outcome.warnings.append(problem_text("provision.not_removed", error=exc.strerror))
    report(paths, owner, outcome, kept_previous)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swabkiosk provision", description=en("provision.description"))
    parser.add_argument("--boot", type=Path, default=Paths.boot, help=en("provision.arg.boot"))
    parser.add_argument("--etc", type=Path, default=Paths.etc, help=en("provision.arg.etc"))
    parser.add_argument("--run", type=Path, default=Paths.run, help=en("provision.arg.run"))
    parser.add_argument("--screen", type=Path, default=Paths.screen, help=en("provision.arg.screen"))
    parser.add_argument("--dropin-dir", type=Path, default=Paths.dropin_dir, help=en("provision.arg.dropin_dir"))
    parser.add_argument("--user", default=SERVICE_USER, help=en("provision.arg.user"))
    parser.add_argument("--uid", type=int, help=en("provision.arg.uid"))
    parser.add_argument("--gid", type=int, help=en("provision.arg.gid"))
    parser.add_argument("--no-reload", action="store_true", help=en("provision.arg.no_reload"))
    args = parser.parse_args(argv)
    if args.uid is not None and args.gid is not None:
        owner = Owner(args.uid, args.gid)
    else:
        entry = pwd.getpwnam(args.user)
        owner = Owner(entry.pw_uid, entry.pw_gid)
    paths = Paths(args.boot, args.etc, args.run, args.screen, args.dropin_dir)
    outcome = provision(paths, owner, reload_systemd=not args.no_reload)
    return 0 if outcome.installed or not outcome.problems else 1


if __name__ == "__main__":
    sys.exit(main())
