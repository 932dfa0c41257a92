"""Why the broker link failed: a catalogue key (words a volunteer understands, zh-CN first)
and the raw reason apart (the TLS library's or paho's text, the address, a file name), which
only the technician's views show (the uplink state's ``error_raw``, `doctor`)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from firmware_app.catalogue import en, zh


@dataclass(frozen=True)
class BrokerFailure:
    key: str  # firmware_app/catalogue/uplink.py, "broker.*"
    raw: str = ""  # the raw reason, for the technician

    @property
    def zh(self) -> str:
        return zh(self.key)

    @property
    def en(self) -> str:
        return en(self.key)

    def technician(self) -> tuple[str, str]:
        """(zh, en) with the raw reason at the end: a technician's line (`doctor`, the log)."""
        if not self.raw:
            return self.zh, self.en
        return zh("broker.with_raw", words=self.zh, raw=self.raw), en("broker.with_raw", words=self.en, raw=self.raw)


def connect_failure(exc: BaseException, where: str) -> BrokerFailure:
    """A failure to open the connection (TCP, TLS, the certificate files)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return BrokerFailure("broker.cert_unverified", f"{where}: {text}")
    if isinstance(exc, ssl.SSLError):
        low = text.lower()
        if any(w in low for w in ("certificate required", "unknown ca", "bad certificate", "certificate unknown")):
            return BrokerFailure("broker.cert_rejected", f"{where}: {text}")
        if "key values mismatch" in low or "pem" in low:
            return BrokerFailure("broker.cert_invalid", text)
        return BrokerFailure("broker.tls_failed", f"{where}: {text}")
    if isinstance(exc, FileNotFoundError):
        return BrokerFailure("broker.cert_missing", str(exc.filename))
    if isinstance(exc, ConnectionRefusedError):
        return BrokerFailure("broker.refused", where)
    if isinstance(exc, (TimeoutError, OSError)):
        return BrokerFailure("broker.unreachable", f"{where}: {text}")
    return BrokerFailure("broker.connect_failed", f"{where}: {text}")


def connack_failure(reason: object) -> BrokerFailure:
    """The broker answered the CONNECT with a refusal."""
    text = str(reason)
    if "not authori" in text.lower() or "password" in text.lower():
        return BrokerFailure("broker.login_refused", text)
    return BrokerFailure("broker.connack_refused", text)


def drop_failure(detail: str, *, was_up: bool, tls: bool) -> BrokerFailure:
    """The connection dropped: after login, or before it (TLS 1.3 checks the client
    certificate after the handshake: a broker refusing it just hangs up)."""
    if was_up:
        return BrokerFailure("broker.lost", detail)
    if tls:
        return BrokerFailure("broker.tls_closed", detail)
    return BrokerFailure("broker.closed_before_login", detail)


def explain_connect_error(exc: BaseException, where: str) -> tuple[str, str]:
    """A connection failure for a technician (zh, en): the words, then the raw reason."""
    return connect_failure(exc, where).technician()
