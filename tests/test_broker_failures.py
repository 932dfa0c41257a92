"""Broker failures reach the volunteer as words from the catalogue; the raw reason (the address,
the TLS or paho text) is kept apart in ``error_raw`` for the technician (issue 14 item 3)."""

from __future__ import annotations

import re
import socket
import ssl
import time

from firmware_app.broker_failures import connack_failure, connect_failure, drop_failure, explain_connect_error
from firmware_app.catalogue import en, zh
from firmware_app.store import Store
from firmware_app.uplink import Uplink, UplinkSettings
from tests.store_fixtures import sample

LIBRARY_TEXT = re.compile(r"[A-Za-z]{2,}|\(\d+,")  # English words or a raw errno tuple


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_is_told_in_words_and_the_address_kept_apart(tmp_path):
    port = closed_port()
    store = Store(str(tmp_path / "data"))
    store.append([sample(1)])
    uplink = Uplink(store, UplinkSettings(url=f"mqtt://127.0.0.1:{port}", device_id="gd-dg-0001-t03",
                                          district="gd", site="dg-0001", table="t03", backoff_min_s=0.05,
                                          backoff_max_s=0.2), on_command=lambda c: None)
    uplink.start()
    try:
        deadline = time.monotonic() + 10
        while not uplink.state()["error_en"] and time.monotonic() < deadline:
            time.sleep(0.02)
        state = uplink.state()
        assert state["connected"] is False
        assert state["error"] == zh("broker.refused") and state["error_en"] == en("broker.refused")
        assert str(port) not in state["error"] and str(port) not in state["error_en"]
        assert state["error_raw"] == f"mqtt://127.0.0.1:{port}"
        assert store.get_meta("uplink")["error_raw"] == state["error_raw"]  # `swabkiosk status` sees it
        assert store.stats()["backlog"] == 1  # nothing forgotten
    finally:
        uplink.stop()
        store.close()
    assert uplink.state()["error"] == zh("broker.stopped") and uplink.state()["error_raw"] == ""


def test_every_failure_has_zh_words_without_the_library_text():
    where = "mqtts://broker.example:8883"
    failures = [
        connect_failure(ssl.SSLCertVerificationError("certificate verify failed: unable to get local issuer"), where),
        connect_failure(ssl.SSLError("tlsv13 alert certificate required"), where),
        connect_failure(ssl.SSLError("[SSL] PEM lib (_ssl.c:3900)"), where),
        connect_failure(ssl.SSLError("wrong version number"), where),
        connect_failure(FileNotFoundError(2, "No such file or directory", "/etc/swabkiosk/ca.pem"), where),
        connect_failure(ConnectionRefusedError(111, "Connection refused"), where),
        connect_failure(OSError(5, "Input/output error"), where),
        connect_failure(TimeoutError("timed out"), where),
        connect_failure(RuntimeError("odd"), where),
        connack_failure("Not authorized"),
        connack_failure("Server unavailable"),
        drop_failure("The connection was lost.", was_up=True, tls=False),
        drop_failure("unexpected eof", was_up=False, tls=True),
        drop_failure("reset", was_up=False, tls=False),
    ]
    for failure in failures:
        words = failure.zh
        assert failure.raw and failure.raw not in words, failure
        assert not LIBRARY_TEXT.search(re.sub(r"\b(TLS|CA)\b", "", words)), (failure, words)  # names a volunteer may see
    assert len({f.key for f in failures}) == 13  # the two refusals by the broker differ; drops differ


def test_the_technician_line_keeps_the_raw_reason():
    zh_text, en_text = explain_connect_error(OSError(5, "Input/output error"), "mqtt://10.0.0.1:1883")
    assert en_text.startswith(en("broker.unreachable")) and "Input/output error" in en_text
    assert zh_text.startswith(zh("broker.unreachable")) and "10.0.0.1" in zh_text
