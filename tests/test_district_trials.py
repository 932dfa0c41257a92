"""Nothing lost past the broker (issue 12): the kiosk's uplink, the shipped broker config
(config/mosquitto/district.conf: autosave_interval 60, so a SIGKILL loses what the broker
acknowledged) and the real `swabkiosk district run`: every stored record ends in the district
database exactly once, by reconciliation (watermark + cmd/resend)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from district.db import DistrictDB
from firmware_app.store import Store
from firmware_app.uplink import Uplink
from tests.broker import ROOT, STATION_A, pki, tls_broker  # noqa: F401 - fixtures
from tests.pg import fresh_database, postgres_url  # noqa: F401 - fixture
from tests.store_fixtures import sample
from tests.test_acl import settings as tls_settings

DEVICE = "gd-dg-0001-t03"


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


class Receiver:
    """`python -m firmware_app district run` over TLS with its own certificate (CN district-receiver,
    from the district CA) on the district consumers' listener (``port``)."""

    def __init__(self, port, pki, db, log_path, who="receiver", grace="1"):
        self.cmd = [sys.executable, "-m", "firmware_app", "district", "run", "--broker", f"mqtts://127.0.0.1:{port}",
                    "--db", str(db), "--ca-file", pki["ca"], "--cert-file", pki[f"{who}_cert"],
                    "--key-file", pki[f"{who}_key"], "--grace", grace]
        self.db, self.log_path, self.proc = str(db), log_path, None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=_env(), stdout=log, stderr=log)
        log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        assert self.proc.returncode == 0, self.log_path.read_text()[-3000:]

    def status(self):
        out = subprocess.run([sys.executable, "-m", "firmware_app", "district", "status", "--db", self.db, "--json"],
                             cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["stations"]

    def wait_complete(self, total, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with _open(self.db) as d:
                st = d.stations().get(DEVICE)
            if st and st["records"] >= total and st["gaps"] == [] and st["last_seq"] == total:
                return True
            time.sleep(0.25)
        return False


class _open:
    def __init__(self, target):
        self.db = DistrictDB(target)

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        self.db.close()


def _exactly_once(db_target, total):
    with _open(db_target) as d:
        rows = d.rows("SELECT record_id, seq, body FROM records WHERE device_id = ? ORDER BY seq", (DEVICE,))
    assert [s for _, s, _ in rows] == list(range(1, total + 1))  # all, once each, order by seq
    assert len({r for r, _, _ in rows}) == total
    return rows


def _append(store, first, n):
    store.append([sample(s, tube=f"T{(s - 1) // 10:04d}", person=s) for s in range(first, first + n)])


def _wait(pred, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(params=["sqlite", "postgres"])
def district_db(request, tmp_path):
    if request.param == "sqlite":
        return tmp_path / "district.db"
    return fresh_database(request.getfixturevalue("postgres_url"), f"trial_{random.randrange(10**9)}")


@pytest.mark.timeout(180)
def test_receiver_away_then_broker_sigkill_loses_nothing(tls_broker, pki, tmp_path, district_db, capsys):
    """Trial 3 of issue 12: 20 records acknowledged while the receiver is away, one broker SIGKILL."""
    rx = Receiver(tls_broker.district_port, pki, district_db, tmp_path / "receiver.log")
    rx.start()  # subscribes once (its session is now on the broker), then goes away
    assert _wait(lambda: "connected, subscribed" in rx.log_path.read_text(), 20)
    rx.stop()
    store = Store(tmp_path / "kiosk")
    uplink = Uplink(store, tls_settings(tls_broker.port, pki), on_command=lambda c: None)
    try:
        uplink.start()
        _append(store, 1, 20)
        uplink.wake()
        assert _wait(lambda: store.stats()["backlog"] == 0)  # the broker acknowledged all 20
        tls_broker.kill()  # ... and loses them: nothing saved since (autosave_interval 60)
        tls_broker.start()
        t0 = time.monotonic()
        rx.start()
        assert rx.wait_complete(20, 60), rx.log_path.read_text()[-3000:]
        took = time.monotonic() - t0
        _exactly_once(district_db, 20)
        st = rx.status()[DEVICE]
        assert st["records"] == 20 and st["last_seq"] == 20 and st["gaps"] == []
        assert "to resend 1-20" in rx.log_path.read_text()  # the broker had lost them all: resent from the archive
        with capsys.disabled():
            print(f"\nreceiver away + broker SIGKILL: 20/20 records exactly once, {took:.1f} s after restart")
    finally:
        uplink.stop()
        store.close()
        rx.stop()


def test_the_receivers_client_id_is_its_login(pki, tmp_path):
    """What district.conf makes it anyway, so its session is the same on a broker that does not bind."""
    from district.receiver import login_name

    assert login_name("", pki["receiver2_cert"]) == "district-receiver-2"  # the certificate's CN
    assert login_name("district-receiver", pki["receiver2_cert"]) == "district-receiver"  # a username first
    assert login_name("", str(tmp_path / "missing.crt")) == "swab-district"  # paho then reports the file


@pytest.mark.timeout(120)
def test_two_receivers_in_one_share_group_each_with_its_own_login(tls_broker, pki, tmp_path):
    """Two `district run` in one shared-subscription group, certificates district-receiver and
    district-receiver-2: the broker binds each one's client id to its login (the receiver's default
    client id is its login too), so neither throws the other off and they split the records."""
    rxs = [Receiver(tls_broker.district_port, pki, tmp_path / f"d{i}.db", tmp_path / f"rx{i}.log", who=who,
                    grace="600")  # no resends: each database holds the share it was given
           for i, who in enumerate(("receiver", "receiver2"))]
    store = Store(tmp_path / "kiosk")
    uplink = Uplink(store, tls_settings(tls_broker.port, pki), on_command=lambda c: None)
    try:
        for rx in rxs:
            rx.start()
        assert _wait(lambda: all("connected, subscribed" in rx.log_path.read_text() for rx in rxs), 30)
        uplink.start()
        _append(store, 1, 40)
        uplink.wake()
        assert _wait(lambda: store.stats()["backlog"] == 0)

        def seqs(rx):
            try:
                with _open(rx.db) as d:
                    return [s for (s,) in d.rows("SELECT seq FROM records WHERE device_id = ?", (DEVICE,))]
            except Exception:  # noqa: BLE001 - not made yet
                return []
        assert _wait(lambda: sorted(seqs(rxs[0]) + seqs(rxs[1])) == list(range(1, 41)), 30)
        assert seqs(rxs[0]) and seqs(rxs[1])  # the group split them
        for rx in rxs:  # one connection each, never dropped by the other
            assert rx.log_path.read_text().count("connected, subscribed") == 1, rx.log_path.read_text()[-2000:]
        logged = tls_broker.log_path.read_text()
        assert "as district-receiver " in logged and "as district-receiver-2 " in logged  # client id = login
    finally:
        uplink.stop()
        store.close()
        for rx in rxs:
            rx.stop()


@pytest.mark.timeout(240)
def test_broker_sigkilled_ten_times_during_a_session_loses_nothing(tls_broker, pki, tmp_path, capsys):
    """Trial 1 of issue 12: 150 records, the shipped district.conf broker SIGKILLed 10 times."""
    rng = random.Random(12)
    db = tmp_path / "district.db"
    rx = Receiver(tls_broker.district_port, pki, db, tmp_path / "receiver.log")
    rx.start()
    store = Store(tmp_path / "kiosk")
    uplink = Uplink(store, tls_settings(tls_broker.port, pki), on_command=lambda c: None)
    try:
        uplink.start()
        seq = 1
        for _ in range(10):
            n = 15
            _append(store, seq, n)
            seq += n
            uplink.wake()
            time.sleep(rng.uniform(0.3, 0.8))
            tls_broker.kill()
            time.sleep(rng.uniform(0.05, 0.3))
            tls_broker.start()
        t0 = time.monotonic()
        assert rx.wait_complete(150, 60), rx.log_path.read_text()[-3000:]
        took = time.monotonic() - t0
        _exactly_once(db, 150)
        asked = rx.log_path.read_text().count("to resend")
        with capsys.disabled():
            print(f"\n10 broker SIGKILLs: 150/150 records exactly once, complete {took:.1f} s after the last restart "
                  f"({asked} resend requests)")
    finally:
        uplink.stop()
        store.close()
        rx.stop()


# ---------------------------------------------------------------- RabbitMQ (MQTT plugin)


@pytest.fixture
def rabbit(tmp_path):
    from tests.rabbit import RabbitNode, unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    node = RabbitNode(tmp_path, "swab1")
    try:
        node.start()
    except RuntimeError as exc:
        node.remove()
        pytest.skip(f"RabbitMQ did not start here: {exc}")
    yield node
    node.remove()


class PlainReceiver(Receiver):
    def __init__(self, port, db, log_path, user, password):
        self.cmd = [sys.executable, "-m", "firmware_app", "district", "run", "--broker",
                    f"mqtt://{user}:{password}@127.0.0.1:{port}", "--db", str(db), "--share", "", "--grace", "1"]
        self.db, self.log_path, self.proc = str(db), log_path, None


@pytest.mark.timeout(240)
def test_rabbitmq_node_sigkilled_with_the_receiver_away_loses_nothing(rabbit, tmp_path, capsys):
    from firmware_app.uplink import UplinkSettings
    from tests.rabbit import PASSWORD, USER

    db = tmp_path / "district.db"
    rx = PlainReceiver(rabbit.port, db, tmp_path / "receiver.log", USER, PASSWORD)
    district, site, table = STATION_A.split("/")
    settings = UplinkSettings(url=f"mqtt://127.0.0.1:{rabbit.port}", device_id=DEVICE, district=district, site=site,
                              table=table, username=USER, password=PASSWORD, backoff_min_s=0.2, backoff_max_s=1.0)
    store = Store(tmp_path / "kiosk")
    uplink = Uplink(store, settings, on_command=lambda c: None)
    try:
        rx.start()  # subscribed first: RabbitMQ routes to no queue before, and keeps no retained for wildcards
        assert _wait(lambda: "connected, subscribed" in rx.log_path.read_text(), 30)
        uplink.start()
        _append(store, 1, 10)
        uplink.wake()
        assert rx.wait_complete(10, 60), rx.log_path.read_text()[-3000:]
        rx.stop()
        _append(store, 11, 40)
        uplink.wake()
        assert _wait(lambda: store.stats()["backlog"] == 0)  # RabbitMQ acknowledged them
        rabbit.kill()
        rabbit.start()
        t0 = time.monotonic()
        rx.start()
        assert rx.wait_complete(50, 60), rx.log_path.read_text()[-3000:]
        took = time.monotonic() - t0
        _exactly_once(db, 50)
        with capsys.disabled():
            print(f"\nRabbitMQ node SIGKILL, receiver away: 50/50 records exactly once, {took:.1f} s after restart")
    finally:
        uplink.stop()
        store.close()
        rx.stop()


@pytest.mark.timeout(300)
def test_rabbitmq_two_node_cluster_node_holding_the_queue_sigkilled(tmp_path, capsys):
    """Trial 4 of issue 12: a 2-node RabbitMQ cluster, the node holding the receiver's queue SIGKILLed
    mid-session. Kiosk and receiver each get both nodes' URLs (tried in turn)."""
    from firmware_app.uplink import UplinkSettings
    from tests.rabbit import PASSWORD, USER, RabbitNode, unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    a, b = RabbitNode(tmp_path, "swabA"), RabbitNode(tmp_path, "swabB")
    store = uplink = rx = None
    try:
        t_setup = time.monotonic()
        try:
            a.start()
            b.start()
            b.ctl("stop_app")
            b.ctl("join_cluster", a.name)
            b.ctl("start_app")
            b.start_wait()
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"a 2-node RabbitMQ cluster did not form here: {exc}")
        setup_s = time.monotonic() - t_setup
        db = tmp_path / "district.db"
        rx = PlainReceiver(f"{b.port},mqtt://127.0.0.1:{a.port}", db, tmp_path / "receiver.log", USER, PASSWORD)
        rx.start()  # on node B: its queue lives there
        assert _wait(lambda: "connected, subscribed" in rx.log_path.read_text(), 30)
        district, site, table = STATION_A.split("/")
        settings = UplinkSettings(url=[f"mqtt://127.0.0.1:{a.port}", f"mqtt://127.0.0.1:{b.port}"], device_id=DEVICE,
                                  district=district, site=site, table=table, username=USER, password=PASSWORD,
                                  backoff_min_s=0.2, backoff_max_s=1.0, stable_after_s=2.0)
        store = Store(tmp_path / "kiosk")
        uplink = Uplink(store, settings, on_command=lambda c: None)
        uplink.start()
        total = 0
        for burst in range(10):
            _append(store, total + 1, 15)
            total += 15
            uplink.wake()
            time.sleep(0.3)
            if burst == 5:
                b.kill()  # the node holding the receiver's queue
        b.start()
        t0 = time.monotonic()
        assert rx.wait_complete(total, 60), rx.log_path.read_text()[-3000:]
        took = time.monotonic() - t0
        _exactly_once(db, total)
        asked = rx.log_path.read_text().count("to resend")
        with capsys.disabled():
            print(f"\nRabbitMQ 2-node cluster, queue node SIGKILLed: {total}/{total} exactly once, "
                  f"{took:.1f} s after the node was back ({asked} resend requests; cluster set-up {setup_s:.0f} s)")
    finally:
        if uplink is not None:
            uplink.stop()
        if store is not None:
            store.close()
        if rx is not None and rx.proc is not None:
            rx.stop()
        b.remove()
        a.remove()
