"""deploy/install.sh in a real Debian bookworm root file system (debootstrap), as CI runs it.

The chroot with the Debian packages already installed is cached as a tarball
(``$SWABKIOSK_TEST_CACHE`` or ``~/.cache/swabkiosk-test``) keyed by the package list, so
only the first run downloads; every run then installs the kiosk into a fresh copy from the
working tree (its wheel plus cached dependency wheels: no PyPI during the install) and
checks the files, users, groups, permissions and enabled units it leaves, then runs it
again to prove it changes nothing the second time.
"""

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "deploy" / "install.sh"
MIRROR = os.environ.get("SWABKIOSK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("SWABKIOSK_TEST_CACHE", Path.home() / ".cache" / "swabkiosk-test"))

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot need root (CI runs as root)"),
    pytest.mark.skipif(shutil.which("debootstrap") is None, reason="debootstrap missing: bin/bootstrap --test installs it"),
]


def run(args, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def timed(label: str, func):
    start = time.monotonic()
    result = func()
    print(f"[install test] {label}: {time.monotonic() - start:.1f} s", file=sys.stderr)
    return result


def unmount_under(path: Path) -> None:
    """install.sh unmounts what it bind-mounted even on failure, but not if it is killed
    (a timeout): never delete a tree with the host's /dev still mounted inside it."""
    prefix = str(path) + "/"
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def remove_tree(path: Path) -> None:
    unmount_under(path)
    # --one-file-system: even a mount we failed to detach is skipped, not emptied.
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def minbase_tarball() -> Path:
    """A bare `debootstrap --variant=minbase bookworm` root (nothing but apt and the essential
    packages: no python3, no ca-certificates), cached; the start of every chroot test."""
    key = hashlib.sha256(f"bookworm minbase {MIRROR}".encode()).hexdigest()[:12]
    tarball = CACHE / f"minbase-bookworm-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(CACHE / f"build-minbase-{key}")
    remove_tree(work)
    try:
        timed("debootstrap", lambda: run(["debootstrap", "--variant=minbase", "bookworm", str(work), MIRROR], timeout=900))
        run(["chroot", str(work), "apt-get", "clean"])
        unmount_under(work)
        run(["tar", "--numeric-owner", "-C", str(work), "-cf", f"{tarball}.part", "."])
        os.rename(f"{tarball}.part", tarball)
    finally:
        remove_tree(work)
    return tarball


def unpack(tarball: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    run(["tar", "--numeric-owner", "-C", str(target), "-xf", str(tarball)])


def prepared_tarball() -> Path:
    """debootstrap bookworm + install.sh --packages-only, cached by the package list."""
    packages = run(["bash", str(INSTALL), "--print-packages"]).stdout
    key = hashlib.sha256(f"bookworm {MIRROR} {packages}".encode()).hexdigest()[:12]
    tarball = CACHE / f"bookworm-{key}.tar"
    if tarball.exists():
        return tarball
    base = minbase_tarball()
    work = Path(CACHE / f"build-{key}")
    remove_tree(work)
    try:
        timed("unpack minbase", lambda: unpack(base, work))
        timed("Debian packages", lambda: run(["bash", str(INSTALL), "--root", str(work), "--packages-only"], timeout=900))
        run(["chroot", str(work), "apt-get", "clean"])
        unmount_under(work)
        run(["tar", "--numeric-owner", "-C", str(work), "-cf", f"{tarball}.part", "."])
        os.rename(f"{tarball}.part", tarball)
    finally:
        remove_tree(work)
    return tarball


def wheelhouse(dest: Path) -> Path:
    """Dependency wheels (cached by pyproject.toml) plus this tree's swabkiosk wheel."""
    # the versions install.sh pins (deploy/constraints.txt): the wheelhouse must hold exactly those
    pins = ROOT / "deploy" / "constraints.txt"
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + pins.read_bytes()).hexdigest()[:12]
    deps = CACHE / f"wheels-{key}"
    if not deps.exists():
        shutil.rmtree(f"{deps}.part", ignore_errors=True)
        run([sys.executable, "-m", "pip", "wheel", "-q", "-c", str(pins), "--wheel-dir", f"{deps}.part", str(ROOT)],
            timeout=900)
        for own in Path(f"{deps}.part").glob("swabkiosk-*.whl"):
            own.unlink()
        os.rename(f"{deps}.part", deps)
    shutil.copytree(deps, dest)
    build = dest.parent / "build"
    shutil.copytree(ROOT, build, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", ".pytest_cache"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(dest), str(build)], timeout=300)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = timed("cached chroot", prepared_tarball)
    target = tmp_path_factory.mktemp("chroot") / "root"
    target.mkdir()
    timed("unpack chroot", lambda: run(["tar", "--numeric-owner", "-C", str(target), "-xf", str(base)]))
    try:
        wheels = wheelhouse(tmp_path_factory.mktemp("wheels") / "wheelhouse")
        command = ["bash", str(INSTALL), "--root", str(target), "--wheelhouse", str(wheels), "--data-label", "swabdata"]
        first = timed("install.sh (fresh)", lambda: run(command, timeout=900))
        # install.sh leaves nothing mounted inside the root it installed into.
        assert str(target) + "/" not in Path("/proc/self/mounts").read_text()
        before = state(target)
        second = timed("install.sh (again)", lambda: run(command, timeout=900))
        yield {"root": target, "first": first, "second": second, "before": before, "after": state(target)}
    finally:
        remove_tree(target)


def state(root: Path) -> dict:
    """What the installer is responsible for: accounts, units, rules, modes and owners."""
    seen = {name: (root / "etc" / name).read_text() for name in ("passwd", "group", "fstab")}
    for rel in ["etc/systemd/system", "etc/udev/rules.d", "etc/swabkiosk", "var/lib/swabkiosk", "opt/swabkiosk/bin"]:
        for path in sorted((root / rel).rglob("*")):
            st = path.lstat()
            link = os.readlink(path) if path.is_symlink() else None
            seen[str(path.relative_to(root))] = (oct(st.st_mode), st.st_uid, st.st_gid, link)
    return seen


def account(root: Path, name: str) -> tuple[list[str], set[str]]:
    passwd = next(line.split(":") for line in (root / "etc/passwd").read_text().splitlines() if line.startswith(name + ":"))
    groups = set()
    for line in (root / "etc/group").read_text().splitlines():
        gname, _, gid, members = line.split(":")
        if name in members.split(",") or gid == passwd[3]:
            groups.add(gname)
    return passwd, groups


def ids(root: Path, name: str, db: str = "passwd") -> int:
    for line in (root / "etc" / db).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise KeyError(name)


def mode_owner(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid


def test_service_users_have_only_the_groups_they_need(installed):
    root = installed["root"]
    passwd, groups = account(root, "swabkiosk")
    assert int(passwd[2]) < 1000 and passwd[6] == "/usr/sbin/nologin" and passwd[5] == "/var/lib/swabkiosk"
    assert groups == {"swabkiosk", "dialout", "video", "lp", "audio"}
    passwd, groups = account(root, "swabkiosk-screen")
    assert int(passwd[2]) < 1000 and "video" in groups
    assert not groups & {"swabkiosk", "dialout", "lp"}  # the browser gets no device or store access


def test_directories_and_files_have_their_owners_and_modes(installed):
    root = installed["root"]
    uid, gid = ids(root, "swabkiosk"), ids(root, "swabkiosk", "group")
    assert mode_owner(root / "var/lib/swabkiosk") == ("0o700", uid, gid)
    assert mode_owner(root / "etc/swabkiosk") == ("0o750", 0, gid)
    for unit in ["swabkiosk.service", "swabkiosk-firstboot.service", "swabkiosk-screen.service"]:
        assert mode_owner(root / "etc/systemd/system" / unit) == ("0o644", 0, 0)
        assert (root / "etc/systemd/system" / unit).read_text() == (ROOT / "systemd" / unit).read_text()
    assert mode_owner(root / "etc/udev/rules.d/70-swabkiosk.rules") == ("0o644", 0, 0)
    assert mode_owner(root / "opt/swabkiosk/bin/kiosk-browser") == ("0o755", 0, 0)
    # The page the browser shows while the daemon does not answer, named by the script.
    assert "/opt/swabkiosk/share/kiosk-waiting.html" in (root / "opt/swabkiosk/bin/kiosk-browser").read_text()
    assert mode_owner(root / "opt/swabkiosk/share/kiosk-waiting.html") == ("0o644", 0, 0)
    assert "LABEL=swabdata /var/lib/swabkiosk ext4" in (root / "etc/fstab").read_text()


def test_units_are_enabled_and_the_kiosk_boots_to_the_screen(installed):
    system = installed["root"] / "etc/systemd/system"
    assert os.readlink(system / "multi-user.target.wants/swabkiosk.service") == "/etc/systemd/system/swabkiosk.service"
    assert (system / "multi-user.target.wants/swabkiosk-firstboot.service").is_symlink()
    assert (system / "graphical.target.wants/swabkiosk-screen.service").is_symlink()
    assert os.readlink(system / "default.target").endswith("graphical.target")


def test_systemd_accepts_the_installed_units_and_scores_the_daemon_at_most_1_5(installed):
    root = installed["root"]
    units = ["swabkiosk.service", "swabkiosk-firstboot.service", "swabkiosk-screen.service"]
    # Real ExecStart binaries (venv, cage) and every referenced unit exist in this root.
    run(["systemd-analyze", "verify", f"--root={root}", *units])
    out = run(["systemd-analyze", "security", "--offline=true", f"--root={root}", "swabkiosk.service"]).stdout
    score = float(out.rsplit("Overall exposure level for swabkiosk.service:", 1)[1].split()[0])
    assert score <= 1.5


def test_the_installed_app_runs_inside_the_chroot(installed):
    root = installed["root"]
    out = run(["chroot", str(root), "/opt/swabkiosk/venv/bin/swabkiosk", "--help"])
    assert "config" in out.stdout
    run(["chroot", str(root), "/opt/swabkiosk/venv/bin/python", "-m", "firmware_app.provision", "--help"])
    # Spoken prompts: espeak-ng has the Mandarin voice the runtime asks for (synthesised to a WAV, no sound card).
    run(["chroot", str(root), "espeak-ng", "-v", "cmn", "-w", "/tmp/prompt.wav", "第7人"])
    wav = (root / "tmp/prompt.wav").read_bytes()
    assert wav[:4] == b"RIFF" and len(wav) > 1000
    # Nothing of the app is writable by the service user (ProtectSystem=strict assumes it).
    venv = root / "opt/swabkiosk/venv"
    assert mode_owner(venv)[1] == 0 and not stat.S_IMODE(venv.stat().st_mode) & 0o022


def test_first_boot_provisioning_works_with_the_real_service_user(installed):
    from tests.test_provision import SUPPLIED, good_station_text

    root = installed["root"]
    boot = root / "boot/firmware"
    (boot / "swabkiosk").mkdir(parents=True)
    (boot / "swabkiosk.toml").write_text(good_station_text(), encoding="utf-8")
    for name, data in SUPPLIED.items():
        (boot / "swabkiosk" / name).write_bytes(data)
    try:
        run(["chroot", str(root), "/opt/swabkiosk/venv/bin/python", "-m", "firmware_app.provision", "--no-reload"])
        uid, gid = ids(root, "swabkiosk"), ids(root, "swabkiosk", "group")
        assert mode_owner(root / "etc/swabkiosk/swabkiosk.toml") == ("0o640", 0, gid)
        assert mode_owner(root / "etc/swabkiosk/client.key") == ("0o600", uid, gid)
        assert not (boot / "swabkiosk.toml").exists()
        assert (root / "etc/systemd/system/swabkiosk.service.d/50-network.conf").is_file()
        assert (root / "etc/systemd/system/swabkiosk-screen.service.d/50-url.conf").is_file()
        # systemd still accepts the units with the drop-ins provisioning wrote.
        run(["systemd-analyze", "verify", f"--root={root}", "swabkiosk.service", "swabkiosk-screen.service"])
    finally:
        system = root / "etc/systemd/system"
        for leftover in [system / "swabkiosk.service.d", system / "swabkiosk-screen.service.d", boot]:
            shutil.rmtree(leftover, ignore_errors=True)
        for path in (root / "etc/swabkiosk").iterdir():
            path.unlink()


def test_running_it_again_changes_nothing(installed):
    assert installed["after"] == installed["before"]
    assert "installing Debian packages" not in installed["second"].stdout
    assert "creating user" not in installed["second"].stdout
    assert installed["after"]["fstab"].count("LABEL=swabdata") == 1
