"""What the district pushes survives a restart although /etc is read-only for the
service (systemd's ProtectSystem=strict; /etc in RAM on a read-only root): it lives in
the data dir. A file a technician provisions afterwards wins over an older push."""

import contextlib
import json
import os
import re
import resource
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

from firmware_app import daemon, pushed
from firmware_app.sdnotify import Notifier
from hw_mocks.table import Table
from tests.broker import PASSWORDS, STATION_A, Collector, password_broker  # noqa: F401 (fixture)
from tests.push_fixtures import config_args, signed, volunteers_args, with_district_key
from tests.qr_fixtures import STRANGER_KEY
from tests.test_daemon_commands import ROOT, response

pytestmark = pytest.mark.timeout(90)


@contextlib.contextmanager
def read_only(path: Path):
    """Make ``path`` read-only for this process, as ProtectSystem=strict does for /etc.
    Root ignores file modes, so as root a read-only bind mount is used."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)


@pytest.fixture
def provisioned(tmp_path, password_broker):
    """A station file and volunteer list in their own config dir, like /etc/swabkiosk."""
    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{password_broker.port}"
    table = Table(tmp_path / "table", devices=()).start()
    etc = tmp_path / "etc"
    etc.mkdir()
    text = table.station_file(str(tmp_path / "data"), broker=url)
    text = text.replace(str(table.dir / "volunteers.json"), str(etc / "volunteers.json"))
    (etc / "volunteers.json").write_bytes((table.dir / "volunteers.json").read_bytes())
    (etc / "swabkiosk.toml").write_text(with_district_key(text))
    yield etc
    table.stop()


def start(etc: Path, restarted: threading.Event | None = None) -> daemon.Kiosk:
    """What `swabkiosk run --config etc/swabkiosk.toml` builds at start."""
    path = str(etc / "swabkiosk.toml")
    kiosk = daemon.Kiosk(daemon.station_config(path), use_ui=False, notifier=Notifier({}), config_path=path,
                         restart=(restarted or threading.Event()).set)
    kiosk.start()
    return kiosk


def push(collector, name, txn, args):
    collector.client.publish(ROOT + f"cmd/{name}", json.dumps({"txn": txn, "args": args}), qos=1)
    return response(collector, name, txn)


def online(collector):
    return collector.wait_for(lambda c: sum(t == ROOT + "availability" and p == b"online"
                                            for t, p, _ in c.messages) >= 1, 15)


NEW_PEOPLE = [{"cert_id": "DG-V-0009", "name": "王志愿", "expires": "2099-01-01"}]


def test_pushes_survive_a_restart_with_etc_read_only(provisioned, password_broker, tmp_path):
    etc, data = provisioned, tmp_path / "data"
    before = {p.name: p.read_bytes() for p in etc.iterdir()}
    collector = Collector(password_broker.port)
    restarted = threading.Event()
    try:
        with read_only(etc):
            with pytest.raises(OSError):
                (etc / "probe").write_text("x")  # the premise: nothing can be written there
            kiosk = start(etc, restarted)
            try:
                assert online(collector)
                assert push(collector, "push_volunteers", "v1", volunteers_args(NEW_PEOPLE, 1))["ok"] is True
                good = (etc / "swabkiosk.toml").read_text().replace("box_capacity = 50", "box_capacity = 40")
                assert push(collector, "push_config", "c1", config_args(good, 1))["ok"] is True
                assert restarted.wait(5)
            finally:
                kiosk.stop()
            for name in ("volunteers.json", "swabkiosk.toml"):  # private to the service user
                assert os.stat(data / "pushed" / name).st_mode & 0o777 == 0o600
            assert os.stat(data / "pushed").st_mode & 0o777 == 0o700

            kiosk = start(etc)  # the restart systemd does (Restart=always)
            try:
                assert kiosk.cfg.sampling.box_capacity == 40
                assert set(kiosk.runtime.station.volunteers) == {"DG-V-0009"}
            finally:
                kiosk.stop()
        assert {p.name: p.read_bytes() for p in etc.iterdir()} == before  # /etc untouched
    finally:
        collector.close()


def test_a_broken_push_is_refused_with_every_problem_and_the_old_file_stays(provisioned, password_broker, tmp_path):
    collector = Collector(password_broker.port)
    try:
        with read_only(provisioned):
            kiosk = start(provisioned)
            try:
                assert online(collector)
                text = (provisioned / "swabkiosk.toml").read_text()
                broken = text.replace('mode = "10"', 'mode = "15"').replace("box_capacity = 50", "box_capacity = -1")
                refused = push(collector, "push_config", "c1", config_args(broken, 1))
                assert refused["ok"] is False
                problems = refused["data"]["problems"]
                assert len(problems) == 2  # every problem, not the first
                assert any("sampling.mode" in p for p in problems) and any("sampling.box_capacity" in p
                                                                           for p in problems)
                moved = text.replace(str(tmp_path / "data"), str(tmp_path / "elsewhere"))
                refused = push(collector, "push_config", "c2", config_args(moved, 2))
                assert refused["ok"] is False and "store.data_dir" in refused["message"]
            finally:
                kiosk.stop()
        assert not (tmp_path / "data" / "pushed" / "swabkiosk.toml").exists()
        assert daemon.station_config(str(provisioned / "swabkiosk.toml")).sampling.box_capacity == 50
    finally:
        collector.close()


def test_a_file_the_technician_provisions_later_wins_over_an_older_push(provisioned, tmp_path):
    data = str(tmp_path / "data")
    station, people = provisioned / "swabkiosk.toml", provisioned / "volunteers.json"
    text = station.read_text()
    pushed.save_config(data, str(station), text.replace("box_capacity = 50", "box_capacity = 40"))
    from firmware_app import volunteers

    pushed.save_volunteers(data, str(people), volunteers.parse({"volunteers": NEW_PEOPLE}))
    # provisioning again with the very same files (what a read-only root does at every boot) keeps the push
    assert daemon.station_config(str(station)).sampling.box_capacity == 40
    assert set(pushed.load_volunteers(data, str(people))) == {"DG-V-0009"}
    # a new file from the technician: it wins, the push is set aside (kept, not deleted)
    station.write_text(text.replace("box_capacity = 50", "box_capacity = 30"))
    people.write_text(json.dumps({"volunteers": [{"cert_id": "DG-V-0100", "name": "赵志愿", "expires": "2099-01-01"}]}))
    assert daemon.station_config(str(station)).sampling.box_capacity == 30
    assert set(pushed.load_volunteers(data, str(people))) == {"DG-V-0100"}
    assert sorted(os.listdir(Path(data) / "pushed")) == ["swabkiosk.toml.superseded", "volunteers.json.superseded"]


def test_a_push_that_no_longer_validates_is_set_aside_and_the_provisioned_file_used(provisioned, tmp_path):
    data = tmp_path / "data"
    station = provisioned / "swabkiosk.toml"
    pushed.save_config(str(data), str(station), station.read_text())
    target = data / "pushed" / "swabkiosk.toml"
    target.write_text(target.read_text().replace('mode = "10"', 'mode = "15"'))  # e.g. rules changed in an update
    assert daemon.station_config(str(station)).sampling.mode == "10"
    assert (data / "pushed" / "swabkiosk.toml.invalid").is_file() and not target.exists()


def test_a_pushed_list_is_not_set_aside_when_the_kiosk_is_out_of_descriptors(tmp_path):
    """Out of file descriptors is the kiosk's trouble, not the district's list: loading it raises
    (the caller tries again) and the pushed list stays where it is (it was renamed .invalid)."""
    data = tmp_path / "data"
    (data / "pushed").mkdir(parents=True)
    target = data / "pushed" / "volunteers.json"
    target.write_text('{"pushed": {"version": 1}, "volunteers": []}')
    child = textwrap.dedent(f"""
        import errno, os
        from firmware_app import pushed, volunteers  # imported before, as in the running kiosk
        held = []
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as exc:
            assert exc.errno == errno.EMFILE
        try:
            pushed.load_volunteers({str(data)!r}, "")
        except OSError as exc:
            print("raised", errno.errorcode[exc.errno])
        else:
            print("loaded")
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1], preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    assert out.stdout.strip() == "raised EMFILE", out.stderr
    assert sorted(os.listdir(data / "pushed")) == ["volunteers.json"]


