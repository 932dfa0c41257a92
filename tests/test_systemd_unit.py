"""The daemon's systemd unit: what systemd must know, and how exposed it is.

The exposure score comes from the real `systemd-analyze security --offline=true` (Debian
package `systemd`, installed by `bin/bootstrap --test`); CI fails if it rises above 1.5.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_app.daemon import EX_CONFIG
from firmware_app.provision import network_dropin

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "swabkiosk.service"
MAX_EXPOSURE = 1.5


def directives(path: Path) -> dict[str, list[str]]:
    """Unit file directives, every value of repeated ones kept in order."""
    found: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def exposure(*args: str) -> float:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install the Debian package `systemd` (bin/bootstrap --test does)"
    out = subprocess.run([analyze, "security", "--offline=true", *args], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m, f"no overall exposure in systemd-analyze output:\n{out.stdout}\n{out.stderr}"
    return float(m.group(1))


def test_overall_exposure_is_at_most_1_5():
    score = exposure(str(UNIT))
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}: a hardening option was weakened (see docs/deploy.md)"


@pytest.mark.parametrize("broker", ["mqtts://10.20.30.40:8883", "mqtts://broker.example.org:8883"])
def test_exposure_stays_at_most_1_5_with_the_stations_network_dropin(tmp_path, broker):
    """What runs on a kiosk: the unit plus the drop-in provisioning writes for its broker."""
    system = tmp_path / "etc" / "systemd" / "system"
    (system / "swabkiosk.service.d").mkdir(parents=True)
    shutil.copy(UNIT, system / UNIT.name)
    (system / "swabkiosk.service.d" / "50-network.conf").write_text(network_dropin({"mqtt": {"url": broker}}))
    assert exposure(f"--root={tmp_path}", UNIT.name) <= MAX_EXPOSURE


def test_unit_is_a_watched_notify_service_run_by_the_service_user():
    d = directives(UNIT)
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["ExecStart"] == ["/opt/swabkiosk/venv/bin/swabkiosk run --config /etc/swabkiosk/swabkiosk.toml"]
    assert d["WatchdogSec"] and d["Restart"] == ["always"]
    assert d["RestartPreventExitStatus"] == [str(EX_CONFIG)]  # a broken station file is not retried in a loop
    assert int(d["StartLimitBurst"][0]) > 1 and d["StartLimitIntervalSec"]
    assert d["User"] == ["swabkiosk"] and d["Group"] == ["swabkiosk"]
    assert sorted(" ".join(d["SupplementaryGroups"]).split()) == ["audio", "dialout", "lp", "video"]
    assert d["StateDirectory"] == ["swabkiosk"] and d["StateDirectoryMode"] == ["0700"]
    assert d["RuntimeDirectory"] == ["swabkiosk"] and d["UMask"] == ["0077"]
    assert d["ProtectSystem"] == ["strict"]  # writable: the state and runtime directories only


def test_devices_are_closed_except_the_peripherals_classes():
    d = directives(UNIT)
    assert d["DevicePolicy"] == ["closed"]
    allowed = {entry.split()[0] for entry in d["DeviceAllow"]}
    # serial reader + scanner, camera (libcamera: video, media, dma_heap, vchiq), printer (usblp, libusb),
    # spoken prompts (espeak-ng on ALSA: /dev/snd/*, major 116)
    assert allowed == {"char-ttyUSB", "char-ttyACM", "char-video4linux", "char-media", "char-dma_heap", "char-vchiq",
                       "char-usb", "char-usb_device", "char-alsa"}
    assert "PrivateDevices" not in d  # it would hide every real device: see docs/deploy.md


def test_every_unit_and_the_browser_script_are_shipped_and_ordered():
    firstboot = directives(ROOT / "systemd" / "swabkiosk-firstboot.service")
    assert firstboot["ConditionPathExists"] == ["/boot/firmware/swabkiosk.toml"]
    assert "swabkiosk.service" in firstboot["Before"][0].split()
    assert firstboot["ExecStart"] == ["/opt/swabkiosk/venv/bin/python -m firmware_app.provision"]
    screen = directives(ROOT / "systemd" / "swabkiosk-screen.service")
    assert screen["User"] == ["swabkiosk-screen"]  # the browser never runs as the service user
    assert os.access(ROOT / "systemd" / "kiosk-browser", os.X_OK)
    assert subprocess.run(["bash", "-n", str(ROOT / "systemd" / "kiosk-browser")]).returncode == 0


MDWE_IMPORTS = r"""
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X mapping was allowed: MDWE is not in force")
except PermissionError:
    pass
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
key = Ed25519PrivateKey.generate()
key.public_key().verify(key.sign(b"SWB1"), b"SWB1")
import ssl; ssl.create_default_context()
import qrcode, zxingcpp
from pyzbar import pyzbar
image = qrcode.make("SWB1:mdwe").get_image().convert("L")
assert zxingcpp.read_barcodes(image)[0].text == "SWB1:mdwe"
assert pyzbar.decode(image)[0].data == b"SWB1:mdwe"
assert ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)() == 7  # libffi closures (cffi, ctypes callbacks)
import serial, escpos.printer, usb.core, paho.mqtt.client, jsonschema, PIL.Image, numpy
print("ok")
"""


def test_runtime_libraries_work_under_memory_deny_write_execute():
    """MemoryDenyWriteExecute=yes is safe only if nothing the daemon loads needs W+X pages
    (cffi/ctypes callbacks, QR decoders). Linux >= 6.3 enforces the same rule per process
    with prctl(PR_SET_MDWE), so the real libraries are exercised under it here."""
    out = subprocess.run([sys.executable, "-c", MDWE_IMPORTS], capture_output=True, text=True, timeout=120)
    if out.returncode == 77:
        pytest.skip(f"kernel {os.uname().release} has no PR_SET_MDWE (Linux >= 6.3)")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def run_kiosk_browser(tmp_path, **env) -> list[str]:
    """Run systemd/kiosk-browser with a stand-in browser that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "chromium-browser"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/args"\n')
    fake.chmod(0o755)
    base = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "XDG_RUNTIME_DIR": str(tmp_path), "SWABKIOSK_WAIT_S": "2"}
    base["SWABKIOSK_ERRORS_PAGE"] = str(tmp_path / "provision-errors.html")
    out = subprocess.run([str(ROOT / "systemd" / "kiosk-browser")], env={**base, **env}, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return (tmp_path / "args").read_text().splitlines()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kiosk_browser_opens_the_daemons_page_when_it_answers(tmp_path):
    with socket.socket() as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.listen()
        url = f"http://127.0.0.1:{daemon.getsockname()[1]}/"
        args = run_kiosk_browser(tmp_path, SWABKIOSK_URL=url)
    assert args[:2] == ["--kiosk", url]
    assert f"--user-data-dir={tmp_path}/chromium-kiosk" in args  # a fresh profile in RAM


def test_kiosk_browser_says_what_to_check_when_the_daemon_does_not_answer(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/"
    args = run_kiosk_browser(tmp_path, SWABKIOSK_URL=url)
    assert args[:2] == ["--kiosk", f"file:///opt/swabkiosk/share/kiosk-waiting.html#{url}"]
    page = (ROOT / "systemd" / "kiosk-waiting.html").read_text(encoding="utf-8")
    assert "location.hash" in page and "swabkiosk.toml" in page


def test_kiosk_browser_shows_a_rejected_station_file_first(tmp_path):
    (tmp_path / "provision-errors.html").write_text("<h1>errors</h1>")
    args = run_kiosk_browser(tmp_path, SWABKIOSK_URL=f"http://127.0.0.1:{free_port()}/")
    assert args[:2] == ["--kiosk", f"file://{tmp_path}/provision-errors.html"]


def test_the_daemons_home_is_not_on_the_store_partition():
    """The service user's home is its state directory (the store, its own partition with
    --data-label): anything written under $HOME (caches, PulseAudio's cookie) would land
    among the records. The unit points HOME and XDG_CACHE_HOME at the runtime directory."""
    env = {}
    for line in (ROOT / "systemd" / "swabkiosk.service").read_text().splitlines():
        if line.startswith("Environment="):
            env.update(item.split("=", 1) for item in line.split("=", 1)[1].split())
    assert env["HOME"] == "/run/swabkiosk" and env["XDG_CACHE_HOME"].startswith("/run/swabkiosk/")
    assert not env["HOME"].startswith("/var/lib/swabkiosk")



# ------------------------------------------------------------- issue 13, findings 5 and 10
SCREEN_UNIT = ROOT / "systemd" / "swabkiosk-screen.service"
MAX_SCREEN_EXPOSURE = 2.0


def test_the_screen_unit_scores_at_most_2_0_and_reaches_loopback_only():
    score = exposure(str(SCREEN_UNIT))  # 9.2 UNSAFE before
    assert score <= MAX_SCREEN_EXPOSURE, f"screen unit exposure {score} > {MAX_SCREEN_EXPOSURE}"
    d = directives(SCREEN_UNIT)
    assert d["IPAddressDeny"] == ["any"] and d["IPAddressAllow"] == ["localhost"]
    assert d["NoNewPrivileges"] == ["yes"] and d["CapabilityBoundingSet"] == [""]
    assert "MemoryDenyWriteExecute" not in d  # Chromium's JIT needs it off


def test_the_kiosk_unit_has_room_for_descriptors():
    assert int(directives(UNIT)["LimitNOFILE"][0]) >= 4096


def test_the_screen_server_can_tell_who_is_connecting():
    """The screen serves only the daemon's user and the screen user's, asking the kernel per
    connection (sock_diag over AF_NETLINK, else /proc/net/tcp): the units must leave it both."""
    from firmware_app.ui.guard import SCREEN_USER

    d = directives(UNIT)
    assert "AF_NETLINK" in d["RestrictAddressFamilies"][0].split()
    assert "ProcSubset" not in d and "PrivateNetwork" not in d
    assert directives(SCREEN_UNIT)["User"] == [SCREEN_USER]
