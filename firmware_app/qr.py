"""Signed QR payloads (format SWB1, see docs/qr-payload.md): personal sampling codes and
operator certificates, Ed25519-signed by an issuing authority.

    SWB1:<base64url(body)>.<base64url(signature)>

body is a compact UTF-8 JSON array whose first two items are the kind ("p" personal,
"o" operator) and the signing key's id; the signature covers the ASCII text
``SWB1:<base64url(body)>`` (so the version prefix is signed too).

``verify`` is pure (``now`` passed in). ``cli`` mints keys and codes for tests, demos
and training.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_app import idnumber
from firmware_app.catalogue import both, en, zh
from firmware_app.qr_errors import (KeyTextError, QrBadIdNumber, QrError, QrExpired, QrForged,  # noqa: F401 (callers
                                    QrMalformed, QrNotYetValid, QrOversized, QrUnknownKey)  # use qr.QrError ...)
from firmware_app import phone as phone_numbers
from firmware_app.model import mask_id, mask_name

PREFIX = "SWB1:"
MAX_TEXT = 1000  # characters; a real code is ~200-300. Longer text is refused unparsed.
SIG_B64_LEN = 86  # 64-byte Ed25519 signature, base64url without padding
CLOCK_SKEW_S = 300  # a code issued up to 5 minutes "in the future" is accepted
# Whatever the clock: a code issued more than a day ahead of the kiosk's clock is refused, also
# while the clock is not synchronised (issue 13, finding 9: "issued" 10 years ahead, it never
# aged out and escaped max_code_age). A kiosk whose clock is more than a day behind (no RTC,
# fake-hwclock restores the last shutdown's time) refuses fresh codes until NTP syncs: the
# screen says "issued in the future", the doctor shows the clock.
MAX_FUTURE_S = 86400
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
_B64URL = re.compile(r"[A-Za-z0-9_-]+")

Colour = Literal["green", "yellow", "red"]
IdType = Literal["resident_id", "passport"]
COLOURS: tuple[Colour, ...] = ("green", "yellow", "red")  # index in the body
ID_TYPES: tuple[IdType, ...] = ("resident_id", "passport")  # index in the body


# --------------------------------------------------------------------------
# Results and errors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonalCode:
    name: str
    id_type: IdType
    id_number: str
    phone: str
    colour: Colour
    key_person: bool
    issued_at: int
    expires_at: int
    key_id: str = field(default="", compare=False)

    def __repr__(self) -> str:  # keep full numbers out of logs
        return f"PersonalCode(name={mask_name(self.name)!r}, id_number={mask_id(self.id_number)!r}, colour={self.colour!r})"


@dataclass(frozen=True)
class OperatorCert:
    cert_id: str
    name: str
    issued_at: int
    expires_at: int
    key_id: str = field(default="", compare=False)


# --------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """6 characters naming a key, carried in every code so several keys can be configured."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64e(hashlib.sha256(raw).digest())[:6]


def public_key_from_base64(text: str) -> Ed25519PublicKey:
    """Raise ValueError unless text is standard or url-safe base64 of 32 raw key bytes."""
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyTextError(*both("qr.key_not_base64")) from None
    if len(raw) != 32:
        raise KeyTextError(*both("qr.key_length", size=len(raw)))
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_base64(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Keys:
    """Trusted authority keys by key id: one set for personal codes, one for operator certs."""

    personal: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)
    operator: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    @classmethod
    def from_base64(cls, personal: list[str], operator: list[str]) -> Keys:
        def ring(items: list[str]) -> dict[str, Ed25519PublicKey]:
            keys = [public_key_from_base64(k) for k in items]
            return {key_id(k): k for k in keys}

        return cls(ring(personal), ring(operator))


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64e(data) != text:  # stray low bits in the last character: one code, one text
        raise binascii.Error("non-canonical base64")
    return data


