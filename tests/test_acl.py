"""config/mosquitto/district.conf + its ACLs: TLS with client certificates, one station per topic tree,
district consumers on a listener (and CA) of their own, the client id bound to the login, a CRL."""

from __future__ import annotations

import json
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from firmware_app.store import Store
from firmware_app.uplink import Uplink, UplinkSettings
from tests.broker import (PASSWORDS, STATION_A, STATION_B, Collector, password_broker, pki,  # noqa: F401 - fixtures
                          tls_broker, write_crl)
from tests.store_fixtures import sample


def tls_client(pki, who: str, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.tls_set(ca_certs=pki["ca"], certfile=pki[f"{who}_cert"], keyfile=pki[f"{who}_key"])
    return client


def collector(pki, port, topic, who="ops", client_id="ops"):
    """A district consumer with its own certificate; ``port`` is the district listener's."""
    return Collector(port, topic, tls={"ca": pki["ca"], "cert": pki[f"{who}_cert"], "key": pki[f"{who}_key"]},
                     client_id=client_id)


def settings(port, pki, **kw) -> UplinkSettings:
    district, site, table = STATION_A.split("/")
    base = dict(url=f"mqtts://127.0.0.1:{port}", device_id="gd-dg-0001-t03", district=district, site=site,
                table=table, ca_file=pki["ca"], cert_file=pki["a_cert"], key_file=pki["a_key"],
                backoff_min_s=0.2, backoff_max_s=1.0)
    return UplinkSettings(**{**base, **kw})


def test_station_over_tls_with_its_certificate(tls_broker, pki, tmp_path):
    ops = collector(pki, tls_broker.district_port, "swab/v1/#")
    store = Store(tmp_path / "a")
    uplink = Uplink(store, settings(tls_broker.port, pki), on_command=lambda c: None)
    try:
        store.append([sample(1), sample(2)])
        uplink.start()
        assert ops.wait_for(lambda c: len(c.records()) == 2)
        assert all(t.startswith(f"swab/v1/{STATION_A}/") for t, _, _ in ops.messages)
    finally:
        uplink.stop()
        store.close()
        ops.close()


def test_station_a_cannot_publish_as_b_or_read_bs_commands(tls_broker, pki):
    ops = collector(pki, tls_broker.district_port, "swab/v1/#")
    a_got, b_got = [], []
    b_ready = threading.Event()
    a = tls_client(pki, "a", "station-a")
    b = tls_client(pki, "b", "station-b")
    a.on_message = lambda c, u, m: a_got.append(m.topic)
    b.on_message = lambda c, u, m: b_got.append(m.topic)
    b.on_subscribe = lambda *args: b_ready.set()
    try:
        for client in (a, b):
            client.connect("127.0.0.1", tls_broker.port)
            client.loop_start()
        a.subscribe(f"swab/v1/{STATION_B}/cmd/+", qos=1)  # eavesdrop on B's commands
        a.subscribe("swab/v1/#", qos=1)
        b.subscribe(f"swab/v1/{STATION_B}/cmd/+", qos=1)
        assert b_ready.wait(10)
        # A forges a record on B's topic, then a marker on its own topic
        a.publish(f"swab/v1/{STATION_B}/records", json.dumps({"record_id": "forged"}), qos=1).wait_for_publish(10)
        a.publish(f"swab/v1/{STATION_A}/records", json.dumps({"record_id": "marker"}), qos=1).wait_for_publish(10)
        assert ops.wait_for(lambda c: any(r["record_id"] == "marker" for r in c.records()))
        assert all(r["record_id"] != "forged" for r in ops.records())
        # the district sends B a command: B gets it, A does not
        op = tls_client(pki, "ops2", "operator")  # a second operator, beside the collector's login
        op.connect("127.0.0.1", tls_broker.district_port)
        op.loop_start()
        op.publish(f"swab/v1/{STATION_B}/cmd/close_tube", json.dumps({"txn": "x1"}), qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while not b_got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b_got == [f"swab/v1/{STATION_B}/cmd/close_tube"]
        # then a command for A: A receives it after B's, had B's reached A at all
        op.publish(f"swab/v1/{STATION_A}/cmd/close_tube", json.dumps({"txn": "x0"}), qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while not a_got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert a_got and set(a_got) == {f"swab/v1/{STATION_A}/cmd/close_tube"}  # nothing of B's, no records
        # and a station cannot command another station
        a.publish(f"swab/v1/{STATION_B}/cmd/close_tube", json.dumps({"txn": "evil"}), qos=1).wait_for_publish(10)
        op.publish(f"swab/v1/{STATION_B}/cmd/reprint_label", json.dumps({"txn": "x2"}), qos=1).wait_for_publish(10)
        deadline = time.monotonic() + 10
        while len(b_got) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b_got == [f"swab/v1/{STATION_B}/cmd/close_tube", f"swab/v1/{STATION_B}/cmd/reprint_label"]
        op.loop_stop()
        op.disconnect()
    finally:
        for client in (a, b):
            client.loop_stop()
            client.disconnect()
        ops.close()


def _error_after_connect(tmp_path, s: UplinkSettings) -> dict:
    store = Store(tmp_path / "data")
    uplink = Uplink(store, s, on_command=lambda c: None)
    uplink.start()
    try:
        deadline = time.monotonic() + 15
        while not uplink.state()["error_en"] and time.monotonic() < deadline:
            time.sleep(0.02)
        state = uplink.state()
        assert store.get_meta("uplink")["error_en"] == state["error_en"]  # visible to `swabkiosk status`
        return state
    finally:
        uplink.stop()
        store.close()


def test_wrong_ca_is_explained(tls_broker, pki, tmp_path):
    state = _error_after_connect(tmp_path, settings(tls_broker.port, pki, ca_file=pki["rogue_ca"]))
    assert not state["connected"]
    assert "Cannot verify the broker's certificate" in state["error_en"]
    assert "服务器证书" in state["error"]


@pytest.mark.parametrize("cert", ["rogue", "none"])
def test_bad_client_certificate_is_explained(tls_broker, pki, tmp_path, cert):
    kw = {"cert_file": pki["rogue_cert"], "key_file": pki["rogue_key"]} if cert == "rogue" else {"cert_file": "", "key_file": ""}
    state = _error_after_connect(tmp_path, settings(tls_broker.port, pki, **kw))
    assert not state["connected"]
    assert "rejected this station's client certificate" in state["error_en"], state["error_en"]


def test_missing_certificate_file_is_explained(tls_broker, pki, tmp_path):
    state = _error_after_connect(tmp_path, settings(tls_broker.port, pki, cert_file=str(tmp_path / "nope.crt")))
    assert "not found" in state["error_en"] or "invalid" in state["error_en"], state["error_en"]



def test_station_a_cannot_throw_b_off_with_bs_client_id(tls_broker, pki):
    """Issue 13, finding 2: the client id is bound to the login (use_username_as_clientid)."""
    b_drops = []
    b = tls_client(pki, "b", "station-b")
    b.on_disconnect = lambda *args: b_drops.append(args)
    up = threading.Event()
    b.on_connect = lambda *args: up.set()
    a = tls_client(pki, "a", "station-b")  # A's certificate, B's client id
    a_up = threading.Event()
    a.on_connect = lambda *args: a_up.set()
    try:
        b.connect("127.0.0.1", tls_broker.port)
        b.loop_start()
        assert up.wait(10)
        a.connect("127.0.0.1", tls_broker.port)
        a.loop_start()
        assert a_up.wait(10)
        time.sleep(1.0)
        assert b_drops == [] and b.is_connected()
    finally:
        for client in (a, b):
            client.loop_stop()
            client.disconnect()


def _connects(port, *, pki=None, who=None, login=None, client_id="probe", timeout=10.0):
    """Connect once: True if the broker accepted (CONNACK success), False if it refused or hung up."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if who:
        client.tls_set(ca_certs=pki["ca"], certfile=pki[f"{who}_cert"], keyfile=pki[f"{who}_key"])
    if login:
        client.username_pw_set(*login)
    answer = []
    done = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: (answer.append(not reason.is_failure), done.set())
    client.on_disconnect = lambda *args: done.set()
    try:
        client.connect("127.0.0.1", port)
    except OSError:  # TLS 1.2: a refused client certificate fails the handshake itself
        return False
    client.loop_start()
    try:
        done.wait(timeout)
        time.sleep(0.2)  # TLS 1.3 checks the certificate after the handshake: the broker may hang up now
        return answer == [True] and client.is_connected()
    finally:
        client.loop_stop()
        client.disconnect()


def test_password_station_cannot_throw_b_off_with_bs_client_id(password_broker):
    """The same binding in test-password.conf: A's login with B's client id gets A's own."""
    b_drops = []
    b = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=STATION_B, clean_session=False)
    b.username_pw_set(STATION_B, PASSWORDS[STATION_B])
    b.on_disconnect = lambda *args: b_drops.append(args)
    up = threading.Event()
    b.on_connect = lambda *args: up.set()
    try:
        b.connect("127.0.0.1", password_broker.port)
        b.loop_start()
        assert up.wait(10)
        assert _connects(password_broker.port, login=(STATION_A, PASSWORDS[STATION_A]), client_id=STATION_B)
        time.sleep(0.5)
        assert b_drops == [] and b.is_connected()
    finally:
        b.loop_stop()
        b.disconnect()


def test_each_district_consumer_has_its_own_login_and_they_coexist(tls_broker, pki):
    """Receiver and two operators at once, each a certificate of its own from the district CA:
    none throws another off (they would, sharing one login, now that the login is the client id)."""
    consumers = {who: collector(pki, tls_broker.district_port, "swab/v1/#", who=who, client_id="same-id")
                 for who in ("receiver", "ops", "ops2")}  # even with one client id asked for
    a = tls_client(pki, "a", "station-a")
    try:
        a.connect("127.0.0.1", tls_broker.port)
        a.loop_start()
        a.publish(f"swab/v1/{STATION_A}/records", json.dumps({"record_id": "r1"}), qos=1).wait_for_publish(10)
        for who, c in consumers.items():
            assert c.wait_for(lambda c: [r["record_id"] for r in c.records()] == ["r1"], 10), who
            assert c.client.is_connected(), who
    finally:
        a.loop_stop()
        a.disconnect()
        for c in consumers.values():
            c.close()


def test_listeners_take_only_their_own_ca(tls_broker, pki):
    """A station's certificate never logs in as a district consumer, nor a consumer's as a station."""
    assert _connects(tls_broker.port, pki=pki, who="a")
    assert _connects(tls_broker.district_port, pki=pki, who="ops")
    assert not _connects(tls_broker.district_port, pki=pki, who="a")  # station CA on the district listener
    assert not _connects(tls_broker.port, pki=pki, who="ops")  # district CA on the station listener


def test_a_new_operator_is_a_login_and_nothing_else(password_broker):
    """Issuing a consumer login (one password-file line + SIGHUP) is all it takes: it reads every
    station at once, with no edit of the config or the ACL; a station's password does not log in
    on the consumers' listener."""
    login = password_broker.district_login("district-ops-newcomer", "pw-new")
    watch = Collector(password_broker.district_port, "swab/v1/#", username=login[0], password=login[1],
                      client_id="whatever")
    a = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="a")
    a.username_pw_set(STATION_A, PASSWORDS[STATION_A])
    try:
        a.connect("127.0.0.1", password_broker.port)
        a.loop_start()
        a.publish(f"swab/v1/{STATION_A}/records", json.dumps({"record_id": "n1"}), qos=1).wait_for_publish(10)
        assert watch.wait_for(lambda c: [r["record_id"] for r in c.records()] == ["n1"], 10)
    finally:
        a.loop_stop()
        a.disconnect()
        watch.close()
    assert not _connects(password_broker.district_port, login=(STATION_A, PASSWORDS[STATION_A]))
    assert not _connects(password_broker.port, login=login)  # nor a consumer's on the stations' listener


def test_a_revoked_station_is_refused_and_the_others_still_connect(tls_broker, pki):
    """The district revokes station B (its SD card was lost): B's certificate no longer logs in,
    A and the district consumers do; the record A sends still arrives."""
    assert _connects(tls_broker.port, pki=pki, who="b")
    write_crl(pki, "ca", [pki["b_cert"]], tls_broker.crl["ca"])
    tls_broker.proc.send_signal(signal.SIGHUP)  # `systemctl reload mosquitto`: 2.0.11 reads the CRL again
    deadline = time.monotonic() + 10
    while _connects(tls_broker.port, pki=pki, who="b") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _connects(tls_broker.port, pki=pki, who="b")
    assert _connects(tls_broker.port, pki=pki, who="a")
    ops = collector(pki, tls_broker.district_port, "swab/v1/#")
    a = tls_client(pki, "a", "station-a")
    try:
        a.connect("127.0.0.1", tls_broker.port)
        a.loop_start()
        a.publish(f"swab/v1/{STATION_A}/records", json.dumps({"record_id": "after"}), qos=1).wait_for_publish(10)
        assert ops.wait_for(lambda c: any(r["record_id"] == "after" for r in c.records()), 10)
    finally:
        a.loop_stop()
        a.disconnect()
        ops.close()


def test_doctor_on_a_stopped_kiosk_keeps_its_session_and_queued_commands(tls_broker, pki, tmp_path):
    """With the client id bound to the login, `swabkiosk doctor` logs in as the station itself:
    its broker check must neither wipe the station's session nor take the commands queued in it."""
    from types import SimpleNamespace

    from firmware_app.doctor import check_broker

    store = Store(tmp_path / "a")
    got = []
    uplink = Uplink(store, settings(tls_broker.port, pki), on_command=got.append)
    uplink.start()  # subscribes: the session (and its cmd/+) is on the broker
    deadline = time.monotonic() + 10
    while not uplink.state()["commands"] and time.monotonic() < deadline:
        time.sleep(0.02)
    uplink.stop()  # the technician stopped the service to run doctor
    op = tls_client(pki, "ops", "operator")
    op.connect("127.0.0.1", tls_broker.district_port)
    op.loop_start()
    op.publish(f"swab/v1/{STATION_A}/cmd/close_tube", json.dumps({"txn": "q1"}), qos=1).wait_for_publish(10)
    op.loop_stop()
    op.disconnect()
    s = settings(tls_broker.port, pki)
    cfg = SimpleNamespace(station={"device_id": s.device_id, "district": s.district, "site": s.site, "table": s.table},
                          mqtt={"url": s.url, "ca_file": s.ca_file, "cert_file": s.cert_file, "key_file": s.key_file})
    check = check_broker(cfg)
    assert check.status == "ok", check
    uplink = Uplink(store, settings(tls_broker.port, pki), on_command=got.append)
    try:
        uplink.start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(c.name, c.txn) for c in got] == [("close_tube", "q1")]
    finally:
        uplink.stop()
        store.close()


