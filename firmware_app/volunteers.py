"""The certified-volunteer list: who may operate a sampling table, until when.

File format (JSON, also the payload of the district's cmd/push_volunteers):

    {"volunteers": [{"cert_id": "DG-V-0001", "name": "Li Zhiyuan", "expires": "2027-06-30",
                     "revoked": false}, ...]}

``expires`` is the last valid day (local date, inclusive), written YYYY-MM-DD; ``cert_id``
is letters, digits and ``- _ . /`` (at most 64); ``name`` one line. The file is at most
4 MB and nested at most 8 deep (checked before it is parsed). Pure parsing and checks;
``load``/``save`` are the only file access.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from firmware_app.catalogue import both, en, zh


@dataclass(frozen=True)
class Volunteer:
    cert_id: str
    name: str
    expires: dt.date
    revoked: bool = False


class VolunteerListError(ValueError):
    """The list itself is unusable (nothing of it is taken); ``reason`` (zh) / ``reason_en``
    say why, entry by entry; ``str()`` is the English."""

    def __init__(self, reason: str, reason_en: str):
        super().__init__(reason_en)
        self.reason = reason
        self.reason_en = reason_en


class _Bad(ValueError):
    """One entry's problem, in both languages (collected into a VolunteerListError)."""

    def __init__(self, key: str, **values: Any):
        self.words = both(key, **values)
        super().__init__(self.words[1])


class NotCertified(Exception):
    """This operator may not sign in; reason (zh) / reason_en for the screen."""

    def __init__(self, reason: str, reason_en: str):
        super().__init__(reason_en)
        self.reason = reason
        self.reason_en = reason_en


Volunteers = Mapping[str, Volunteer]  # by cert_id

MAX_FILE = 4 * 1024 * 1024  # bytes; ~100 bytes a volunteer
MAX_ENTRIES = 20_000
MAX_DEPTH = 8  # {"volunteers": [{...}], "pushed": {...}} is 3 deep
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII only; fromisoformat also takes 20270630, 2027-W26-3
_CERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,63}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _text(value: Any, what: str, max_len: int = 64) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("volunteers.missing", what=what)
    if len(value) > max_len or _CONTROL.search(value):
        raise _Bad("volunteers.not_one_line", what=what, max=max_len)
    return value.strip()


def parse(data: Any) -> dict[str, Volunteer]:
    """Check a decoded list completely; raise VolunteerListError naming every bad entry."""
    if not isinstance(data, dict) or not isinstance(data.get("volunteers"), list):
        raise VolunteerListError(*both("volunteers.not_a_list"))
    if len(data["volunteers"]) > MAX_ENTRIES:
        raise VolunteerListError(*both("volunteers.too_many", entries=len(data["volunteers"]), max=MAX_ENTRIES))
    result: dict[str, Volunteer] = {}
    problems: list[tuple[str, str]] = []
    for i, entry in enumerate(data["volunteers"]):
        try:
            if not isinstance(entry, dict):
                raise _Bad("volunteers.entry_not_object")
            cert_id = _text(entry.get("cert_id"), "cert_id")
            if not _CERT_ID.fullmatch(cert_id):
                raise _Bad("volunteers.cert_id_chars")
            name = _text(entry.get("name"), "name")
            revoked = entry.get("revoked", False)
            if not isinstance(revoked, bool):
                raise _Bad("volunteers.revoked_bool")
            expires = entry.get("expires")
            if not isinstance(expires, str) or not _DATE.fullmatch(expires):
                raise _Bad("volunteers.expires_date")
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                raise _Bad("volunteers.expires_no_such_day", value=expires) from None
            if cert_id in result:
                raise _Bad("volunteers.listed_twice", cert_id=cert_id)
            result[cert_id] = Volunteer(cert_id, name, expires, revoked)
        except ValueError as exc:  # _Bad, or anything else an entry's check raised
            words = exc.words if isinstance(exc, _Bad) else (str(exc), str(exc))
            problems.append((zh("volunteers.entry", i=i, problem=words[0]), en("volunteers.entry", i=i, problem=words[1])))
    if problems:
        raise VolunteerListError(zh("volunteers.separator").join(p[0] for p in problems),
                                 en("volunteers.separator").join(p[1] for p in problems))
    return result


def to_json(volunteers: Volunteers) -> str:
    import json

    entries = [
        {"cert_id": v.cert_id, "name": v.name, "expires": v.expires.isoformat(), "revoked": v.revoked}
        for v in volunteers.values()
    ]
    return json.dumps({"volunteers": entries}, ensure_ascii=False, indent=1)


def check(volunteers: Volunteers, cert_id: str, today: dt.date) -> Volunteer:
    """The volunteer for a certificate id, or NotCertified saying why not."""
    volunteer = volunteers.get(cert_id)
    if volunteer is None:
        raise NotCertified(*both("volunteers.not_listed", cert_id=cert_id))
    if volunteer.revoked:
        raise NotCertified(*both("volunteers.revoked", cert_id=cert_id))
    if today > volunteer.expires:
        raise NotCertified(*both("volunteers.expired", cert_id=cert_id, expires=volunteer.expires))
    return volunteer


def load(path: str) -> dict[str, Volunteer]:
    """Read a list file; a missing file is an empty list (nobody can sign in, and the screen says so)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return {}
    return parse(decode(raw, path))


def decode(raw: str | bytes, where: str = "volunteer list") -> Any:
    """A list file's JSON, bounded (size, nesting, no NaN) before it is parsed; else VolunteerListError."""
    from firmware_app import boundedjson

    try:
        return boundedjson.loads(raw, max_bytes=MAX_FILE, max_depth=MAX_DEPTH)
    except boundedjson.JsonRefused as exc:
        raise VolunteerListError(*both("volunteers.unreadable", where=where, problem=str(exc))) from None


def save(path: str, volunteers: Volunteers) -> None:
    """Replace the list file atomically (a pushed list survives a restart), mode 0600."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(to_json(volunteers))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
