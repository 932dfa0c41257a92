"""What `swabkiosk status`, `tube`, `export` and `doctor` share: the store they open (read-only),
how a failure and a time are printed, the broker state the daemon's uplink recorded, and the
tube chain a replacement links (store_cli.py, export_cli.py, doctor.py). Texts:
firmware_app/catalogue/store.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from typing import Any

from firmware_app.catalogue import both
from firmware_app.store import Store, StoreError
from firmware_app.textsafe import strip_controls

DEFAULT_DATA_DIR = "/var/lib/swabkiosk"


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"swabkiosk {prog}", description=description)
    p.add_argument("--data-dir", help=f"store directory (default: [store] data_dir of --config, else {DEFAULT_DATA_DIR})")
    p.add_argument("--config", help="station file to take [store] data_dir from")
    return p


def station_text(args, section: str, key: str, default: str) -> str:
    """One text of the station file ``--config`` names, for the commands beside the daemon
    ([store] data_dir, [station] site_name); ``default`` when there is no --config or it does
    not set the key. A file that cannot be read, or a value that is not text, stops the
    command with what is wrong (and how to check the file)."""
    if not args.config:
        return default
    try:
        with open(args.config, "rb") as f:
            table = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(lines("store.config_unreadable", path=args.config, problem=str(exc))) from None
    part = table.get(section, {})
    value = part.get(key, default) if isinstance(part, dict) else None
    if not isinstance(value, str):
        problem = f"{key} in [{section}] is not text" if isinstance(part, dict) else f"{section} is not a table"
        raise SystemExit(lines("store.config_unreadable", path=args.config, problem=problem))
    return value


def data_dir(args) -> str:
    return args.data_dir or station_text(args, "store", "data_dir", DEFAULT_DATA_DIR)


def open_store(args) -> Store:
    return Store(data_dir(args), read_only=True)


def lines(key: str, **values: Any) -> str:
    """A message for a technician's terminal: the zh-CN line, then the English one."""
    return "\n".join(both(key, **values))


def label(key: str) -> str:
    """A bilingual label of the status table: "zh en"."""
    return " ".join(both(key))


def fail(exc: StoreError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": exc.message_en, "error_zh": exc.message, "file": exc.path, "raw": exc.raw},
                         ensure_ascii=False))
    else:
        print(f"{exc.message}\n{exc.message_en}" + (f"\n({exc.raw})" if exc.raw else ""), file=sys.stderr)
    return 1


def when(ts: float | str | None) -> str:
    """Unix seconds, or a record's ISO local time shown as the kiosk wrote it."""
    if not ts:
        return "—"
    if isinstance(ts, str):
        return ts[:19].replace("T", " ")
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


# ---------------------------------------------------------------- the uplink's state


def pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except PermissionError:  # alive, another user's (the daemon runs as swabkiosk)
        return True
    except (OSError, TypeError, ValueError, OverflowError):
        return False
    return True


def broker_state(store: Store) -> dict[str, Any]:
    """What the uplink last recorded (meta ``uplink``), checked against whether its process still
    lives: connected, since, the words (error, error_en) and the raw reason for the technician
    (error_raw). A dead daemon's words are replaced, and its raw reason with them."""
    up = store.get_meta("uplink") or {}
    running = pid_alive(up.get("pid"))
    state = {
        "connected": bool(up.get("connected")) and running,
        "url": up.get("url", ""),
        "since": up.get("since"),
        "error": up.get("error", ""),
        "error_en": up.get("error_en", ""),
        "error_raw": strip_controls(str(up.get("error_raw") or "")),  # a broker's text: no escapes reach a terminal
        "daemon_running": running,
    }
    if not up:
        state.update(zip(("error", "error_en"), both("store.never_connected")))
    elif not running:
        state.update(zip(("error", "error_en"), both("store.daemon_not_running")))
    if not up or not running:
        state["error_raw"] = ""
    return state


# ---------------------------------------------------------------- the tube chain


def void_target(rec: dict) -> str | None:
    for key in ("voided_record_id", "voids", "void_of"):
        if isinstance(rec.get(key), str):
            return rec[key]
    return None


def replacement(rec: dict) -> tuple[str | None, str | None]:
    """(broken tube, new tube) of a tube_replace record (docs/records.md: tube_id is the new one)."""
    if "old_tube_id" in rec:
        return rec.get("old_tube_id"), rec.get("tube_id")
    return rec.get("tube_id"), rec.get("new_tube_id")


def tube_chain(store: Store, tube_id: str) -> list[dict]:
    """The records of a tube and of the tubes a replacement chain links it to (by the tube index)."""
    found: dict[str, dict] = {}
    todo, seen = [tube_id], set[str]()
    while todo:
        t = todo.pop()
        if t in seen or len(seen) > 50:
            continue
        seen.add(t)
        for rec in store.tube_records(t):
            found[rec["record_id"]] = rec
            if rec.get("kind") == "tube_replace":
                todo += [x for x in replacement(rec) if isinstance(x, str)]
    return sorted(found.values(), key=lambda r: r.get("seq", 0))
