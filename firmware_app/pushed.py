"""What the district pushes over MQTT, kept where the daemon may write: the data dir.

The hardened unit makes everything read-only but its state directory, and on a
read-only root /etc is in RAM; so a pushed volunteer list and a pushed station file
live in ``<data_dir>/pushed/`` (dir 0700, files 0600), never over the provisioned
files in /etc/swabkiosk.

Which copy wins at start: each pushed copy records the SHA-256 of the provisioned file
it replaces (its *base*). It is used while the provisioned file is byte for byte that
base; once a technician provisions a different file (boot partition, or by hand), the
technician's file wins and the older push is set aside as ``<name>.superseded``.
Re-applying the same file (as provisioning does at every boot on a read-only root)
keeps the push. A pushed copy that no longer passes the checks (e.g. after a software
update) is set aside as ``<name>.invalid`` and the provisioned file is used.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from typing import Any

from firmware_app.atomic import fsync_dir

log = logging.getLogger("swabkiosk.pushed")

DIR = "pushed"
CONFIG = "swabkiosk.toml"
VOLUNTEERS = "volunteers.json"
HEADER = "# swabkiosk: pushed by the district; replaces the provisioned file with sha256 "


def base_of(path: str) -> str:
    """SHA-256 of a provisioned file; "absent" when there is none."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return "absent"


def path(data_dir: str, name: str) -> str:
    return os.path.join(data_dir, DIR, name)


def write(data_dir: str, name: str, text: str) -> str:
    """Atomically replace ``<data_dir>/pushed/<name>`` (0600, durable); the old copy kept as .previous."""
    folder = os.path.join(data_dir, DIR)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    target = os.path.join(folder, name)
    tmp = f"{target}.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if os.path.exists(target):
        os.replace(target, f"{target}.previous")
    os.replace(tmp, target)
    fsync_dir(folder)
    return target


def set_aside(target: str, why: str) -> None:
    try:
        os.replace(target, f"{target}.{why}")
    except OSError as exc:
        log.error("could not set %s aside: %s", target, exc)


# ------------------------------------------------------------- station file
# What only provisioning sets: a push never changes who the kiosk trusts ([authority]), where
# it sends records and with which secrets ([mqtt] but its keepalive), nor any path (a pushed
# password_file pointing at the TLS key would send the key as the MQTT password).
LOCKED_SECTIONS = ("authority", "mqtt")
UNLOCKED = frozenset({"mqtt.keepalive"})
LOCKED_KEYS = frozenset({"ui.host"})  # the screen API on a network address: only a technician
PATH_KEYS = ("_file", "_dir", "_path", "port", "target", "path")


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _locked(key: str, value: Any) -> bool:
    if key in UNLOCKED:
        return False
    if key in LOCKED_KEYS or key.split(".", 1)[0] in LOCKED_SECTIONS or key.rsplit(".", 1)[-1].endswith(PATH_KEYS):
        return True
    return isinstance(value, str) and (value.startswith(("/", "./", "../", "~")) or
                                       value.startswith(("file:", "serial:")))


def locked_changes(running: dict, pushed_cfg: dict) -> list[str]:
    """Dotted keys a pushed station file would change but may not (both with defaults filled)."""
    old, new = _flat(running), _flat(pushed_cfg)
    return sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and (_locked(k, old.get(k)) or _locked(k, new.get(k))))


def save_config(data_dir: str, provisioned: str, text: str) -> str:
    return write(data_dir, CONFIG, f"{HEADER}{base_of(provisioned)}\n{text}")


def config_base(text: str) -> str | None:
    first = text.split("\n", 1)[0]
    return first[len(HEADER):].strip() if first.startswith(HEADER) else None


def effective_config(cfg: Any, provisioned: str, data_dir: str, apply: bool = True) -> tuple[Any, str]:
    """The station file to run with, and where it came from (for the log). With
    ``apply=False`` (doctor) a pushed file that lost is left where it is."""
    from firmware_app import config

    target = path(data_dir, CONFIG)
    try:
        with open(target, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return cfg, provisioned
    except (OSError, UnicodeDecodeError) as exc:
        log.error("pushed station file %s unreadable (%s); using %s", target, exc, provisioned)
        return cfg, provisioned
    if config_base(text) != base_of(provisioned):
        log.warning("%s was provisioned after the district's push: it wins; the pushed file is set aside "
                    "as %s.superseded", provisioned, target)
        if apply:
            set_aside(target, "superseded")
        return cfg, provisioned
    try:
        pushed = config.load(target)
    except config.ConfigError as exc:
        log.error("pushed station file %s no longer valid; using %s. Problems:", target, provisioned)
        for problem in exc.problems:
            log.error("  %s", problem)
        if apply:
            set_aside(target, "invalid")
        return cfg, provisioned
    log.info("using the station file the district pushed (%s) instead of %s", target, provisioned)
    return pushed, target


# ------------------------------------------------------------- volunteer list
def save_volunteers(data_dir: str, provisioned: str, people: Any) -> str:
    from firmware_app import volunteers

    doc = json.loads(volunteers.to_json(people))
    doc["pushed"] = {"base_sha256": base_of(provisioned) if provisioned else "absent"}
    return write(data_dir, VOLUNTEERS, json.dumps(doc, ensure_ascii=False, indent=1))


def _stamp(doc: Any) -> str | None:
    """The base a pushed list was pushed over; None for anything else (``"pushed": []``)."""
    pushed = doc.get("pushed") if isinstance(doc, dict) else None
    stamp = pushed.get("base_sha256") if isinstance(pushed, dict) else None
    return stamp if isinstance(stamp, str) else None


def load_volunteers(data_dir: str, provisioned: str) -> dict:
    """The pushed list while the provisioned one is still its base, else the provisioned list.

    Raises OSError/ValueError for an unusable provisioned list (the caller says so)."""
    from firmware_app import volunteers

    target = path(data_dir, VOLUNTEERS)
    base = base_of(provisioned) if provisioned else "absent"
    try:
        with open(target, "rb") as f:
            doc = volunteers.decode(f.read(volunteers.MAX_FILE + 1), target)
    except FileNotFoundError:
        doc = None
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            raise  # the kiosk is short of descriptors, the list is fine: the caller tries again later
        # the file could not be read (EIO, ...): not proof that the district's list is bad, so it
        # stays where it is for the next start, and the provisioned list serves meanwhile
        log.error("pushed volunteer list %s unreadable (%s); using the provisioned one, the file kept", target, exc)
        doc = None
    except ValueError as exc:  # VolunteerListError: too big, too deep, not JSON
        log.error("pushed volunteer list %s unusable (%s); using the provisioned one", target, exc)
        set_aside(target, "invalid")
        doc = None
    if doc is not None:
        stamp = _stamp(doc)
        if stamp != base:
            log.warning("volunteer list %s was provisioned after the district's push: it wins; the pushed "
                        "list is set aside as %s.superseded", provisioned or "(none)", target)
            set_aside(target, "superseded")
        else:
            try:
                return volunteers.parse(doc)
            except ValueError as exc:
                log.error("pushed volunteer list %s unusable (%s); using the provisioned one", target, exc)
                set_aside(target, "invalid")
    return volunteers.load(provisioned) if provisioned else {}
