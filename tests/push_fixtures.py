"""The district's signing key for tests, and signed pushes made with it (firmware_app.signedpush).

The seed is a public test value: this key signs nothing real."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_app import qr, signedpush

DISTRICT_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35)))
DISTRICT_PUB = qr.public_key_base64(DISTRICT_KEY.public_key())


def with_district_key(station_text: str, plain_mqtt: bool = True) -> str:
    """A station file (hw_mocks.table) that trusts DISTRICT_KEY; the test brokers are plain mqtt://."""
    extra = f'district_keys = ["{DISTRICT_PUB}"]\n' + ('plain_mqtt_pushes = "test setup only"\n' if plain_mqtt else "")
    assert "max_code_age_hours = 72\n" in station_text
    return station_text.replace("max_code_age_hours = 72\n", "max_code_age_hours = 72\n" + extra, 1)


def signed(kind, body, version, *, device_id="sim-t03", key=DISTRICT_KEY, district="", site="", valid_s=3600,
           issued_at=None):
    now = int(time.time()) if issued_at is None else issued_at
    where = {"district": district, "site": site} if site else {"device_id": device_id}
    return signedpush.sign(key, kind, body, version=version, issued_at=now, expires_at=now + valid_s, **where)


def config_args(text, version, **kw):
    return signedpush.command_args("config", signed("config", text, version, **kw))


def volunteers_args(people, version, **kw):
    return signedpush.command_args("volunteers", signed("volunteers", people, version, **kw))