def test_the_documented_pki_commands_give_a_broker_that_binds_and_revokes(tmp_path):
    """docs/mqtt.md as a district would follow it: the station CA and a station, the district CA
    and two consumers (openssl, as written), district.conf on them; then the revocation block."""
    import re
    import subprocess
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from tests.broker import ROOT, Broker, _cert, _key, _pem_key

    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", (ROOT / "docs" / "mqtt.md").read_text(encoding="utf-8"), re.S | re.M)
    station = next(b for b in blocks if "ca.cnf" in b and "client.crt" in b and not b.startswith("# (continues"))
    revoke = next(b for b in blocks if b.startswith("# (continues") and "-revoke client.crt" in b)
    district = next(b for b in blocks if "district-ca/newcerts" in b)
    pkidir = tmp_path / "pki"
    pkidir.mkdir()
    for block in (station, district):
        subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=pkidir, check=True, capture_output=True, timeout=60)
    # the broker's server certificate, from the station CA the clients' ca_file trusts
    ca_cert = x509.load_pem_x509_certificate((pkidir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pkidir / "ca.key").read_bytes(), None)
    server_key = _key()
    (pkidir / "server.crt").write_bytes(_cert("localhost", server_key, ca_cert, ca_key, server=True)
                                        .public_bytes(serialization.Encoding.PEM))
    (pkidir / "server.key").write_bytes(_pem_key(server_key))
    d = pkidir / "district-ca"
    workdir = tmp_path / "broker"
    workdir.mkdir()
    broker = Broker(workdir, "district.conf", {
        "cafile": [str(pkidir / "ca.crt"), str(d / "ca.crt")], "crlfile": [str(pkidir / "ca.crl"), str(d / "ca.crl")],
        "certfile": [str(pkidir / "server.crt")] * 2, "keyfile": [str(pkidir / "server.key")] * 2})
    files = {"ca": str(pkidir / "ca.crt"), "t03_cert": str(pkidir / "client.crt"), "t03_key": str(pkidir / "client.key")}
    for name in ("district-receiver", "district-ops-wang"):
        files[f"{name}_cert"], files[f"{name}_key"] = str(d / f"{name}.crt"), str(d / f"{name}.key")
    broker.start()
    try:
        assert _connects(broker.port, pki=files, who="t03")
        consumers = [Collector(broker.district_port, "swab/v1/#", client_id="x",
                               tls={"ca": files["ca"], "cert": files[f"{n}_cert"], "key": files[f"{n}_key"]})
                     for n in ("district-receiver", "district-ops-wang")]  # one client id asked for, two logins
        try:
            assert all(c.client.is_connected() for c in consumers)
            subprocess.run(["bash", "-euo", "pipefail", "-c", revoke], cwd=pkidir, check=True, capture_output=True,
                           timeout=60)
            broker.proc.send_signal(signal.SIGHUP)  # `systemctl reload mosquitto`
            deadline = time.monotonic() + 10
            while _connects(broker.port, pki=files, who="t03") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _connects(broker.port, pki=files, who="t03")
            time.sleep(0.5)
            assert all(c.client.is_connected() for c in consumers)  # the reload dropped no consumer
            # a new operator, while the broker runs: the loop's two commands with their name, nothing else
            body = re.search(r"^for name in .*?; do\n(.*?)^done", district, re.S | re.M).group(1)
            subprocess.run(["bash", "-euo", "pipefail", "-c", "name=district-ops-li\n" + body], cwd=d, check=True,
                           capture_output=True, timeout=60)
            files["li_cert"], files["li_key"] = str(d / "district-ops-li.crt"), str(d / "district-ops-li.key")
            assert _connects(broker.district_port, pki=files, who="li")
        finally:
            for c in consumers:
                c.close()
    finally:
        broker.kill()
    assert Path(pkidir / "index.txt").read_text().startswith("R\t")  # the CA's database says revoked
