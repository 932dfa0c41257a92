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