def _sign(body: list, private_key: Ed25519PrivateKey) -> str:
    signed = PREFIX + _b64e(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    return signed + "." + _b64e(private_key.sign(signed.encode("ascii")))


def issue_personal(
    private_key: Ed25519PrivateKey,
    *,
    name: str,
    id_number: str,
    id_type: str = "resident_id",
    phone: str = "",
    colour: str = "green",
    key_person: bool = False,
    issued_at: int,
    expires_at: int,
) -> str:
    kid = key_id(private_key.public_key())
    body = ["p", kid, int(issued_at), _ttl(issued_at, expires_at), name, ID_TYPES.index(id_type), id_number, phone]
    body += [COLOURS.index(colour), int(key_person)]
    return _sign(body, private_key)


def issue_operator(private_key: Ed25519PrivateKey, *, cert_id: str, name: str, issued_at: int, expires_at: int) -> str:
    kid = key_id(private_key.public_key())
    return _sign(["o", kid, int(issued_at), _ttl(issued_at, expires_at), cert_id, name], private_key)


def _ttl(issued_at: int, expires_at: int) -> int:
    """Validity in whole minutes (shorter than a second absolute time: QR capacity)."""
    if expires_at <= issued_at:
        raise ValueError("a code must expire after it is issued")
    return -(-(int(expires_at) - int(issued_at)) // 60)


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------


def _malformed(what: str) -> QrMalformed:
    return QrMalformed(*both("qr.malformed"), raw=what)


def verify(
    text: str,
    keys: Keys,
    now: float,
    *,
    max_age_s: float | None = None,
    check_not_before: bool = True,
) -> PersonalCode | OperatorCert:
    """Check an SWB1 code completely or raise a QrError subclass saying why.

    max_age_s: personal codes issued longer ago than this are refused even if not expired.
    check_not_before=False skips the "issued in the future" check (an unsynchronised
    clock may be days behind; expiry is still checked).
    """
    if len(text) > MAX_TEXT:
        raise QrOversized(*both("qr.oversized", max=MAX_TEXT), raw=f"{len(text)} characters")
    if not text.startswith(PREFIX):
        raise _malformed("not SWB1")
    signed, dot, sig_b64 = text.rpartition(".")
    if not dot:
        raise _malformed("no signature: truncated")
    if len(sig_b64) != SIG_B64_LEN:
        raise _malformed("signature length: truncated")
    if not _B64URL.fullmatch(sig_b64) or not _B64URL.fullmatch(signed[len(PREFIX) :]):
        raise _malformed("not base64url")
    try:
        signature = _b64d(sig_b64)
        body_bytes = _b64d(signed[len(PREFIX) :])
        body = json.loads(body_bytes.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise _malformed("undecodable") from None
    if not isinstance(body, list) or len(body) < 4 or body[0] not in ("p", "o") or not isinstance(body[1], str):
        raise _malformed("unknown layout")
    kind, kid = body[0], body[1]
    ring = keys.personal if kind == "p" else keys.operator
    public_key = ring.get(kid)
    if public_key is None:
        what = both("qr.kind_personal" if kind == "p" else "qr.kind_operator")
        raise QrUnknownKey(zh("qr.unknown_key", what=what[0]), en("qr.unknown_key", what=what[1]), raw=f"key id {kid}")
    try:
        public_key.verify(signature, signed.encode("ascii"))
    except InvalidSignature:
        raise QrForged(*both("qr.forged")) from None
    # From here on the content was written by a trusted authority; still check its shape.
    result: PersonalCode | OperatorCert
    try:
        if kind == "p":
            result = _personal(body)
        else:
            result = _operator(body)
    except (TypeError, ValueError, KeyError, IndexError):
        raise _malformed("bad fields") from None
    if now > result.expires_at:
        raise QrExpired(*both("qr.expired"))
    if result.issued_at > now + MAX_FUTURE_S or check_not_before and result.issued_at > now + CLOCK_SKEW_S:
        raise QrNotYetValid(*both("qr.not_yet_valid"))
    if isinstance(result, PersonalCode):
        if max_age_s is not None and now - result.issued_at > max_age_s:
            raise QrExpired(*both("qr.too_old"))
        if result.id_type == "resident_id":
            today = dt.datetime.fromtimestamp(now, CHINA_TZ).date()
            try:
                number = idnumber.validate(result.id_number, today)
            except idnumber.IdNumberError as exc:
                raise QrBadIdNumber(zh("qr.bad_id_number", reason=exc.reason),
                                    en("qr.bad_id_number", reason=exc.reason_en)) from None
            result = PersonalCode(**{**result.__dict__, "id_number": number})
    return result


def _uint(value: object) -> bool:
    """A JSON integer >= 0. JSON true/false decode to bool, a subclass of int: not integers here."""
    return type(value) is int and value >= 0


def _personal(body: list) -> PersonalCode:
    _, kid, iat, ttl, name, type_code, number, phone, colour_code, key_person = body
    if not all(_uint(v) for v in (iat, ttl, type_code, colour_code, key_person)) or key_person > 1:
        raise TypeError("times")
    if not all(isinstance(v, str) for v in (name, number, phone)) or not name.strip():
        raise TypeError("text")
    if ID_TYPES[type_code] == "passport" and not (number.isascii() and number.isalnum() and 5 <= len(number) <= 20):
        raise ValueError("passport number")
    if not phone_numbers.valid(phone):  # even a real authority's key must not carry text here
        raise ValueError("phone")
    return PersonalCode(
        name.strip(), ID_TYPES[type_code], number.upper(), phone, COLOURS[colour_code], bool(key_person), iat, iat + 60 * ttl, kid
    )


def _operator(body: list) -> OperatorCert:
    _, kid, iat, ttl, cert_id, name = body
    if not all(_uint(v) for v in (iat, ttl)) or not all(isinstance(v, str) and v for v in (cert_id, name)):
        raise TypeError("fields")
    return OperatorCert(cert_id, name, iat, iat + 60 * ttl, kid)


# --------------------------------------------------------------------------
# CLI: swabkiosk qr keygen | pubkey | issue
# --------------------------------------------------------------------------


def load_private_key(path: str) -> Ed25519PrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyTextError(*both("qr.key_not_private", path=path))
    return key


def _keygen(args: argparse.Namespace) -> int:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(en("qr.cli_key_exists", path=args.out), file=sys.stderr)
        return 1
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    print(public_key_base64(key.public_key()))
    print("# " + en("qr.cli_key_written", key_id=key_id(key.public_key()), path=args.out), file=sys.stderr)
    return 0


def _pubkey(args: argparse.Namespace) -> int:
    print(public_key_base64(load_private_key(args.key).public_key()))
    return 0


def _issue(args: argparse.Namespace) -> int:
    key = load_private_key(args.key)
    issued_at = int(args.issued_at if args.issued_at is not None else time.time())
    if args.operator:
        if not (args.cert_id and args.name):
            print(en("qr.cli_operator_needs"), file=sys.stderr)
            return 2
        expires_at = int(args.expires_at or issued_at + args.valid_hours * 3600)
        text = issue_operator(key, cert_id=args.cert_id, name=args.name, issued_at=issued_at, expires_at=expires_at)
    else:
        if not (args.name and args.id_number):
            print(en("qr.cli_person_needs"), file=sys.stderr)
            return 2
        if args.id_type == "resident_id":
            try:
                args.id_number = idnumber.validate(args.id_number, dt.datetime.fromtimestamp(issued_at, CHINA_TZ).date())
            except idnumber.IdNumberError as exc:
                print(en("qr.cli_failed", action="issue", problem=exc.reason_en), file=sys.stderr)
                return 1
        expires_at = int(args.expires_at or issued_at + args.valid_hours * 3600)
        text = issue_personal(
            key,
            name=args.name,
            id_type=args.id_type,
            id_number=args.id_number,
            phone=args.phone,
            colour=args.colour,
            key_person=args.key_person,
            issued_at=issued_at,
            expires_at=expires_at,
        )
    print(text)
    if args.png:
        import qrcode  # only needed for --png

        qrcode.make(text, error_correction=qrcode.constants.ERROR_CORRECT_M).save(args.png)
    return 0


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="swabkiosk qr", description="Mint signed SWB1 codes for tests, demos and training.")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("keygen", help="new Ed25519 authority key: private key file (0600), public key printed")
    p.add_argument("--out", required=True, help="private key file to create (never overwritten)")
    p.set_defaults(run=_keygen)
    p = sub.add_parser("pubkey", help="print the base64 public key of a private key file")
    p.add_argument("--key", required=True)
    p.set_defaults(run=_pubkey)
    p = sub.add_parser("issue", help="print a signed code (and write a PNG with --png)")
    p.add_argument("--key", required=True, help="authority private key file (from qr keygen)")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--person", action="store_true", help="personal sampling code")
    kind.add_argument("--operator", action="store_true", help="operator (volunteer) certificate")
    p.add_argument("--name")
    p.add_argument("--id-number")
    p.add_argument("--id-type", choices=ID_TYPES, default="resident_id")
    p.add_argument("--phone", default="")
    p.add_argument("--colour", choices=COLOURS, default="green")
    p.add_argument("--key-person", action="store_true", help="key person (always sampled single)")
    p.add_argument("--cert-id")
    p.add_argument("--issued-at", type=int, help="unix seconds (default: now)")
    p.add_argument("--expires-at", type=int, help="unix seconds (default: issued + --valid-hours)")
    p.add_argument("--valid-hours", type=float, default=72.0)
    p.add_argument("--png", help="also write the code as a QR image")
    p.set_defaults(run=_issue)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError) as exc:
        print(en("qr.cli_failed", action=args.action, problem=str(exc)), file=sys.stderr)
        return 1
