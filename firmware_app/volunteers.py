"""The certified-volunteer list: who may operate a sampling table, until when.

File format (JSON, also the payload of the district's cmd/push_volunteers):

    {"volunteers": [{"cert_id": "DG-V-0001", "name": "李志愿", "expires": "2027-06-30",
                     "revoked": false}, ...]}

``expires`` is the last valid day (local date, inclusive). Pure parsing and checks;
``load``/``save`` are the only file access.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Volunteer:
    cert_id: str
    name: str
    expires: dt.date
    revoked: bool = False


class VolunteerListError(ValueError):
    """The list itself is unusable (nothing of it is taken)."""


class NotCertified(Exception):
    """This operator may not sign in; reason (zh) / reason_en for the screen."""

    def __init__(self, reason: str, reason_en: str):
        super().__init__(reason_en)
        self.reason = reason
        self.reason_en = reason_en


Volunteers = Mapping[str, Volunteer]  # by cert_id


def parse(data: Any) -> dict[str, Volunteer]:
    """Check a decoded list completely; raise VolunteerListError naming every bad entry."""
    if not isinstance(data, dict) or not isinstance(data.get("volunteers"), list):
        raise VolunteerListError('volunteer list must be an object {"volunteers": [...]}')
    result: dict[str, Volunteer] = {}
    problems = []
    for i, entry in enumerate(data["volunteers"]):
        try:
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            cert_id, name, revoked = entry.get("cert_id"), entry.get("name"), entry.get("revoked", False)
            if not isinstance(cert_id, str) or not cert_id.strip():
                raise ValueError("cert_id missing")
            if not isinstance(name, str) or not name.strip():
                raise ValueError("name missing")
            if not isinstance(revoked, bool):
                raise ValueError("revoked must be true or false")
            expires = dt.date.fromisoformat(str(entry.get("expires")))
            if cert_id in result:
                raise ValueError(f"cert_id {cert_id} listed twice")
            result[cert_id] = Volunteer(cert_id, name.strip(), expires, revoked)
        except ValueError as exc:
            problems.append(f"volunteers[{i}]: {exc}")
    if problems:
        raise VolunteerListError("; ".join(problems))
    return result


def to_json(volunteers: Volunteers) -> str:
    entries = [
        {"cert_id": v.cert_id, "name": v.name, "expires": v.expires.isoformat(), "revoked": v.revoked}
        for v in volunteers.values()
    ]
    return json.dumps({"volunteers": entries}, ensure_ascii=False, indent=1)


def check(volunteers: Volunteers, cert_id: str, today: dt.date) -> Volunteer:
    """The volunteer for a certificate id, or NotCertified saying why not."""
    volunteer = volunteers.get(cert_id)
    if volunteer is None:
        raise NotCertified(f"证书{cert_id}不在持证志愿者名单中，不能上岗", f"certificate {cert_id} is not on the certified list")
    if volunteer.revoked:
        raise NotCertified(f"证书{cert_id}已被撤销，不能上岗", f"certificate {cert_id} has been revoked")
    if today > volunteer.expires:
        raise NotCertified(
            f"证书{cert_id}已于{volunteer.expires}过期，请重新培训认证",
            f"certificate {cert_id} expired on {volunteer.expires}; retraining needed",
        )
    return volunteer


def load(path: str) -> dict[str, Volunteer]:
    """Read a list file; a missing file is an empty list (nobody can sign in, and the screen says so)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    try:
        return parse(json.loads(text))
    except json.JSONDecodeError as exc:
        raise VolunteerListError(f"{path}: not JSON ({exc})") from None


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
