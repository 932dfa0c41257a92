"""Fixed authority keys and code makers shared by the QR, config and station tests.

The seeds are public test values: these keys sign nothing real.
"""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_app import qr

SAMPLING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OPERATOR_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
STRANGER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))

SAMPLING_PUB = qr.public_key_base64(SAMPLING_KEY.public_key())
OPERATOR_PUB = qr.public_key_base64(OPERATOR_KEY.public_key())
KEYS = qr.Keys.from_base64([SAMPLING_PUB], [OPERATOR_PUB])

T0 = 1795000000  # 2026-11-18 ~ 16:26 China time
DAY = 86400


def person_code(
    name="张三",
    id_number="11010519491231002X",
    colour="green",
    key_person=False,
    id_type="resident_id",
    phone="13812345678",
    issued_at=T0,
    valid=3 * DAY,
    key=SAMPLING_KEY,
) -> str:
    return qr.issue_personal(
        key,
        name=name,
        id_number=id_number,
        id_type=id_type,
        phone=phone,
        colour=colour,
        key_person=key_person,
        issued_at=issued_at,
        expires_at=issued_at + valid,
    )


def operator_code(cert_id="DG-V-0001", name="李志愿", issued_at=T0 - 30 * DAY, valid=365 * DAY, key=OPERATOR_KEY) -> str:
    return qr.issue_operator(key, cert_id=cert_id, name=name, issued_at=issued_at, expires_at=issued_at + valid)


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5), as docs/qr-payload.md writes body and signature."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed_text(body: bytes, key: Ed25519PrivateKey) -> str:
    """``SWB1:<body>.<signature>`` for any body bytes, built from docs/qr-payload.md (not from
    firmware_app.qr's own encoder): the Ed25519 signature is over the ASCII of ``SWB1:<body>``."""
    signed = "SWB1:" + b64url(body)
    return signed + "." + b64url(key.sign(signed.encode("ascii")))


def sign_body(body: list, key: Ed25519PrivateKey) -> str:
    """A code whose body is any JSON array, signed: for bodies the issuers would never write."""
    return signed_text(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), key)
