"""First-boot provisioning, the checks: the shared config validator's problems, and every
file the station file names matched to a copy on the boot partition (or one already
installed), refused when it is a symbolic link or too large."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from firmware_app.catalogue import en
from firmware_app.config import check_text
from firmware_app.provision_layout import (FILES_DIR, MAX_SUPPLIED_BYTES, OPTIONAL_FILE_KEYS, SECRET_FILE_KEYS,
                                           Paths, problem, problem_text)



def config_problems(text: str) -> list[dict]:
    """Every problem the shared config validator finds (all of them, not the first)."""
    try:
        found = check_text(text)
    except Exception as exc:  # a validator crash must not install an unchecked file
        return [problem("", None, problem_text("provision.validator_failed", error=repr(exc)))]
    return [problem(getattr(p, "key", ""), getattr(p, "line", None), getattr(p, "message", str(p))) for p in found]


def file_keys(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, path) for every ``*_file`` string setting, at any depth."""
    found = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            found += file_keys(value, dotted + ".")
        elif key.endswith("_file") and isinstance(value, str) and value:
            found.append((dotted, value))
    return found


def line_of(text: str, dotted: str) -> int | None:
    """Line of ``leaf = ...`` inside the key's table; good enough to point a technician."""
    table, _, leaf = dotted.rpartition(".")
    in_table = table == ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("["):
            in_table = line.strip("[] ") == table
        elif in_table and line.split("=", 1)[0].strip() == leaf:
            return number
    return None


@dataclass
class Supplied:
    target: Path  # where the daemon will read it
    source: Path | None  # on the boot partition; None = keep the installed one
    secret: bool


def referenced_files(text: str, data: dict, paths: Paths) -> tuple[list[Supplied], list[dict], list[str]]:
    """Match each file the station file names to a supplied or installed copy."""
    supplied, problems, warnings = [], [], []
    etc = Path("/etc/swabkiosk")
    for dotted, value in file_keys(data):
        target = Path(value)
        secret = dotted.rpartition(".")[2] in SECRET_FILE_KEYS
        line = line_of(text, dotted)
        if not target.is_absolute():
            problems.append(problem(dotted, line, problem_text("provision.not_absolute", value=value)))
            continue
        if target.parent != etc:
            # A system file such as the public CA bundle: used where it is, never copied.
            if secret:
                problems.append(problem(dotted, line, problem_text("provision.secret_outside", etc=etc)))
            elif not target.exists():
                problems.append(problem(dotted, line, problem_text("provision.file_not_found", value=value)))
            continue
        source = paths.boot / FILES_DIR / target.name
        refused = unsafe_source(source, MAX_SUPPLIED_BYTES) or unsafe_source(paths.boot / FILES_DIR, None)
        if refused:
            problems.append(problem(dotted, line, refused))
            continue
        if source.is_file():
            supplied.append(Supplied(paths.etc / target.name, source, secret))
        elif (paths.etc / target.name).is_file():
            supplied.append(Supplied(paths.etc / target.name, None, secret))
        elif dotted in OPTIONAL_FILE_KEYS:
            warnings.append(problem_text("provision.no_volunteer_list", key=dotted, name=target.name))
        else:
            problems.append(problem(dotted, line, problem_text("provision.missing_file", name=target.name,
                                                               folder=FILES_DIR)))
    # Two settings naming one file get one copy, private if either calls it a secret.
    by_name: dict[str, Supplied] = {}
    for item in supplied:
        if item.target.name in by_name:
            by_name[item.target.name].secret |= item.secret
        else:
            by_name[item.target.name] = item
    return list(by_name.values()), problems, warnings


def unsafe_source(path: Path, limit: int | None) -> str:
    """Why a file on the boot partition may not be used ("" when it may, or is absent)."""
    try:
        st = os.lstat(path)
    except OSError:
        return ""
    if stat.S_ISLNK(st.st_mode):
        return problem_text("provision.symlink", name=path.name)
    if limit is not None and st.st_size > limit:
        return problem_text("provision.too_large", kb=limit // 1024, name=path.name)
    return ""


def read_source(path: Path, limit: int) -> bytes:
    """A file on the boot partition, never through a symbolic link, at most ``limit`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(27, en("provision.too_large", kb=limit // 1024, name=path.name), str(path))  # EFBIG
    return data
