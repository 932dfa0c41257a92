"""A real Mosquitto for tests, started from OUR config in config/mosquitto/.

    from tests.broker import pki, tls_broker, password_broker, Collector

``pki``: throwaway CA, server certificate, station and operator client
certificates, plus a rogue CA and a client certificate it signed.
``tls_broker``: config/mosquitto/district.conf on a free loopback port.
``password_broker``: config/mosquitto/test-password.conf (plain loopback, password file).
Both use config/mosquitto/swabkiosk.acl. ``Broker.kill()/stop()/start()`` restart it
on the same port.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "mosquitto"
MOSQUITTO = "/usr/sbin/mosquitto"

STATION_A = "dongguan/guancheng/t03"  # username / certificate CN = topic path
STATION_B = "dongguan/guancheng/t04"
OPERATOR = "district-ops"
PASSWORDS = {STATION_A: "pw-a", STATION_B: "pw-b", OPERATOR: "pw-ops"}


# ---------------------------------------------------------------- certificates


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return str(path)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert(subject_cn: str, key, issuer_cert, issuer_key, *, ca=False, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> dict[str, str]:
    """Write a CA, a server cert for 127.0.0.1, client certs; return name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    for ca_name in ("ca", "rogue_ca"):
        ca_key = _key()
        ca_cert = _cert(f"swabkiosk test {ca_name}", ca_key, None, ca_key, ca=True)
        out[ca_name] = _write(directory / f"{ca_name}.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
        if ca_name == "ca":
            server_key = _key()
            server = _cert("localhost", server_key, ca_cert, ca_key, server=True)
            out["server_cert"] = _write(directory / "server.crt", server.public_bytes(serialization.Encoding.PEM))
            out["server_key"] = _write(directory / "server.key", _pem_key(server_key))
            clients = {"a": STATION_A, "b": STATION_B, "ops": OPERATOR}
        else:
            clients = {"rogue": STATION_A}  # claims to be station A, signed by the wrong CA
        for short, cn in clients.items():
            key = _key()
            cert = _cert(cn, key, ca_cert, ca_key)
            out[f"{short}_cert"] = _write(directory / f"{short}.crt", cert.public_bytes(serialization.Encoding.PEM))
            out[f"{short}_key"] = _write(directory / f"{short}.key", _pem_key(key))
    return out


# ---------------------------------------------------------------- broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(conf_text: str, values: dict[str, str]) -> str:
    """Replace the value of each named directive in a shipped config (``listener`` included)."""
    for key, value in values.items():
        conf_text, n = re.subn(rf"(?m)^{key}\s.*$", f"{key} {value}", conf_text)
        if n == 0:
            conf_text += f"\n{key} {value}\n"
    return conf_text


class Broker:
    def __init__(self, workdir: Path, config_name: str, values: dict[str, str]):
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "mosquitto.log"
        persistence = workdir / "persist"
        persistence.mkdir(exist_ok=True)
        values = {
            "listener": f"{self.port} 127.0.0.1",
            "persistence_location": f"{persistence}/",
            "acl_file": str(CONFIG / "swabkiosk.acl"),
            # as root Mosquitto drops to user "mosquitto", who cannot read our 0600 test files
            "user": pwd.getpwuid(os.geteuid()).pw_name,
            "log_type": "error\nlog_type warning\nlog_type notice",
            **values,
        }
        self.conf = workdir / config_name
        self.conf.write_text(render((CONFIG / config_name).read_text(), values))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(pki, tmp_path):
    broker = Broker(
        tmp_path,
        "district.conf",
        {"cafile": pki["ca"], "certfile": pki["server_cert"], "keyfile": pki["server_key"]},
    )
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def password_broker(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    for user, pw in PASSWORDS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, pw], check=True, capture_output=True)
    os.chmod(passwd, 0o600)
    broker = Broker(tmp_path, "test-password.conf", {"password_file": str(passwd)})
    broker.start()
    yield broker
    broker.kill()


# ---------------------------------------------------------------- a district-side subscriber


class Collector:
    """A district consumer: subscribes and keeps every message; reconnects on its own."""

    def __init__(self, port: int, topic: str = "swab/v1/#", *, username=OPERATOR, password=PASSWORDS[OPERATOR],
                 tls: dict | None = None, client_id: str = "collector"):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.topic = topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if tls:
            self.client.tls_set(ca_certs=tls["ca"], certfile=tls["cert"], keyfile=tls["key"])
        else:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "collector could not subscribe"

    def _on_subscribe(self, client, userdata, mid, reason_codes, props):
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self.cond.notify_all()

    def records(self, leaf: str | None = None) -> list[dict]:
        with self.cond:
            msgs = list(self.messages)
        out = []
        for topic, payload, _ in msgs:
            parts = topic.split("/")
            if len(parts) == 6 and parts[5] in ("records", "tubes", "boxes", "shifts") and (leaf is None or parts[5] == leaf):
                out.append(json.loads(payload))
        return out

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