def test_doctor_checks_the_file_the_kiosk_runs_and_moves_nothing(provisioned, tmp_path):
    from firmware_app import doctor

    data = tmp_path / "data"
    station = provisioned / "swabkiosk.toml"
    text = station.read_text()
    with socket.socket() as s:  # a broker address nobody answers on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    gone = re.sub(r'url = "mqtt://127.0.0.1:\d+"', f'url = "mqtt://127.0.0.1:{dead}"', text)
    assert gone != text
    pushed.save_config(str(data), str(station), gone)
    checks = {c.name: c for c in doctor.run_checks(str(station))}
    assert checks["config"].status == "ok" and "pushed" in checks["config"].detail
    assert checks["broker"].status == "fail" and str(dead) in checks["broker"].detail
    # a newer provisioned file wins at the next start; doctor says so and leaves the push alone
    station.write_text(text.replace("box_capacity = 50", "box_capacity = 30"))
    checks = {c.name: c for c in doctor.run_checks(str(station))}
    assert "pushed" not in checks["config"].detail and checks["broker"].status == "ok"
    assert (data / "pushed" / "swabkiosk.toml").is_file()


# ------------------------------------------------------------- issue 13, finding 1
def refused_with(collector, name, txn, args, reason):
    answer = push(collector, name, txn, args)
    assert answer["ok"] is False, answer
    assert answer["data"].get("reason") == reason, answer
    return answer


