"""`swabkiosk doctor` on a simulated table: every check passes with every device in
place, and with each device missing in turn the failing line names that device."""

import json
import re
import shutil
import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from hw_mocks.table import ALL_DEVICES, Table
from tests.broker import PASSWORDS, STATION_A, password_broker, pki, tls_broker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(90)


def doctor(station_file):
    out = subprocess.run([sys.executable, "-m", "firmware_app", "doctor", "--config", str(station_file), "--json"],
                         capture_output=True, text=True, timeout=60)
    result = json.loads(out.stdout)
    return out.returncode, {c["name"]: c for c in result["checks"]}


def table_file(tmp_path, broker="", **kw):
    table = Table(tmp_path / "table", **kw).start()
    path = tmp_path / "station.toml"
    path.write_text(table.station_file(str(tmp_path / "data"), broker=broker))
    return table, path


def test_every_check_passes_on_a_complete_table(password_broker, tmp_path):
    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{password_broker.port}"
    table, path = table_file(tmp_path, broker=url)
    try:
        code, checks = doctor(path)
        human = subprocess.run([sys.executable, "-m", "firmware_app", "doctor", "--config", str(path)],
                               capture_output=True, text=True, timeout=60)
    finally:
        table.stop()
    assert code == 0, checks
    for name in ("config", "idcard", "scanner", "printer", "camera", "broker", "disk", "store", "clock"):
        assert checks[name]["status"] in ("ok", "warn"), checks[name]
    assert "login accepted" in checks["broker"]["detail"]
    assert "paper in" in checks["printer"]["detail"]
    # human output: one line per check (a warning adds its fix below it)
    lines = [ln.split() for ln in human.stdout.splitlines() if ln.strip() and not ln.strip().startswith("fix:")]
    assert human.returncode == 0
    assert [ln[1] for ln in lines[:-1]] == list(checks)


@pytest.mark.parametrize("missing", ALL_DEVICES)
def test_a_missing_device_is_named(tmp_path, missing):
    table, path = table_file(tmp_path, devices=tuple(d for d in ALL_DEVICES if d != missing or d == "camera"))
    if missing == "camera":
        shutil.rmtree(table.frames_dir)  # the camera's frames are gone
    try:
        code, checks = doctor(path)
    finally:
        table.stop()
    assert code == 1
    failed = [name for name, c in checks.items() if c["status"] == "fail"]
    assert failed == [missing], checks
    assert checks[missing]["fix"]


def test_printer_out_of_paper_fails_with_the_reason(tmp_path):
    table, path = table_file(tmp_path)
    table.printer.paper_out()
    try:
        code, checks = doctor(path)
    finally:
        table.stop()
    assert code == 1
    assert checks["printer"]["status"] == "fail" and "paper" in checks["printer"]["detail"]


def test_broker_refusing_the_login_fails(password_broker, tmp_path):
    url = f"mqtt://{quote(STATION_A, safe='')}:wrong@127.0.0.1:{password_broker.port}"
    table, path = table_file(tmp_path, broker=url)
    try:
        code, checks = doctor(path)
    finally:
        table.stop()
    assert code == 1
    assert checks["broker"]["status"] == "fail" and "refused" in checks["broker"]["detail"]


