"""First-boot provisioning from a fake FAT boot partition (a tmp dir), run as the real CLI.

The station file is judged by the real validator (`swabkiosk config check`); these
tests prove provisioning installs exactly what it accepts, with the right owners and
modes, and that a broken file changes nothing but the error report.
"""

import base64
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_app.provision import network_dropin, network_problems, volatile

ROOT = Path(__file__).resolve().parents[1]
SERVICE_UID, SERVICE_GID = 4242, 4343  # a service user that is not the one running the tests

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="provisioning chowns files: run the tests as root (CI does)")


def public_key_b64() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def good_station_text(broker: str = "mqtts://10.20.30.40:8883") -> str:
    text = (ROOT / "config" / "station.example.toml").read_text(encoding="utf-8")
    # The example carries the public DEMO keys, which `config check` refuses on a real kiosk.
    for name in ("sampling_code_keys", "operator_keys"):
        text, count = re.subn(rf"^{name} = \[.*\]$", f'{name} = ["{public_key_b64()}"]', text, flags=re.M)
        assert count == 1, name
    return text.replace('"mqtts://broker.dongguan.example:8883"', f'"{broker}"')


SUPPLIED = {
    "mqtt-password": b"s3cret-for-the-broker\n",
    "client.key": b"-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n",
    "client.crt": b"-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n",
    "ca.crt": b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n",
    "volunteers.json": b"[]\n",
}


@pytest.fixture
def kiosk(tmp_path):
    """A fake boot partition and empty /etc, /run, drop-in dirs."""
    dirs = {name: tmp_path / name for name in ("boot", "etc", "run", "screen", "dropin")}
    dirs["boot"].mkdir()
    dirs["etc"] = tmp_path / "etc-root" / "swabkiosk"
    return dirs


def put_on_boot(kiosk, text: str, files: dict[str, bytes] = SUPPLIED) -> None:
    (kiosk["boot"] / "swabkiosk.toml").write_text(text, encoding="utf-8")
    folder = kiosk["boot"] / "swabkiosk"
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def provision(kiosk, command=("firmware_app.provision",)) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", *command, "--no-reload", "--uid", str(SERVICE_UID), "--gid", str(SERVICE_GID)]
    for name in ("boot", "etc", "run", "screen"):
        args += [f"--{name}", str(kiosk[name])]
    args += ["--dropin-dir", str(kiosk["dropin"])]
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)


def config_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "firmware_app", "config", "check", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def snapshot(directory: Path) -> dict:
    if not directory.exists():
        return {}
    return {p.name: (p.read_bytes(), stat.S_IMODE(p.stat().st_mode), p.stat().st_uid) for p in directory.iterdir()}