def test_district_pushes_count_only_when_signed_for_this_station_and_newer(provisioned, password_broker, tmp_path):
    """Finding 1: a broker login (district-ops) alone pushed an attacker's volunteer list and
    station file. Each way in is now refused with a reason, and the kiosk keeps working."""
    etc, data = provisioned, tmp_path / "data"
    text = (etc / "swabkiosk.toml").read_text()
    collector = Collector(password_broker.port)  # the district-ops login: it may publish any cmd/
    restarted = threading.Event()
    kiosk = start(etc, restarted)
    try:
        assert online(collector)
        attacker = [{"cert_id": "EVIL-1", "name": "假志愿", "expires": "2099-01-01"}]
        # unsigned, as before this change
        refused_with(collector, "push_volunteers", "a1", {"volunteers": attacker}, "unsigned")
        refused_with(collector, "push_config", "a2", {"config": text.replace("box_capacity = 50", "box_capacity = 9")},
                     "unsigned")
        # signed by a key that is not the district's (e.g. the operator or an attacker key)
        refused_with(collector, "push_volunteers", "a3", volunteers_args(attacker, 5, key=STRANGER_KEY), "unknown_key")
        # the district's signature over another body
        good = signed("volunteers", NEW_PEOPLE, 5)
        head, body, sig = good.split(".")
        other = signed("volunteers", attacker, 5).split(".")[1]
        refused_with(collector, "push_volunteers", "a4", {"volunteers": [f"{head}.{other}.{sig}"]}, "forged")
        # another station's, another site's push
        refused_with(collector, "push_volunteers", "a5", volunteers_args(attacker, 5, device_id="sim-t04"),
                     "other_station")
        refused_with(collector, "push_volunteers", "a6", volunteers_args(attacker, 5, district="dongguan",
                                                                          site="nancheng"), "other_station")
        # expired, and issued far ahead of the kiosk's clock
        refused_with(collector, "push_volunteers", "a7", volunteers_args(attacker, 5, issued_at=1_000_000), "expired")
        refused_with(collector, "push_volunteers", "a8",
                     volunteers_args(attacker, 5, issued_at=int(__import__("time").time()) + 10 * 86400),
                     "not_yet_valid")
        # a config push for volunteers' kind
        refused_with(collector, "push_volunteers", "a9",
                     {"volunteers": [signed("config", text, 5)]}, "wrong_kind")
        assert set(kiosk.runtime.station.volunteers) != {"EVIL-1"}

        # a good one (for the whole site) is taken ...
        assert push(collector, "push_volunteers", "g1", volunteers_args(NEW_PEOPLE, 5, district="dongguan",
                                                                        site="guancheng"))["ok"] is True
        assert set(kiosk.runtime.station.volunteers) == {"DG-V-0009"}
        # ... and neither replayed nor rolled back
        refused_with(collector, "push_volunteers", "r1", {"volunteers": [good]}, "replay")
        refused_with(collector, "push_volunteers", "r2", volunteers_args(attacker, 4), "replay")

        # a signed station file may not change who is trusted, the broker, credentials or paths
        evil_key = qr_pub(STRANGER_KEY)
        cases = {
            "authority.operator_keys": re.sub(r'operator_keys = \[[^]]*\]', f'operator_keys = ["{evil_key}"]', text),
            "authority.district_keys": re.sub(r'district_keys = \[[^]]*\]', f'district_keys = ["{evil_key}"]', text),
            "mqtt.url": re.sub(r'url = "mqtt://127.0.0.1:\d+"', 'url = "mqtt://203.0.113.9:1883"', text),
            "mqtt.password_file": re.sub(r'password_file = "[^"]*"', 'password_file = "/etc/swabkiosk/mqtt.key"',
                                         text),
            "volunteers.list_file": re.sub(r'list_file = "[^"]*"', 'list_file = "/tmp/evil.json"', text),
        }
        for i, (key, changed) in enumerate(cases.items()):
            assert changed != text, key
            answer = refused_with(collector, "push_config", f"l{i}", config_args(changed, 10 + i), "locked")
            assert key in answer["message"], answer
        assert not restarted.is_set() and not (data / "pushed" / "swabkiosk.toml").exists()

        # the kiosk still works: a good station file is taken, and its version kept
        good_cfg = text.replace("box_capacity = 50", "box_capacity = 40")
        assert push(collector, "push_config", "g2", config_args(good_cfg, 20))["ok"] is True
        assert restarted.wait(5)
    finally:
        kiosk.stop()
    kiosk = start(etc)  # after the restart: the old pushes are still replays
    try:
        assert kiosk.cfg.sampling.box_capacity == 40
        refused_with(collector, "push_config", "r3", config_args(text, 20), "replay")
        refused_with(collector, "push_volunteers", "r4", {"volunteers": [good]}, "replay")
    finally:
        kiosk.stop()
        collector.close()


def qr_pub(key):
    from firmware_app import qr

    return qr.public_key_base64(key.public_key())


def test_pushes_are_refused_on_a_plain_mqtt_link_unless_a_test_setup(provisioned, password_broker):
    station = provisioned / "swabkiosk.toml"
    station.write_text(station.read_text().replace('plain_mqtt_pushes = "test setup only"\n', ""))
    collector = Collector(password_broker.port)
    kiosk = start(provisioned)
    try:
        assert online(collector)
        answer = refused_with(collector, "push_volunteers", "p1", volunteers_args(NEW_PEOPLE, 1), "plain_mqtt")
        assert "mqtts://" in answer["message"]
    finally:
        kiosk.stop()
        collector.close()


def test_a_kiosk_without_district_keys_takes_no_push(provisioned, password_broker):
    station = provisioned / "swabkiosk.toml"
    station.write_text(re.sub(r'district_keys = \[[^]]*\]\n', "", station.read_text()))
    collector = Collector(password_broker.port)
    kiosk = start(provisioned)
    try:
        assert online(collector)
        refused_with(collector, "push_volunteers", "k1", volunteers_args(NEW_PEOPLE, 1), "no_district_key")
    finally:
        kiosk.stop()
        collector.close()