def test_an_invalid_station_file_fails_and_skips_the_devices(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text('[station]\ndevice_id = "x"\n')
    code, checks = doctor(path)
    assert code == 1
    assert checks["config"]["status"] == "fail" and "station.district" in checks["config"]["detail"]
    assert checks["idcard"]["status"] == "skip"


def tls_station_file(tmp_path, port, ca, cert, key):
    table = Table(tmp_path / "table").start()
    district, site, desk = STATION_A.split("/")  # the certificates' CN: the broker's login
    text = table.station_file(str(tmp_path / "data")).replace(
        'district = "sim"\nsite = "demo-site"\ntable = "t01"',
        f'district = "{district}"\nsite = "{site}"\ntable = "{desk}"').replace(
        '[mqtt]\nurl = ""',
        f'[mqtt]\nurl = "mqtts://127.0.0.1:{port}"\nca_file = "{ca}"\ncert_file = "{cert}"\nkey_file = "{key}"')
    path = tmp_path / "station.toml"
    path.write_text(text)
    return table, path


@pytest.mark.parametrize("client, ok", [("a", True), ("rogue", False)])
def test_broker_over_tls_with_the_station_certificate(tls_broker, pki, tmp_path, client, ok):
    table, path = tls_station_file(tmp_path, tls_broker.port, pki["ca"], pki[f"{client}_cert"], pki[f"{client}_key"])
    try:
        code, checks = doctor(path)
    finally:
        table.stop()
    broker = checks["broker"]
    if ok:
        assert broker["status"] == "ok" and "TLS verified, login accepted" in broker["detail"]
    else:  # a certificate from another CA: the broker refuses it, in plain words
        assert code == 1 and broker["status"] == "fail" and broker["fix"]
        assert "certificate" in broker["detail"], broker


HAN = re.compile(r"[\u3400-\u9fff]")


def test_every_verdict_is_given_in_zh_cn_first_and_in_english(tmp_path):
    """issue 14 item 3: doctor was English only. Each check now carries detail_zh (and fix_zh)
    from the catalogue; the human output puts the zh-CN words first on the check's line."""
    path = tmp_path / "station.toml"
    path.write_text('[station]\ndevice_id = "x"\n')
    code, checks = doctor(path)
    assert code == 1
    for check in checks.values():
        assert HAN.search(check["detail_zh"]) and check["detail"], check
        assert bool(check["fix"]) == bool(check["fix_zh"]), check
    assert "个问题" in checks["config"]["detail_zh"] and "problem(s)" in checks["config"]["detail"]
    assert "swabkiosk config check" in checks["config"]["fix_zh"]
    assert checks["idcard"]["detail_zh"] == "站点配置文件无效"
    human = subprocess.run([sys.executable, "-m", "firmware_app", "doctor", "--config", str(path)],
                           capture_output=True, text=True, timeout=60)
    line = next(ln for ln in human.stdout.splitlines() if ln.split()[1:2] == ["config"])
    assert line.index("个问题") < line.index("problem(s)")
    assert "项检查未通过" in human.stdout.splitlines()[-1]


# ---------------------------------------------------------------- beside a running kiosk
# The district broker makes the login the client id: a test login beside a running kiosk would
# throw the kiosk off. So doctor reads the kiosk's own connection from its store instead.


def uplink_state(data):
    from firmware_app.store import Store, StoreError

    try:
        with Store(str(data), read_only=True) as store:
            return store.get_meta("uplink") or {}
    except StoreError:  # the kiosk is creating its store
        return {}


def status_json(data) -> dict:
    out = subprocess.run([sys.executable, "-m", "firmware_app", "status", "--data-dir", str(data), "--json"],
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def station_logins(broker) -> int:
    """How many times the station's login connected to the broker (its log, notice level)."""
    return broker.log_path.read_text(errors="replace").count(f" as {STATION_A} ")


def test_doctor_beside_a_running_kiosk_reads_its_connection_and_does_not_log_in(password_broker, tmp_path):
    from firmware_app.catalogue import en
    from tests.test_daemon_restart import start_kiosk, wait_until

    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{password_broker.port}"
    table, path = table_file(tmp_path, broker=url)
    data = tmp_path / "data"  # the station file's data dir: the kiosk's
    kiosk = start_kiosk(data, password_broker, "--pace", "0.5")  # a person every 0.5 s, without end
    try:
        wait_until(lambda: uplink_state(data).get("connected"), 60, kiosk)
        before, logins = uplink_state(data), station_logins(password_broker)
        code, checks = doctor(path)
        # the kiosk was not thrown off: no login of doctor's, the same connection since the same time
        assert station_logins(password_broker) == logins == 1, password_broker.log_path.read_text()
        assert "closing old connection" not in password_broker.log_path.read_text()
        after = uplink_state(data)
        assert after["connected"] is True and after["since"] == before["since"] and after["pid"] == kiosk.pid
        broker = checks["broker"]
        assert broker["status"] == "ok", broker
        assert broker["detail"].startswith("kiosk running: its own connection to mqtt://127.0.0.1:")
        assert "is up since" in broker["detail"] and "login accepted" not in broker["detail"]
        assert broker["detail_zh"].startswith("采样程序正在运行：它自己的连接")
        assert broker["facts"]["kiosk"] == "running" and broker["facts"]["connected"] is True
        assert isinstance(broker["facts"]["waiting"], int)

        password_broker.stop()  # the district broker goes down: the kiosk keeps registering, offline
        wait_until(lambda: uplink_state(data).get("error_en") == en("broker.refused"), 60, kiosk)
        wait_until(lambda: status_json(data)["backlog"] > 0, 30, kiosk)
        code, checks = doctor(path)
        status = status_json(data)
        broker = checks["broker"]
        assert code == 1 and broker["status"] == "fail" and broker["fix"] and broker["fix_zh"]
        raw = f"mqtt://127.0.0.1:{password_broker.port}"  # the raw reason: where it was refused
        assert broker["detail"].startswith("kiosk running: its own connection to mqtt://127.0.0.1:")
        assert "is down (last try " in broker["detail"] and f"{en('broker.refused')} ({raw})" in broker["detail"]
        assert broker["detail_zh"].startswith("采样程序正在运行") and f"（{raw}）" in broker["detail_zh"]
        assert broker["facts"]["connected"] is False and broker["facts"]["error_raw"] == raw
        # the backlog as the store had it while doctor ran (people keep coming: it only grows)
        waiting = broker["facts"]["waiting"]
        assert 0 < waiting <= status["backlog"] + status["backlog_events"]
        assert f"; {waiting} waiting for the broker (doctor did not log in)" in broker["detail"]
    finally:
        kiosk.terminate()
        kiosk.wait(30)
        table.stop()


def test_doctor_on_a_stopped_kiosk_makes_the_test_login(password_broker, tmp_path):
    from tests.test_daemon_restart import start_kiosk, wait_until

    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{password_broker.port}"
    table, path = table_file(tmp_path, broker=url)
    data = tmp_path / "data"
    kiosk = start_kiosk(data, password_broker, "--people", "1")
    try:
        wait_until(lambda: uplink_state(data).get("connected"), 60, kiosk)
        kiosk.terminate()
        assert kiosk.wait(30) == 0
        logins = station_logins(password_broker)
        code, checks = doctor(path)
        broker = checks["broker"]
        assert broker["status"] == "ok" and broker["facts"] == {"kiosk": "stopped"}, broker
        assert broker["detail"] == f"kiosk stopped: test login: mqtt://127.0.0.1:{password_broker.port}: " \
                                   "reachable, login accepted"
        assert broker["detail_zh"].startswith("采样程序未运行：测试登录：")
        deadline = time.monotonic() + 5  # the broker logs the login it took
        while station_logins(password_broker) == logins and time.monotonic() < deadline:
            time.sleep(0.05)
        assert station_logins(password_broker) == logins + 1
        password_broker.stop()
        code, checks = doctor(path)
        assert code == 1 and checks["broker"]["status"] == "fail"
        assert checks["broker"]["detail"].startswith("kiosk stopped: test login: ")
        assert "refused" in checks["broker"]["detail"], checks["broker"]
    finally:
        if kiosk.poll() is None:
            kiosk.kill()
        table.stop()


def test_doctor_beside_a_writer_whose_uplink_has_not_reported_does_not_log_in(password_broker, tmp_path):
    """The store's lock is held (a kiosk starting, before its uplink wrote a state): no login, a warning."""
    from firmware_app.store import Store

    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{password_broker.port}"
    table, path = table_file(tmp_path, broker=url)
    try:
        with Store(str(tmp_path / "data")) as store:  # the writer: holds the lock
            store.set_meta("uplink", {"connected": True, "url": "mqtt://old", "pid": 2**22 + 1})  # a dead run's
            code, checks = doctor(path)
        broker = checks["broker"]
        assert broker["status"] == "warn" and broker["fix"], broker
        assert "kiosk running" in broker["detail"] and "has not reported" in broker["detail"]
        assert broker["facts"]["kiosk"] == "running" and broker["facts"]["connected"] is False
        assert station_logins(password_broker) == 0
        code, checks = doctor(path)  # the writer is gone: the test login
        assert checks["broker"]["detail"].startswith("kiosk stopped: test login: ")
        assert checks["broker"]["status"] == "ok"
        deadline = time.monotonic() + 5  # the broker logs it: the one login of the two runs
        while station_logins(password_broker) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert station_logins(password_broker) == 1
    finally:
        table.stop()


def test_an_empty_store_is_a_warning_to_wait_not_advice_to_repair(tmp_path):
    """A kiosk.db with no schema (a kiosk creating it, or one that never ran) is not damage:
    doctor must not send the technician to `status --repair` (an outside review found it did)."""
    from firmware_app import doctor

    data = tmp_path / "data"
    data.mkdir()
    (data / "kiosk.db").touch()
    (store,) = [c for c in doctor.check_store(str(data)) if c.name == "store"]
    assert store.status == "warn", store
    assert "--repair" not in store.fix + store.fix_zh and "尚未建立" in store.detail_zh, store


def test_an_unusable_volunteer_list_is_a_failure_nobody_can_sign_in(tmp_path):
    """An outside review: with volunteers.json = [] the log said "nobody can sign in" while
    config check said OK and doctor said nothing."""
    from types import SimpleNamespace

    from firmware_app import doctor

    data = tmp_path / "data"
    data.mkdir()
    listed = tmp_path / "volunteers.json"
    cfg = SimpleNamespace(volunteers={"list_file": str(listed)})
    verdicts = {}
    for name, body in (("missing", None), ("not a list", "[]"), ("empty", '{"volunteers": []}')):
        if body is not None:
            listed.write_text(body)
        verdicts[name] = doctor.check_volunteers(cfg, str(data))
    for name, check in verdicts.items():
        assert check.status == "fail" and "nobody can sign in" in check.detail, (name, check)
        assert "没有人能签到" in check.detail_zh and check.fix, (name, check)
