"""Signed district pushes: the envelope a station file or volunteer list travels in.

A broker login alone must not be able to reconfigure a table (issue 13, finding 1), so the
district signs what it pushes with its own Ed25519 key, installed at provisioning as
``[authority] district_keys`` (distinct from the broker credentials and from the
sampling/operator keys). The envelope is one ASCII string::

    SWBPUSH1.<base64url(JSON header)>.<base64url(Ed25519 signature)>

signed over everything before the last dot. The header (JSON object)::

    {"kind": "config" | "volunteers", "kid": "<key id>",
     "to": {"device_id": "..."}  or  {"district": "...", "site": "..."},
     "version": <int, must be greater than the last one this kiosk accepted of this kind>,
     "issued_at": <unix s>, "expires_at": <unix s>,
     "body": <the station file's text | the volunteer list: [..] or {"volunteers": [..]}>}

Pure: no I/O. The daemon keeps the last accepted version per kind in the store's meta
(``push.version.<kind>``) and applies what ``verify`` returns. ``swabkiosk district-sign``
makes an envelope (and the MQTT payload to publish). See docs/security.md.
"""

from __future__ import annotations

import argparse
import binascii
import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_app import catalogue, qr
from firmware_app.catalogue import both, en

PREFIX = "SWBPUSH1."
KINDS = ("config", "volunteers")
MAX_TEXT = 200 * 1024  # characters of an envelope (the uplink caps a command at 256 KB)
MAX_VALIDITY_S = 30 * 86400  # a push may be valid for 30 days at most
FUTURE_SKEW_S = 86400  # issued up to a day "ahead" of the kiosk's clock (no RTC on a Pi)
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
META_VERSION = "push.version."  # + kind: the last version accepted


class PushRefused(ValueError):
    """A push that does not count; ``reason`` is a short code, str() the English text,
    ``message`` the zh-CN (catalogue key ``key``: config.push_*)."""

    def __init__(self, reason: str, key: str, /, **values: Any) -> None:
        # a caller still passing English text instead of a key (daemon.py's plain_mqtt) keeps working
        self.message, self.message_en = both(key, **values) if key in catalogue.keys() else (key, key)
        super().__init__(self.message_en)
        self.reason = reason


@dataclass(frozen=True)
class Push:
    kind: str
    kid: str
    to: dict
    version: int
    issued_at: int
    expires_at: int
    body: Any


def district_keys(items: list[str]) -> dict[str, Ed25519PublicKey]:
    keys = [qr.public_key_from_base64(k) for k in items]
    return {qr.key_id(k): k for k in keys}


def sign(private_key: Ed25519PrivateKey, kind: str, body: Any, *, version: int, issued_at: int, expires_at: int,
         device_id: str = "", district: str = "", site: str = "") -> str:
    if kind not in KINDS:
        raise ValueError(en("config.sign_kind", kinds=", ".join(KINDS)))
    if bool(device_id) == bool(district and site):
        raise ValueError(en("config.sign_target"))
    to = {"device_id": device_id} if device_id else {"district": district, "site": site}
    header = {"kind": kind, "kid": qr.key_id(private_key.public_key()), "to": to, "version": int(version),
              "issued_at": int(issued_at), "expires_at": int(expires_at), "body": body}
    signed = PREFIX + qr._b64e(json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode())
    return signed + "." + qr._b64e(private_key.sign(signed.encode("ascii")))


def _int(value: Any) -> bool:
    return type(value) is int and value >= 0


