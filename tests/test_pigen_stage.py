"""The pi-gen stage installs with deploy/install.sh, exactly as a technician would on a Pi."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "pi-gen" / "stage-swabkiosk"


def test_stage_scripts_parse_and_are_executable():
    for script in [STAGE / "prerun.sh", STAGE / "00-swabkiosk" / "00-run.sh"]:
        assert os.access(script, os.X_OK), script
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert 'IMG_SUFFIX="-swabkiosk"' in (STAGE / "EXPORT_IMAGE").read_text()


def test_stage_packages_are_the_install_scripts_packages():
    # -nr: pi-gen installs them without recommends, as install.sh does (python3-picamera2
    # would otherwise bring Qt and OpenGL preview windows the kiosk never opens).
    listed = set((STAGE / "00-swabkiosk" / "00-packages-nr").read_text().split())
    wanted = set(subprocess.run(["bash", str(ROOT / "deploy" / "install.sh"), "--print-packages"], capture_output=True, text=True).stdout.split())
    # python3-picamera2 only exists on Raspberry Pi OS, which is what pi-gen builds;
    # the browser is picked by install.sh (chromium-browser or chromium, by release).
    assert listed - wanted == {"python3-picamera2"}
    assert wanted - listed <= {"python3", "systemd", "chromium"}


def test_run_script_copies_this_tree_and_runs_install_sh_in_the_chroot(tmp_path):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    # pi-gen's on_chroot feeds its stdin to bash inside the image; record it instead.
    fake = f'on_chroot() {{ cat > "{tmp_path}/chroot-commands"; }}; export -f on_chroot; ./00-run.sh'
    env = {**os.environ, "ROOTFS_DIR": str(rootfs), "SWABKIOSK_DATA_LABEL": "swabdata"}
    out = subprocess.run(["bash", "-c", fake], cwd=STAGE / "00-swabkiosk", env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    copied = rootfs / "opt" / "swabkiosk" / "src"
    assert (copied / "deploy" / "install.sh").read_bytes() == (ROOT / "deploy" / "install.sh").read_bytes()
    assert (copied / "systemd" / "swabkiosk.service").is_file() and not (copied / ".git").exists()
    commands = (tmp_path / "chroot-commands").read_text()
    assert commands.strip() == 'bash /opt/swabkiosk/src/deploy/install.sh --data-label swabdata'


def run_prerun(tmp_path, arch):
    rootfs = tmp_path / "rootfs"
    script = f'copy_previous() {{ mkdir -p "{rootfs}"; }}; export -f copy_previous; ./prerun.sh'
    env = {**os.environ, "ROOTFS_DIR": str(rootfs)}
    env.pop("ARCH", None)
    if arch is not None:
        env["ARCH"] = arch
    return subprocess.run(["bash", "-c", script], cwd=STAGE, env=env, capture_output=True, text=True, timeout=60)


def test_the_stage_builds_only_the_64_bit_image(tmp_path):
    # pi-gen's build.sh exports ARCH: arm64 on its arm64 branch, armhf on master.
    assert run_prerun(tmp_path, "arm64").returncode == 0
    for arch in ["armhf", None]:
        out = run_prerun(tmp_path, arch)
        assert out.returncode == 1 and "arm64 branch" in out.stderr
    config = (ROOT / "pi-gen" / "config.example").read_text()
    assert "arm64 branch" in config and "IMG_NAME=swabkiosk-arm64" in config


# --------------------------------------------------------- deploy/install.sh's architecture check

def check_arch(tmp_path, dpkg_arch: str) -> subprocess.CompletedProcess:
    """install.sh --check-arch with a dpkg that reports ``dpkg_arch`` (the userland's
    architecture, which is what install.sh asks: not the kernel's)."""
    fake = tmp_path / f"bin-{dpkg_arch}"
    fake.mkdir()
    (fake / "dpkg").write_text(f'#!/bin/sh\n[ "$1" = --print-architecture ] && echo {dpkg_arch}\n')
    (fake / "dpkg").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(ROOT / "deploy" / "install.sh"), "--check-arch"], env=env,
                          capture_output=True, text=True, timeout=30)


def test_install_sh_accepts_64_bit_raspberry_pi_os_and_amd64_for_ci(tmp_path):
    assert check_arch(tmp_path, "arm64").returncode == 0
    amd64 = check_arch(tmp_path, "amd64")
    assert amd64.returncode == 0 and "not a Pi" in amd64.stdout


def test_install_sh_refuses_32_bit_raspberry_pi_os_and_says_why(tmp_path):
    out = check_arch(tmp_path, "armhf")
    assert out.returncode == 1
    for words in ["32-bit", "64-bit Raspberry Pi OS", "cffi, pillow, zxing-cpp", "pyyaml", "piwheels"]:
        assert words in out.stderr, words
    other = check_arch(tmp_path, "i386")
    assert other.returncode == 1 and "unsupported architecture i386" in other.stderr


def test_install_sh_checks_the_architecture_before_it_changes_anything():
    script = (ROOT / "deploy" / "install.sh").read_text()
    body = script[script.index("# --------------------------------------------------------------- Debian packages"):]
    head = script[:script.index("# --------------------------------------------------------------- Debian packages")]
    assert "arch_supported || exit 1" in head and "apt-get" not in head.split("arch_supported || exit 1")[1]
    assert "apt-get install" in body


def test_install_sh_has_no_and_chain_that_set_e_would_not_stop():
    """`a && b` under set -e: a failing `a` does not stop the script (it said "done" after a
    failed udevadm). Only conditions may stand left of && (tests, lookups)."""
    conditions = ("[", "installed ", "available ", "getent ", "$(cd ")
    for number, line in enumerate((ROOT / "deploy" / "install.sh").read_text().splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        for left in code.split("&&")[:-1]:
            left = left.strip().split(";")[-1].strip().lstrip("{(").strip().removeprefix("do ").removeprefix("if ")
            assert left.startswith(conditions) or left.startswith("src=$(cd"), f"install.sh:{number}: {line.strip()}"


def test_install_sh_installs_what_the_units_need():
    packages = subprocess.run(["bash", str(ROOT / "deploy" / "install.sh"), "--print-packages"],
                              capture_output=True, text=True).stdout.split()
    # cage 0.1.4 (bookworm) exits at once without /usr/bin/Xwayland; pyusb needs libusb for usb: printers
    assert {"cage", "xwayland", "libusb-1.0-0", "python3-venv", "espeak-ng", "ca-certificates"} <= set(packages)
