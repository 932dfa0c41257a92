"""Where first-boot provisioning finds and puts things: the boot partition's files, /etc,
the errors files, the limits; and the small types every provisioning module shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_app.catalogue import both

STATION_FILE = "swabkiosk.toml"
FILES_DIR = "swabkiosk"  # beside the station file: the files it names, by base name
SERVICE_USER = "swabkiosk"
ERRORS_FILE = "provision-errors.json"
ERRORS_PAGE = "provision-errors.html"
DROPIN = "50-network.conf"
DEFAULT_UI_PORT = 8080

# Keys naming files that are secrets: readable by the service user only (0600).
SECRET_FILE_KEYS = {"password_file", "key_file"}
# What provisioning copies from the FAT partition, at most (a volunteer list of ~40,000 people is
# 4 MB: firmware_app.volunteers.MAX_FILE; a key, certificate or password is a few KB). Bigger
# files, and symbolic links (FAT has none; a link on a prepared card points somewhere else), are refused.
MAX_SUPPLIED_BYTES = 4 * 1024 * 1024
MAX_STATION_BYTES = 256 * 1024  # firmware_app.config.MAX_TEXT
# Files the daemon can do without at first: the district pushes the volunteer list over MQTT.
OPTIONAL_FILE_KEYS = {"volunteers.list_file"}


@dataclass
class Paths:
    boot: Path = Path("/boot/firmware")
    etc: Path = Path("/etc/swabkiosk")
    run: Path = Path("/run/swabkiosk")
    screen: Path = Path("/run/swabkiosk-screen")
    dropin_dir: Path = Path("/etc/systemd/system/swabkiosk.service.d")


@dataclass
class Owner:
    uid: int
    gid: int


@dataclass
class Outcome:
    installed: bool
    problems: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def problem(key: str, line: int | None, message: str) -> dict:
    return {"key": key, "line": line, "message": message}


def problem_text(key: str, /, **values: Any) -> str:
    """A catalogue text as provisioning shows it: "zh / en" in one line (journal, page, screen)."""
    return " / ".join(both(key, **values))