def verify(text: Any, keys: Mapping[str, Ed25519PublicKey], *, kind: str, device_id: str, district: str, site: str,
           now: float, last_version: int) -> Push:
    """The push ``text`` carries, or PushRefused saying why it does not count."""
    if not keys:
        raise PushRefused("no_district_key", "config.push_off")
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise PushRefused("unsigned", "config.push_unsigned")
    if len(text) > MAX_TEXT:
        raise PushRefused("oversized", "config.push_oversized", most=MAX_TEXT)
    signed, dot, sig = text.rpartition(".")
    payload = signed[len(PREFIX):]
    if not dot or not _B64URL.fullmatch(sig) or not _B64URL.fullmatch(payload):
        raise PushRefused("malformed", "config.push_not_base64")
    try:
        signature = qr._b64d(sig)
        header = json.loads(qr._b64d(payload).decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError):
        raise PushRefused("malformed", "config.push_undecodable") from None
    if not isinstance(header, dict) or not isinstance(header.get("kid"), str):
        raise PushRefused("malformed", "config.push_no_kid")
    key = keys.get(header["kid"])
    if key is None:
        raise PushRefused("unknown_key", "config.push_unknown_key", kid=repr(header["kid"][:12]))
    try:
        key.verify(signature, signed.encode("ascii"))
    except InvalidSignature:
        raise PushRefused("forged", "config.push_forged") from None
    to, version, iat, exp = header.get("to"), header.get("version"), header.get("issued_at"), header.get("expires_at")
    if (header.get("kind") not in KINDS or not isinstance(to, dict) or not isinstance(version, int)
            or not isinstance(iat, int) or not isinstance(exp, int) or not all(_int(v) for v in (version, iat, exp))
            or "body" not in header):
        raise PushRefused("malformed", "config.push_incomplete")
    if header["kind"] != kind:
        raise PushRefused("wrong_kind", "config.push_wrong_kind", signed=header["kind"], sent=kind)
    if "device_id" in to:
        if to != {"device_id": device_id}:
            raise PushRefused("other_station", "config.push_other_station", to=repr(str(to.get("device_id"))[:64]),
                              here=repr(device_id))
    elif to != {"district": district, "site": site}:
        raise PushRefused("other_station", "config.push_other_site",
                          to=f"{str(to.get('district'))[:64]}/{str(to.get('site'))[:64]}", here=f"{district}/{site}")
    if version <= last_version:
        raise PushRefused("replay", "config.push_replay", version=version, last=last_version)
    if exp <= iat or exp - iat > MAX_VALIDITY_S:
        raise PushRefused("malformed", "config.push_validity", days=MAX_VALIDITY_S // 86400)
    if now > exp:
        raise PushRefused("expired", "config.push_expired")
    if iat > now + FUTURE_SKEW_S:
        raise PushRefused("not_yet_valid", "config.push_not_yet_valid")
    return Push(header["kind"], header["kid"], to, version, iat, exp, header["body"])


# --------------------------------------------------------------------------
# CLI: swabkiosk district-sign
# --------------------------------------------------------------------------


def cli(argv: list[str]) -> int:
    def words(key: str, **values: Any) -> str:  # zh-CN / English on one line
        return " / ".join(both(key, **values))

    ap = argparse.ArgumentParser(prog="swabkiosk district-sign", description=words("config.sign_description"))
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("file", help=words("config.sign_help_file"))
    ap.add_argument("--key", required=True, help=words("config.sign_help_key"))
    ap.add_argument("--device-id", default="", help=words("config.sign_help_device"))
    ap.add_argument("--district", default="")
    ap.add_argument("--site", default="", help=words("config.sign_help_site"))
    ap.add_argument("--version", type=int, default=None, help=words("config.sign_help_version"))
    ap.add_argument("--valid-hours", type=float, default=24.0)
    ap.add_argument("--txn", default="", help=words("config.sign_help_txn"))
    ap.add_argument("--envelope-only", action="store_true", help=words("config.sign_help_envelope"))
    args = ap.parse_args(argv)
    try:
        key = qr.load_private_key(args.key)
        with open(args.file, encoding="utf-8") as f:
            text = f.read()
        body: Any = text if args.kind == "config" else json.loads(text)
        now = int(time.time())
        envelope = sign(key, args.kind, body, version=args.version if args.version is not None else now,
                        issued_at=now, expires_at=now + int(args.valid_hours * 3600), device_id=args.device_id,
                        district=args.district, site=args.site)
    except (OSError, ValueError) as exc:
        print(words("config.sign_failed", reason=exc), file=sys.stderr)
        return 1
    if args.envelope_only:
        print(envelope)
        return 0
    print(json.dumps({"txn": args.txn or f"push-{now}", "args": command_args(args.kind, envelope)}))
    return 0


def command_args(kind: str, envelope: str) -> dict:
    """The cmd/push_* args carrying an envelope, in the argument shapes the uplink accepts today:
    ``config`` is the envelope string; ``volunteers`` is a one-element list holding it."""
    return {"config": envelope} if kind == "config" else {"volunteers": [envelope]}