def mode_owner(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid


BROKEN_EDITS = [
    ('mode = "10"', 'mode = "7"'),  # no such pooling mode
    ('device_id = "gd-dg-0001-t03"', 'device_id = "GD DG 0001"'),  # not a valid device id
    ('target = "usb:0x0416:0x5011"', 'target = "lpt1"'),  # not a printer target
]


def broken_station_text() -> str:
    text = good_station_text()
    for old, new in BROKEN_EDITS:
        assert old in text, old
        text = text.replace(old, new)
    return text


@needs_root
def test_broken_station_file_is_rejected_with_every_problem_and_nothing_installed(kiosk):
    text = broken_station_text()
    put_on_boot(kiosk, text, {k: v for k, v in SUPPLIED.items() if k != "client.key"})  # and one file missing

    verdict = config_check(kiosk["boot"] / "swabkiosk.toml")
    assert verdict.returncode == 1, verdict.stderr  # the shared validator rejects it too

    out = provision(kiosk)
    assert out.returncode == 1, out.stderr
    report = json.loads((kiosk["run"] / "provision-errors.json").read_text(encoding="utf-8"))
    keys = {p["key"] for p in report["problems"]}
    # Every problem, not the first: the three bad values and the missing key file.
    assert {"sampling.mode", "station.device_id", "devices.printer.target", "mqtt.key_file"} <= keys
    for key in keys:
        assert key in out.stderr  # the journal gets the same list
    for p in report["problems"]:
        if p["key"] != "mqtt.key_file":
            assert p["key"] in verdict.stderr  # the same problems `config check` lists
    assert report["level"] == "error" and report["installed"] is False and report["kept_previous"] is False
    assert "未安装" in report["message"] and "not installed" in report["message_en"]
    assert mode_owner(kiosk["run"] / "provision-errors.json") == ("0o640", 0, SERVICE_GID)
    # The page the kiosk browser shows while the daemon cannot start lists the keys too.
    page = (kiosk["screen"] / "provision-errors.html").read_text(encoding="utf-8")
    assert all(key in page for key in keys)

    # Nothing installed, not even a staging directory.
    assert not kiosk["etc"].parent.exists() or list(kiosk["etc"].parent.iterdir()) == []
    assert not (kiosk["dropin"] / "50-network.conf").exists()
    assert (kiosk["boot"] / "swabkiosk.toml").read_text(encoding="utf-8") == text  # left for the technician to fix


@needs_root
def test_good_station_file_is_installed_with_secrets_for_the_service_only(kiosk):
    text = good_station_text()
    put_on_boot(kiosk, text)
    assert config_check(kiosk["boot"] / "swabkiosk.toml").returncode == 0

    out = provision(kiosk)
    assert out.returncode == 0, out.stderr
    etc = kiosk["etc"]
    assert (etc / "swabkiosk.toml").read_text(encoding="utf-8") == text
    assert mode_owner(etc) == ("0o750", 0, SERVICE_GID)
    assert mode_owner(etc / "swabkiosk.toml") == ("0o640", 0, SERVICE_GID)
    for secret in ("mqtt-password", "client.key"):
        assert (etc / secret).read_bytes() == SUPPLIED[secret]
        assert mode_owner(etc / secret) == ("0o600", SERVICE_UID, SERVICE_GID)
    for public in ("client.crt", "ca.crt", "volunteers.json"):
        assert mode_owner(etc / public) == ("0o640", 0, SERVICE_GID)
    assert sorted(p.name for p in etc.iterdir()) == sorted([*SUPPLIED, "swabkiosk.toml"])
    # Gone from the FAT partition, secrets included; no staging directory left behind.
    assert list(kiosk["boot"].iterdir()) == []
    assert [p.name for p in etc.parent.iterdir()] == ["swabkiosk"]
    assert not (kiosk["run"] / "provision-errors.json").exists()
    dropin = (kiosk["dropin"] / "50-network.conf").read_text()
    assert "IPAddressAllow=10.20.30.40\n" in dropin
    # The kiosk browser is told the station's screen port.
    screen = (kiosk["dropin"].parent / "swabkiosk-screen.service.d" / "50-url.conf").read_text()
    assert "Environment=SWABKIOSK_URL=http://127.0.0.1:8080/\n" in screen


@needs_root
def test_broken_update_keeps_the_working_config_byte_for_byte(kiosk):
    put_on_boot(kiosk, good_station_text())
    assert provision(kiosk).returncode == 0
    before = snapshot(kiosk["etc"])
    dropin_before = (kiosk["dropin"] / "50-network.conf").read_bytes()

    put_on_boot(kiosk, broken_station_text(), {})  # a later, broken file (no new secrets)
    out = provision(kiosk)
    assert out.returncode == 1
    assert snapshot(kiosk["etc"]) == before
    assert (kiosk["dropin"] / "50-network.conf").read_bytes() == dropin_before
    report = json.loads((kiosk["run"] / "provision-errors.json").read_text(encoding="utf-8"))
    assert report["kept_previous"] is True and "仍使用原有配置" in report["message"]


@needs_root
def test_update_reuses_installed_secrets_and_clears_the_old_error(kiosk):
    put_on_boot(kiosk, good_station_text())
    assert provision(kiosk).returncode == 0
    put_on_boot(kiosk, broken_station_text(), {})
    assert provision(kiosk).returncode == 1

    # The technician fixes the file; the secrets installed last time are still named.
    new_text = good_station_text().replace('site_name = "莞城体育馆 3号采样台"', 'site_name = "莞城体育馆 4号采样台"')
    put_on_boot(kiosk, new_text, {})
    out = provision(kiosk)
    assert out.returncode == 0, out.stderr
    assert "4号采样台" in (kiosk["etc"] / "swabkiosk.toml").read_text(encoding="utf-8")
    assert (kiosk["etc"] / "client.key").read_bytes() == SUPPLIED["client.key"]
    assert mode_owner(kiosk["etc"] / "client.key") == ("0o600", SERVICE_UID, SERVICE_GID)
    assert not (kiosk["run"] / "provision-errors.json").exists()
    assert not (kiosk["screen"] / "provision-errors.html").exists()


def test_no_station_file_means_nothing_to_do(kiosk):
    out = provision(kiosk)
    assert out.returncode == 0
    assert not kiosk["etc"].exists() and not kiosk["run"].exists()


def test_network_dropin_allows_only_literal_addresses():
    ip_only = {"mqtt": {"url": "mqtts://10.1.2.3:8883"}, "devices": {"printer": {"target": "tcp://192.168.1.50:9100"}}}
    assert "IPAddressAllow=10.1.2.3 192.168.1.50\n" in network_dropin(ip_only)
    by_name = {"mqtt": {"url": "mqtts://broker.example:8883"}}  # finding 10: never "any"
    assert "IPAddressAllow=any" not in network_dropin(by_name) and "IPAddressAllow=" not in network_dropin(
        by_name).replace("# ", "#")
    assert network_problems(by_name) and "allow_networks" in network_problems(by_name)[0]
    with_nets = {"mqtt": {"url": "mqtts://broker.example:8883", "allow_networks": ["10.20.0.0/16"]}}
    assert "IPAddressAllow=10.20.0.0/16\n" in network_dropin(with_nets) and network_problems(with_nets) == []
    offline = {"mqtt": {"url": ""}, "devices": {"printer": {"target": "usb:0x0416:0x5011"}}}
    assert "IPAddressAllow" not in network_dropin(offline).replace("# ", "#")


def test_overlay_root_is_recognised_as_volatile(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 179:2 / / rw,noatime shared:1 - overlay overlayroot rw,lowerdir=/ro\n"
        "30 22 179:3 / /var/lib/swabkiosk rw,noatime shared:9 - ext4 /dev/mmcblk0p3 rw\n"
    )
    assert volatile(Path("/etc/swabkiosk"), mountinfo)
    assert not volatile(Path("/var/lib/swabkiosk/store"), mountinfo)


@needs_root
def test_on_a_read_only_root_the_file_is_applied_but_kept_on_the_boot_partition(kiosk):
    from firmware_app.provision import Owner, Paths, provision as provision_in_process

    text = good_station_text()
    put_on_boot(kiosk, text)
    paths = Paths(kiosk["boot"], kiosk["etc"], kiosk["run"], kiosk["screen"], kiosk["dropin"])
    outcome = provision_in_process(paths, Owner(SERVICE_UID, SERVICE_GID), read_only_root=True)
    assert outcome.installed
    assert (kiosk["etc"] / "swabkiosk.toml").read_text(encoding="utf-8") == text
    # /etc is in RAM: the only lasting copy stays on the card and is applied at every boot.
    assert (kiosk["boot"] / "swabkiosk.toml").is_file() and (kiosk["boot"] / "swabkiosk" / "client.key").is_file()
    report = json.loads((kiosk["run"] / "provision-errors.json").read_text(encoding="utf-8"))
    assert report["level"] == "warning" and report["installed"] is True
    assert any("overlay" in w for w in report["warnings"])


@needs_root
def test_a_missing_volunteer_list_installs_with_a_warning_on_screen(kiosk):
    put_on_boot(kiosk, good_station_text(), {k: v for k, v in SUPPLIED.items() if k != "volunteers.json"})
    out = provision(kiosk)
    assert out.returncode == 0, out.stderr
    assert (kiosk["etc"] / "swabkiosk.toml").is_file() and not (kiosk["etc"] / "volunteers.json").exists()
    report = json.loads((kiosk["run"] / "provision-errors.json").read_text(encoding="utf-8"))
    assert report["level"] == "warning" and report["installed"] is True and report["problems"] == []
    assert any("volunteers.list_file" in w for w in report["warnings"])
    assert "volunteers.list_file" in out.stderr


@needs_root
def test_a_config_directory_that_cannot_be_written_is_reported_not_crashed_on(kiosk):
    kiosk["etc"].parent.write_text("not a directory")  # stands in for a full or read-only /etc
    put_on_boot(kiosk, good_station_text())
    out = provision(kiosk)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    report = json.loads((kiosk["run"] / "provision-errors.json").read_text(encoding="utf-8"))
    assert report["installed"] is False and "cannot write" in report["problems"][0]["message"]
    assert (kiosk["boot"] / "swabkiosk" / "client.key").is_file()  # nothing removed from the card


@needs_root
def test_one_file_named_by_two_settings_is_installed_once_as_a_secret(kiosk):
    text = good_station_text().replace('cert_file = "/etc/swabkiosk/client.crt"', 'cert_file = "/etc/swabkiosk/client.key"')
    put_on_boot(kiosk, text)
    out = provision(kiosk)
    assert out.returncode == 0, out.stderr
    assert mode_owner(kiosk["etc"] / "client.key") == ("0o600", SERVICE_UID, SERVICE_GID)


@needs_root
def test_swabkiosk_provision_is_the_same_step_on_the_command_line(kiosk):
    """`swabkiosk provision`, for a technician re-running first boot by hand."""
    usage = subprocess.run([sys.executable, "-m", "firmware_app", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert "provision" in usage.stdout
    put_on_boot(kiosk, broken_station_text())
    out = provision(kiosk, ("firmware_app", "provision"))
    assert out.returncode == 1 and "sampling.mode" in out.stderr
    assert not kiosk["etc"].exists()
    put_on_boot(kiosk, good_station_text())
    out = provision(kiosk, ("firmware_app", "provision"))
    assert out.returncode == 0, out.stderr
    assert (kiosk["etc"] / "swabkiosk.toml").is_file() and list(kiosk["boot"].iterdir()) == []


# ------------------------------------------------------------- issue 13, findings 7 and 11
def test_secrets_on_the_boot_partition_are_overwritten_before_they_are_unlinked(kiosk, monkeypatch):
    from firmware_app import provision as prov

    put_on_boot(kiosk, good_station_text())
    seen = {}
    real_unlink = os.unlink

    def unlink(path, *a, **kw):  # what each file holds the moment it is unlinked
        p = Path(path)
        if p.is_file() and not p.is_symlink():
            seen[p.name] = p.read_bytes()
        real_unlink(path, *a, **kw)

    monkeypatch.setattr(prov.os, "unlink", unlink)
    prov.remove_from_boot(prov.Paths(boot=kiosk["boot"]))
    assert list(kiosk["boot"].iterdir()) == []
    assert set(seen) == {*SUPPLIED, "swabkiosk.toml"}
    for name, data in seen.items():
        assert data and set(data) == {0}, name  # zeros, as long as the file was


def test_symlinks_and_oversized_files_on_the_boot_partition_are_refused(kiosk, tmp_path):
    from firmware_app import provision as prov

    outside = tmp_path / "etc-shadow"
    outside.write_bytes(b"root:secret\n")
    put_on_boot(kiosk, good_station_text())
    folder = kiosk["boot"] / "swabkiosk"
    (folder / "client.key").unlink()
    (folder / "client.key").symlink_to(outside)
    (folder / "volunteers.json").write_bytes(b" " * (prov.MAX_SUPPLIED_BYTES + 1))
    out = provision(kiosk)
    assert out.returncode != 0
    assert "symbolic links are refused: client.key" in out.stderr
    assert "larger than 4096 KB: volunteers.json" in out.stderr
    assert not kiosk["etc"].exists()
    # the station file itself may not be a link either
    station = kiosk["boot"] / "swabkiosk.toml"
    (tmp_path / "real.toml").write_text(station.read_text())
    station.unlink()
    station.symlink_to(tmp_path / "real.toml")
    assert "symbolic links are refused" in provision(kiosk).stderr
