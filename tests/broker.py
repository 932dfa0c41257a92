"""A real Mosquitto for tests, started from OUR config in config/mosquitto/.

    from tests.broker import pki, tls_broker, password_broker, Collector

``pki``: throwaway station CA (server certificate, station certificates, an empty CRL),
district CA (consumer certificates: operators, the receiver; an empty CRL), plus a rogue
CA and a client certificate it signed. ``write_crl`` revokes certificates.
``tls_broker``: config/mosquitto/district.conf on free loopback ports.
``password_broker``: config/mosquitto/test-password.conf (plain loopback, password files).
Both have two listeners, as shipped: stations on ``broker.port`` (swabkiosk.acl), district
consumers on ``broker.district_port`` (swabkiosk-district.acl); on both the client id is the
login. ``Broker.kill()/stop()/start()`` restart it on the same ports;
``Broker.district_login(name)`` issues a consumer login (password file + SIGHUP, no config edit).
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

STATION_A = "dongguan/guancheng/t03"  # username / certificate CN = topic path = client id
STATION_B = "dongguan/guancheng/t04"
OPERATOR = "district-ops-tester"  # a district consumer: each has a login (and so a client id) of its own
RECEIVER = "district-receiver"  # `swabkiosk district run`
PASSWORDS = {STATION_A: "pw-a", STATION_B: "pw-b", OPERATOR: "pw-ops", RECEIVER: "pw-rx"}
CONSUMERS = (OPERATOR, RECEIVER)  # logins of the district listener's password file


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
    """Write the CAs (and their keys, for CRLs), a server cert for 127.0.0.1, client certs,
    an empty CRL per real CA; return name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    for ca_name in ("ca", "district_ca", "rogue_ca"):
        ca_key = _key()
        ca_cert = _cert(f"swabkiosk test {ca_name}", ca_key, None, ca_key, ca=True)
        out[ca_name] = _write(directory / f"{ca_name}.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
        if ca_name == "ca":  # the station CA also signs the broker's server certificate
            server_key = _key()
            server = _cert("localhost", server_key, ca_cert, ca_key, server=True)
            out["server_cert"] = _write(directory / "server.crt", server.public_bytes(serialization.Encoding.PEM))
            out["server_key"] = _write(directory / "server.key", _pem_key(server_key))
            clients = {"a": STATION_A, "b": STATION_B}
        elif ca_name == "district_ca":  # district consumers: a CA of their own
            clients = {"ops": OPERATOR, "ops2": "district-ops-second", "receiver": RECEIVER,
                       "receiver2": "district-receiver-2"}
        else:
            clients = {"rogue": STATION_A}  # claims to be station A, signed by the wrong CA
        if ca_name != "rogue_ca":
            out[f"{ca_name}_key"] = _write(directory / f"{ca_name}.key", _pem_key(ca_key))
            out[f"{ca_name}_crl"] = str(write_crl(out, ca_name, [], directory / f"{ca_name}.crl"))
        for short, cn in clients.items():
            key = _key()
            cert = _cert(cn, key, ca_cert, ca_key)
            out[f"{short}_cert"] = _write(directory / f"{short}.crt", cert.public_bytes(serialization.Encoding.PEM))
            out[f"{short}_key"] = _write(directory / f"{short}.key", _pem_key(key))
    return out


def write_crl(pki: dict[str, str], ca_name: str, revoked: list[str], path: Path) -> Path:
    """A CRL of CA ``ca_name`` ("ca" or "district_ca") revoking the certificate files ``revoked``."""
    ca_cert = x509.load_pem_x509_certificate(Path(pki[ca_name]).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(pki[f"{ca_name}_key"]).read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now - datetime.timedelta(minutes=5)).next_update(now + datetime.timedelta(days=2)))
    for cert_path in revoked:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build())
    path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------- broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(conf_text: str, values: dict[str, str | list[str]]) -> str:
    """Replace the value of each named directive in a shipped config (``listener`` included).

    A string replaces the first occurrence (a directive given once: the stations' listener's
    when there are two); a list replaces the occurrences in order. A directive the config
    does not have is appended."""
    for key, value in values.items():
        todo = list(value) if isinstance(value, (list, tuple)) else [value]

        def one(match, todo=todo):
            return f"{key} {todo.pop(0)}" if todo else match.group(0)

        conf_text, n = re.subn(rf"(?m)^{key}\s.*$", one, conf_text)
        if n == 0:
            conf_text += "".join(f"\n{key} {v}\n" for v in todo)
    return conf_text


_BROKERS: dict[int, "Broker"] = {}  # station port -> broker, so a Collector given it finds the district listener


