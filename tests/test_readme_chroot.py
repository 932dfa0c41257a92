"""The README's kiosk command on a machine that has nothing: a bare `debootstrap --variant=minbase
bookworm` root (no python3, no ca-certificates), as root, the tree copied in as a clone would
be. `bin/kiosk-sim` must install what it needs itself (bin/bootstrap), start the kiosk on
simulated devices and answer on its screen's port; run again it must install nothing; a
half-made venv must be made again. Only the kiosk's own packages come in: no test tools.

The bare root is cached by tests/test_install_chroot.py (minbase_tarball); the Debian
packages and Python wheels downloaded inside it are cached between runs too (apt's archive
and pip's cache, bind-mounted), so only the first run fetches them."""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.broker import free_port
from tests.test_install_chroot import CACHE, minbase_tarball, remove_tree, run, timed, unmount_under, unpack

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot need root (CI runs as root)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap missing: bin/bootstrap --test installs it"),
]

ENV = ["/usr/bin/env", "-i", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
CHECKOUT = "/root/swabkiosk"


def in_root(root: Path, script: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["chroot", str(root), *ENV, "bash", "-c", script], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def bare_root(tmp_path_factory):
    base = timed("cached minbase", minbase_tarball)
    root = tmp_path_factory.mktemp("readme") / "root"
    timed("unpack minbase", lambda: unpack(base, root))
    try:
        assert not (root / "usr/bin/python3").exists()  # nothing but the essentials and apt
        shutil.copytree(ROOT, root / CHECKOUT.lstrip("/"), symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.egg-info", "build", ".pytest_cache", ".hypothesis", "var"))
        mounts = {"proc": None, "sys": None, "dev": "/dev", "dev/pts": "/dev/pts",
                  "var/cache/apt/archives": CACHE / "readme-apt-archives", "root/.cache/pip": CACHE / "readme-pip"}
        for point, source in mounts.items():
            (root / point).mkdir(parents=True, exist_ok=True)
            if point == "proc":
                run(["mount", "-t", "proc", "proc", str(root / point)])
            elif point == "sys":
                run(["mount", "-t", "sysfs", "sys", str(root / point)])
            else:
                Path(source).mkdir(parents=True, exist_ok=True)
                run(["mount", "--bind", str(source), str(root / point)])
        (root / "var/cache/apt/archives/partial").mkdir(exist_ok=True)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        # This machine's own network setup, as any machine on its network would have it: a
        # local CA (a TLS-inspecting egress) that ca-certificates adds once bin/bootstrap
        # installs it, and pip's settings (cert = the system bundle).
        local_cas = Path("/usr/local/share/ca-certificates")
        if local_cas.is_dir():
            shutil.copytree(local_cas, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
        if Path("/etc/pip.conf").is_file():
            shutil.copy("/etc/pip.conf", root / "etc/pip.conf")
        # As in any chroot: packages may not start services (mosquitto, if it came in) here.
        (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        yield root
    finally:
        unmount_under(root)
        remove_tree(root)


def start_kiosk(root: Path, log: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(["chroot", str(root), *ENV, "bash", "-c", f"cd {CHECKOUT} && exec bin/kiosk-sim --ui-port {port}"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def screen_answers(proc: subprocess.Popen, log: Path, port: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert proc.poll() is None, f"bin/kiosk-sim exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                if page.status == 200 and b"<html" in page.read(4096).lower():
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"no screen on port {port} after {timeout} s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> int:
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_the_readme_kiosk_command_on_a_bare_bookworm(bare_root, tmp_path):
    root = bare_root
    log, port = tmp_path / "kiosk-sim.log", free_port()
    proc = start_kiosk(root, log, port)
    took = screen_answers(proc, log, port, timeout=900)
    print(f"[readme chroot] bin/kiosk-sim on a bare minbase: screen answered after {took:.1f} s", file=sys.stderr)
    assert stop(proc) == 0, log.read_text()[-4000:]
    text = log.read_text()
    assert "installing Debian packages" in text and "camera down" not in text
    # Only what the kiosk needs: its dependencies, none of the test tools (nor the test-only Debian packages).
    out = in_root(root, f"{CHECKOUT}/.venv/bin/python -m pip list --format=freeze")
    names = {line.split("==")[0].lower() for line in out.stdout.split()}
    assert {"swabkiosk", "numpy", "python-escpos"} <= names and not names & {"pytest", "hypothesis", "playwright"}
    assert in_root(root, "dpkg-query -W chromium mosquitto").returncode != 0

    # Again: nothing to install, and the screen comes up at once.
    start = time.monotonic()
    again = in_root(root, f"cd {CHECKOUT} && bin/bootstrap", timeout=300)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == "", again
    print(f"[readme chroot] bin/bootstrap again: {time.monotonic() - start:.1f} s", file=sys.stderr)

    # A venv an earlier run left half-made (python3-venv was missing: bin/python, no pip) is made again.
    shutil.rmtree(root / CHECKOUT.lstrip("/") / ".venv")
    assert in_root(root, f"cd {CHECKOUT} && python3 -m venv --without-pip .venv").returncode == 0
    log2, port2 = tmp_path / "kiosk-sim-2.log", free_port()
    proc = start_kiosk(root, log2, port2)
    took = screen_answers(proc, log2, port2, timeout=600)
    print(f"[readme chroot] bin/kiosk-sim over a half-made venv: screen answered after {took:.1f} s", file=sys.stderr)
    assert stop(proc) == 0
    assert ".venv is incomplete; making it again" in log2.read_text()