class Broker:
    def __init__(self, workdir: Path, config_name: str, values: dict[str, str | list[str]]):
        self.workdir = workdir
        shipped = (CONFIG / config_name).read_text()
        listeners = len(re.findall(r"(?m)^listener\s", shipped))
        self.port = free_port()
        self.district_port = self.port  # district consumers' listener
        while listeners > 1 and self.district_port == self.port:
            self.district_port = free_port()
        self.log_path = workdir / "mosquitto.log"
        persistence = workdir / "persist"
        persistence.mkdir(exist_ok=True)
        given = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in values.items()}
        self.district_passwd: Path | None = None
        if len(re.findall(r"(?m)^password_file\s", shipped)) > 1 and len(given.get("password_file", [])) < 2:
            # the district listener's own password file, with the test consumers' logins
            self.district_passwd = workdir / "district.passwd"
            self.district_passwd.write_text("")
            for user in CONSUMERS:
                _passwd_add(self.district_passwd, user, PASSWORDS[user])
            given["password_file"] = given.get("password_file", ["/etc/mosquitto/swabkiosk.passwd"])[:1] + [
                str(self.district_passwd)]
        elif len(given.get("password_file", [])) > 1:
            self.district_passwd = Path(given["password_file"][-1])
        values = {
            "listener": [f"{self.port} 127.0.0.1", f"{self.district_port} 127.0.0.1"][:listeners],
            "persistence_location": f"{persistence}/",
            "acl_file": [str(CONFIG / "swabkiosk.acl"), str(CONFIG / "swabkiosk-district.acl")],
            # as root Mosquitto drops to user "mosquitto", who cannot read our 0600 test files
            "user": pwd.getpwuid(os.geteuid()).pw_name,
            "log_type": "error\nlog_type warning\nlog_type notice",
            **given,
        }
        self.conf = workdir / config_name
        self.conf.write_text(render(shipped, values))
        self.proc: subprocess.Popen | None = None
        self._logins = set(CONSUMERS) if self.district_passwd else set()
        self._login_lock = threading.Lock()
        _BROKERS[self.port] = self

    def district_login(self, user: str, password: str | None = None) -> tuple[str, str]:
        """Issue a district-consumer login as an operator would: one line in the district
        listener's password file and a SIGHUP (docs/mqtt.md); wait until the broker takes it."""
        password = password or PASSWORDS.get(user) or f"pw-{user}"
        with self._login_lock:
            if user in self._logins or self.district_passwd is None:
                return user, password
            _passwd_add(self.district_passwd, user, password)
            self._logins.add(user)
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 10
                while not _login_works(self.district_port, user, password):
                    assert time.monotonic() < deadline, f"broker did not take the new login {user}"
                    time.sleep(0.05)
        return user, password

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:  # both listeners: Mosquitto opens them one after the other
                for port in {self.port, self.district_port}:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port} and {self.district_port}:\n"
                           f"{self.log_path.read_text()}")

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


def _passwd_add(path: Path, user: str, password: str) -> None:
    subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True, capture_output=True)
    os.chmod(path, 0o600)


def _login_works(port: int, user: str, password: str) -> bool:
    """One CONNECT with a login nobody uses yet (clean session: it has none to lose)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user, clean_session=True)
    client.username_pw_set(user, password)
    answer: list = []
    got = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: (answer.append(reason), got.set())
    try:
        client.connect("127.0.0.1", port)
    except OSError:
        return False
    client.loop_start()
    got.wait(2)
    client.disconnect()
    client.loop_stop()
    return bool(answer) and not answer[0].is_failure


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(pki, tmp_path):
    # the CRLs are copied: a test that revokes a certificate rewrites its broker's copy only
    crls = []
    for ca_name in ("ca", "district_ca"):
        crls.append(str(tmp_path / f"{ca_name}.crl"))
        Path(crls[-1]).write_bytes(Path(pki[f"{ca_name}_crl"]).read_bytes())
    broker = Broker(
        tmp_path,
        "district.conf",
        {"cafile": [pki["ca"], pki["district_ca"]], "certfile": [pki["server_cert"]] * 2,
         "keyfile": [pki["server_key"]] * 2, "crlfile": crls},
    )
    broker.crl = {"ca": Path(crls[0]), "district_ca": Path(crls[1])}
    broker.start()
    yield broker
    broker.kill()
    _BROKERS.pop(broker.port, None)


@pytest.fixture
def password_broker(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    for user in (STATION_A, STATION_B):
        _passwd_add(passwd, user, PASSWORDS[user])
    broker = Broker(tmp_path, "test-password.conf", {"password_file": str(passwd)})
    broker.start()
    yield broker
    broker.kill()
    _BROKERS.pop(broker.port, None)


# ---------------------------------------------------------------- a district-side subscriber


class Collector:
    """A district consumer: subscribes and keeps every message; reconnects on its own.

    Each is a consumer of its own: given a broker's station port (``broker.port``), it logs
    in on the district listener as ``district-ops-<client_id>`` (issued on first use; the
    broker makes it the client id, so its persistent session is that login's). With ``tls``
    it uses that certificate on the port given (``broker.district_port``)."""

    def __init__(self, port: int, topic: str = "swab/v1/#", *, username: str | None = None,
                 password: str | None = None, tls: dict | None = None, client_id: str = "collector"):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.topic = topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if tls:
            self.client.tls_set(ca_certs=tls["ca"], certfile=tls["cert"], keyfile=tls["key"])
        else:
            broker = _BROKERS.get(port)
            if broker is not None:
                port = broker.district_port
                username, password = broker.district_login(username or f"district-ops-{client_id}", password)
            self.client.username_pw_set(username or OPERATOR, password or PASSWORDS[OPERATOR])
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
