"""First boot: install the station file a technician put on the SD card's boot partition.

The technician copies ``swabkiosk.toml`` (and, beside it, a ``swabkiosk/`` folder with
the files it names: MQTT password, TLS key and certificates, volunteer list) onto the
FAT boot partition. At boot ``swabkiosk-firstboot.service`` runs
``python -m firmware_app.provision``, which:

1. validates the file with ``firmware_app.config.check_text`` plus checks of its own
   (every file the station file names must be supplied or already installed);
2. on any problem installs nothing, keeps the working config, lists every problem on
   stderr (the journal) and in ``/run/swabkiosk/provision-errors.json`` for the
   kiosk screen, and a standalone page ``/run/swabkiosk-screen/provision-errors.html``
   the browser shows while the daemon cannot run;
3. otherwise stages the new ``/etc/swabkiosk`` in a sibling directory (config 0640
   root:swabkiosk, secrets 0600 owned by the service user), swaps it in with one
   atomic rename, writes the network drop-in for the daemon's IP allow list, and
   removes the station file and its folder from the FAT partition (anyone with a card
   reader can read FAT; only the service may read secrets).

On a read-only root (raspi-config overlay file system) /etc lives in RAM: the file is
applied for this boot but left on the boot partition, and a warning says so.

What the district pushes later lives in the daemon's data dir, never here; a file
installed by this step that differs from the one a push replaced wins over that push
(the daemon compares checksums at start: ``firmware_app.pushed``).
"""

from __future__ import annotations

import argparse
import ctypes
import html
import ipaddress
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from firmware_app.atomic import fsync_dir

STATION_FILE = "swabkiosk.toml"
FILES_DIR = "swabkiosk"  # beside the station file: the files it names, by base name
SERVICE_USER = "swabkiosk"
ERRORS_FILE = "provision-errors.json"
ERRORS_PAGE = "provision-errors.html"
DROPIN = "50-network.conf"
DEFAULT_UI_PORT = 8080

# Keys naming files that are secrets: readable by the service user only (0600).
SECRET_FILE_KEYS = {"password_file", "key_file"}
# What provisioning copies from the FAT partition, at most (a volunteer list of ~40,000 people is
# 4 MB: firmware_app.volunteers.MAX_FILE; a key, certificate or password is a few KB). Bigger
# files, and symbolic links (FAT has none; a link on a prepared card points somewhere else), are refused.
MAX_SUPPLIED_BYTES = 4 * 1024 * 1024
MAX_STATION_BYTES = 256 * 1024  # firmware_app.config.MAX_TEXT
# Files the daemon can do without at first: the district pushes the volunteer list over MQTT.
OPTIONAL_FILE_KEYS = {"volunteers.list_file"}


@dataclass
class Paths:
    boot: Path = Path("/boot/firmware")
    etc: Path = Path("/etc/swabkiosk")
    run: Path = Path("/run/swabkiosk")
    screen: Path = Path("/run/swabkiosk-screen")
    dropin_dir: Path = Path("/etc/systemd/system/swabkiosk.service.d")


@dataclass
class Owner:
    uid: int
    gid: int


@dataclass
class Outcome:
    installed: bool
    problems: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def problem(key: str, line: int | None, message: str) -> dict:
    return {"key": key, "line": line, "message": message}


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def config_problems(text: str) -> list[dict]:
    """Every problem the shared config validator finds (all of them, not the first)."""
    try:
        from firmware_app.config import check_text
    except ImportError:
        return [problem("", None, "配置校验模块未安装，无法检查站点文件 / the config validator is not installed")]
    try:
        found = check_text(text)
    except Exception as exc:  # a validator crash must not install an unchecked file
        return [problem("", None, f"配置校验失败 / the config validator failed: {exc!r}")]
    return [problem(getattr(p, "key", ""), getattr(p, "line", None), getattr(p, "message", str(p))) for p in found]


def file_keys(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, path) for every ``*_file`` string setting, at any depth."""
    found = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            found += file_keys(value, dotted + ".")
        elif key.endswith("_file") and isinstance(value, str) and value:
            found.append((dotted, value))
    return found


def line_of(text: str, dotted: str) -> int | None:
    """Line of ``leaf = ...`` inside the key's table; good enough to point a technician."""
    table, _, leaf = dotted.rpartition(".")
    in_table = table == ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("["):
            in_table = line.strip("[] ") == table
        elif in_table and line.split("=", 1)[0].strip() == leaf:
            return number
    return None


@dataclass
class Supplied:
    target: Path  # where the daemon will read it
    source: Path | None  # on the boot partition; None = keep the installed one
    secret: bool


def referenced_files(text: str, data: dict, paths: Paths) -> tuple[list[Supplied], list[dict], list[str]]:
    """Match each file the station file names to a supplied or installed copy."""
    supplied, problems, warnings = [], [], []
    etc = Path("/etc/swabkiosk")
    for dotted, value in file_keys(data):
        target = Path(value)
        secret = dotted.rpartition(".")[2] in SECRET_FILE_KEYS
        line = line_of(text, dotted)
        if not target.is_absolute():
            problems.append(problem(dotted, line, f"须为绝对路径 / must be an absolute path: {value}"))
            continue
        if target.parent != etc:
            # A system file such as the public CA bundle: used where it is, never copied.
            if secret:
                problems.append(problem(dotted, line, f"密钥文件须放在 {etc}/ 下 / secret files must live in {etc}/"))
            elif not target.exists():
                problems.append(problem(dotted, line, f"文件不存在 / file not found: {value}"))
            continue
        source = paths.boot / FILES_DIR / target.name
        refused = unsafe_source(source, MAX_SUPPLIED_BYTES) or unsafe_source(paths.boot / FILES_DIR, None)
        if refused:
            problems.append(problem(dotted, line, refused))
            continue
        if source.is_file():
            supplied.append(Supplied(paths.etc / target.name, source, secret))
        elif (paths.etc / target.name).is_file():
            supplied.append(Supplied(paths.etc / target.name, None, secret))
        elif dotted in OPTIONAL_FILE_KEYS:
            warnings.append(
                f"{dotted}: 尚无 {target.name}，区里推送名单前志愿者无法签到"
                f" / no {target.name} yet: volunteers cannot sign in until the district pushes the list"
            )
        else:
            problems.append(
                problem(
                    dotted,
                    line,
                    f"缺少文件：请把 {target.name} 放在启动分区的 {FILES_DIR}/ 文件夹中"
                    f" / missing file: put {target.name} in the {FILES_DIR}/ folder on the boot partition",
                )
            )
    # Two settings naming one file get one copy, private if either calls it a secret.
    by_name: dict[str, Supplied] = {}
    for item in supplied:
        if item.target.name in by_name:
            by_name[item.target.name].secret |= item.secret
        else:
            by_name[item.target.name] = item
    return list(by_name.values()), problems, warnings


def unsafe_source(path: Path, limit: int | None) -> str:
    """Why a file on the boot partition may not be used ("" when it may, or is absent)."""
    try:
        st = os.lstat(path)
    except OSError:
        return ""
    import stat

    if stat.S_ISLNK(st.st_mode):
        return f"不接受符号链接 / symbolic links are refused: {path.name}"
    if limit is not None and st.st_size > limit:
        return f"文件过大（上限 {limit // 1024} KB）/ file larger than {limit // 1024} KB: {path.name}"
    return ""


def read_source(path: Path, limit: int) -> bytes:
    """A file on the boot partition, never through a symbolic link, at most ``limit`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(27, f"file larger than {limit // 1024} KB", str(path))  # EFBIG
    return data


# --------------------------------------------------------------------------
# Network allow list for the daemon (systemd IPAddressAllow=)
# --------------------------------------------------------------------------


def remote_hosts(data: dict) -> list[str]:
    """Hosts the daemon must reach: the MQTT broker and a network printer."""
    hosts = []
    url = str(data.get("mqtt", {}).get("url", "") or "")
    if url:
        hosts.append(urlsplit(url).hostname or "")
    target = str(data.get("devices", {}).get("printer", {}).get("target", "") or "")
    if target.startswith("tcp://"):
        hosts.append(urlsplit(target).hostname or "")
    return [h for h in hosts if h]


def allowed_networks(data: dict) -> tuple[list[str], list[str]]:
    """[mqtt] allow_networks as CIDRs, and the entries that are not networks."""
    good, bad = [], []
    for item in data.get("mqtt", {}).get("allow_networks", []) or []:
        try:
            good.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            bad.append(str(item))
    return good, bad


def network_problems(data: dict) -> list[str]:
    """A host name needs [mqtt] allow_networks: its addresses are not known in advance, and the
    allow list is never opened to any address (issue 13, finding 10)."""
    names = [h for h in remote_hosts(data) if not _is_ip(h)]
    good, bad = allowed_networks(data)
    problems = [f"mqtt.allow_networks: 不是网段 / not a network (CIDR): {b}" for b in bad]
    if names and not good:
        problems.append(f"mqtt.allow_networks: {', '.join(sorted(set(names)))} 是主机名，请列出其地址及 DNS 服务器所在网段"
                        f" / is a host name: list the networks its addresses and the DNS server are in "
                        f'(e.g. allow_networks = ["10.20.0.0/16"]), or give the broker by IP address')
    return problems


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def network_dropin(data: dict) -> str:
    """The drop-in widening the unit's localhost-only IP allow list for this station.

    An IP literal is allowed alone. A host name resolves to addresses that may change (and
    needs the DHCP-given DNS server), so the technician names the networks they are in
    (``[mqtt] allow_networks``); the allow list is never ``any``: a kiosk whose daemon could
    reach any address would carry its records (and credentials) wherever a pushed or forged
    name pointed. Resolving at provisioning was rejected: a broker that moves to another
    address would leave the kiosk silently offline until it is provisioned again.
    """
    allow = [h for h in remote_hosts(data) if _is_ip(h)]
    names = [h for h in remote_hosts(data) if not _is_ip(h)]
    networks = allowed_networks(data)[0] if names else []  # only for host names: IPs are allowed alone
    lines = ["# Written by swabkiosk provisioning from /etc/swabkiosk/swabkiosk.toml; do not edit.", "[Service]"]
    if names:
        lines.append(f"# Host names ({', '.join(sorted(set(names)))}): the networks of mqtt.allow_networks.")
    if allow or networks:
        lines.append("IPAddressAllow=" + " ".join(sorted(set(allow)) + sorted(set(networks))))
    else:
        lines.append("# No broker or network printer reachable: localhost only (records wait in the store).")
    return "\n".join(lines) + "\n"


def kiosk_url(data: dict) -> str:
    return f"http://127.0.0.1:{data.get('ui', {}).get('port', DEFAULT_UI_PORT)}/"


def screen_dropin(paths: Paths) -> Path:
    """swabkiosk-screen.service.d beside swabkiosk.service.d: where the browser learns ui.port."""
    return paths.dropin_dir.parent / "swabkiosk-screen.service.d" / "50-url.conf"


def screen_dropin_text(data: dict) -> str:
    return f"# Written by swabkiosk provisioning (ui.port); do not edit.\n[Service]\nEnvironment=SWABKIOSK_URL={kiosk_url(data)}\n"


def current_kiosk_url(paths: Paths) -> str:
    """The URL the browser uses now (the installed station's port), for the errors page."""
    try:
        for line in screen_dropin(paths).read_text().splitlines():
            if line.startswith("Environment=SWABKIOSK_URL="):
                return line.split("=", 2)[2]
    except OSError:
        pass
    return kiosk_url({})


# --------------------------------------------------------------------------
# Installing: stage, fsync, swap in one rename
# --------------------------------------------------------------------------

RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two directories (renameat2 RENAME_EXCHANGE): never a moment
    with no /etc/swabkiosk, never a mix of old and new files."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def write_file(path: Path, data: bytes, mode: int, uid: int, gid: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def stage(paths: Paths, owner: Owner, text: str, supplied: list[Supplied]) -> Path:
    """A complete new config directory beside the live one (same file system)."""
    paths.etc.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{paths.etc.name}.new-", dir=paths.etc.parent))
    os.chown(new, 0, owner.gid)
    os.chmod(new, 0o750)
    write_file(new / STATION_FILE, text.encode(), 0o640, 0, owner.gid)
    for item in supplied:
        data = read_source(item.source, MAX_SUPPLIED_BYTES) if item.source else item.target.read_bytes()
        if item.secret:
            write_file(new / item.target.name, data, 0o600, owner.uid, owner.gid)
        else:
            write_file(new / item.target.name, data, 0o640, 0, owner.gid)
    # Exactly what the new file names: a secret it no longer names goes with the old dir.
    fsync_dir(new)
    return new


def swap_in(paths: Paths, new: Path) -> None:
    if paths.etc.exists():
        exchange(new, paths.etc)
        shutil.rmtree(new, ignore_errors=True)  # now the old config; the new one is in place
    else:
        os.rename(new, paths.etc)
    fsync_dir(paths.etc.parent)


def write_atomic(path: Path, text: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    write_file(tmp, text.encode(), mode, uid, gid)
    os.rename(tmp, path)


def shred(path: Path) -> None:
    """Overwrite a regular file with zeros (fsync) before unlinking it: on FAT the unlinked
    clusters keep their bytes until reused, and anyone with a card reader can read them.
    A symbolic link is unlinked, never written through. (The SD card's controller may still
    keep old copies of remapped blocks: docs/deploy.md says how to deliver secrets.)"""
    st = os.lstat(path)
    import stat

    if stat.S_ISREG(st.st_mode) and st.st_size:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            zeros = bytes(min(st.st_size, 1 << 16))
            left = st.st_size
            while left > 0:
                left -= os.write(fd, zeros[:left])
            os.fsync(fd)
        finally:
            os.close(fd)
    os.unlink(path)


def remove_from_boot(paths: Paths) -> None:
    folder = paths.boot / FILES_DIR
    if folder.is_dir() and not folder.is_symlink():
        for root, dirs, files in os.walk(folder, topdown=False):
            for name in files:
                shred(Path(root) / name)
            for name in dirs:
                sub = Path(root) / name
                sub.unlink() if sub.is_symlink() else sub.rmdir()
        folder.rmdir()
    elif folder.is_symlink():
        folder.unlink()
    shred(paths.boot / STATION_FILE)
    fsync_dir(paths.boot)


def volatile(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """True when ``path`` sits on a RAM-backed file system (overlay root, tmpfs)."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return False
    best, fstype = "", ""
    resolved = str(path.resolve())
    for line in lines:
        fields = line.split()
        mount_point = fields[4]
        sep = fields.index("-")
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, fields[sep + 1]
    return fstype in ("overlay", "tmpfs", "ramfs")


# --------------------------------------------------------------------------
# Telling the technician
# --------------------------------------------------------------------------


def report(paths: Paths, owner: Owner, outcome: Outcome, kept_previous: bool) -> None:
    """Errors for the journal (stderr), the daemon's screen (JSON) and the browser (HTML)."""
    status_json = paths.run / ERRORS_FILE
    page = paths.screen / ERRORS_PAGE
    if outcome.installed and not outcome.warnings:
        status_json.unlink(missing_ok=True)
        page.unlink(missing_ok=True)
        return
    if outcome.installed:
        message = "站点文件已安装，但有需要处理的问题（见下）。"
        message_en = "Station file installed, with something to take care of (below)."
        level = "warning"
    else:
        count = len(outcome.problems)
        kept_zh = "仍使用原有配置" if kept_previous else "本机尚无可用配置，采样台无法工作"
        kept_en = "the previous configuration stays in use" if kept_previous else "this kiosk has no working configuration"
        message = f"启动分区上的站点文件有 {count} 处错误，未安装；{kept_zh}。请修改后重新启动。"
        message_en = f"The station file on the boot partition has {count} problem(s) and was not installed; {kept_en}. Fix it and reboot."
        level = "error"
    doc = {
        "schema": "swabkiosk.provision/1",
        "level": level,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": str(paths.boot / STATION_FILE),
        "installed": outcome.installed,
        "kept_previous": kept_previous,
        "message": message,
        "message_en": message_en,
        "problems": outcome.problems,
        "warnings": outcome.warnings,
        "kiosk_url": current_kiosk_url(paths),
    }
    for p in outcome.problems:
        where = f"{p['key'] or '(file)'}" + (f" line {p['line']}" if p["line"] else "")
        print(f"swabkiosk provision: {where}: {p['message']}", file=sys.stderr)
    for w in outcome.warnings:
        print(f"swabkiosk provision: warning: {w}", file=sys.stderr)
    print(f"swabkiosk provision: {message_en}", file=sys.stderr)
    if not paths.run.exists():
        # As swabkiosk.service's RuntimeDirectory= would make it, so the daemon can read it.
        paths.run.mkdir(parents=True)
        os.chown(paths.run, owner.uid, owner.gid)
        os.chmod(paths.run, 0o750)
    write_atomic(status_json, json.dumps(doc, ensure_ascii=False, indent=1), 0o640, 0, owner.gid)
    paths.screen.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.screen, 0o755)
    write_atomic(page, render_page(doc), 0o644)


def render_page(doc: dict) -> str:
    """A self-contained page for the kiosk browser while the daemon cannot run."""
    rows = "".join(
        f"<tr><td>{html.escape(p['key'] or '')}</td><td>{p['line'] or ''}</td><td>{html.escape(p['message'])}</td></tr>"
        for p in doc["problems"]
    )
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in doc["warnings"])
    return f"""<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<title>swabkiosk: 站点配置 / station configuration</title>
<style>body{{font:22px sans-serif;margin:2em;background:{'#fff4e5' if doc['level'] == 'warning' else '#fde8e8'}}}
table{{border-collapse:collapse}}td{{border:1px solid #999;padding:.3em .6em}}</style>
<h1>{html.escape(doc['message'])}</h1><p>{html.escape(doc['message_en'])}</p>
<p>{html.escape(doc['source'])} — {html.escape(doc['at'])}</p>
<table><tr><td>设置 / key</td><td>行 / line</td><td>问题 / problem</td></tr>{rows}</table>
<ul>{warnings}</ul>
<script>/* Leave for the kiosk page as soon as the daemon answers. */
const kiosk={json.dumps(doc["kiosk_url"])};
setInterval(()=>fetch(kiosk,{{mode:"no-cors"}}).then(()=>location.replace(kiosk),()=>{{}}),5000)</script>
</html>
"""


# --------------------------------------------------------------------------
# The whole step
# --------------------------------------------------------------------------


def provision(paths: Paths, owner: Owner, reload_systemd: bool = False, read_only_root: bool | None = None) -> Outcome:
    station = paths.boot / STATION_FILE
    kept_previous = (paths.etc / STATION_FILE).is_file()
    if not station.is_file() and not station.is_symlink():
        return Outcome(installed=False)
    refused = unsafe_source(station, MAX_STATION_BYTES)
    if refused:
        outcome = Outcome(False, [problem("", None, refused)])
        report(paths, owner, outcome, kept_previous)
        return outcome
    try:
        text = read_source(station, MAX_STATION_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        outcome = Outcome(False, [problem("", None, f"文件不是 UTF-8 编码 / file is not UTF-8: {exc}")])
        report(paths, owner, outcome, kept_previous)
        return outcome
    problems = config_problems(text)
    supplied: list[Supplied] = []
    warnings: list[str] = []
    data: dict = {}
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if not problems:  # the validator reports syntax errors itself; never lose one
            problems.append(problem("", None, f"TOML 语法错误 / TOML syntax error: {exc}"))
    else:
        supplied, file_problems, warnings = referenced_files(text, data, paths)
        problems += file_problems
        problems += [problem("mqtt.allow_networks", line_of(text, "mqtt.allow_networks"), p)
                     for p in network_problems(data)]
    if problems:
        outcome = Outcome(False, problems)
        report(paths, owner, outcome, kept_previous)
        return outcome

    try:
        swap_in(paths, stage(paths, owner, text, supplied))
    except OSError as exc:  # disk full, read-only /etc…: the old config is untouched
        for leftover in paths.etc.parent.glob(f".{paths.etc.name}.new-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        outcome = Outcome(False, [problem("", None, f"无法写入 {paths.etc} / cannot write {paths.etc}: {exc}")])
        report(paths, owner, outcome, kept_previous)
        return outcome
    changed = False
    for dropin, content in [(paths.dropin_dir / DROPIN, network_dropin(data)), (screen_dropin(paths), screen_dropin_text(data))]:
        if not dropin.is_file() or dropin.read_text() != content:
            write_atomic(dropin, content, 0o644)
            changed = True
    if changed and reload_systemd:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
    outcome = Outcome(True, warnings=warnings)
    if read_only_root is None:
        read_only_root = volatile(paths.etc)
    if read_only_root:
        outcome.warnings.append(
            "只读根文件系统（overlay）：配置只在本次启动有效，站点文件保留在启动分区"
            " / read-only root (overlay): configuration lives in RAM until reboot; the station file stays on the boot partition"
        )
    else:
        try:
            remove_from_boot(paths)
        except OSError as exc:  # e.g. boot partition made read-only (raspi-config enable_bootro)
            outcome.warnings.append(
                f"无法从启动分区删除站点文件（含密钥），请手动删除 / could not remove the station file"
                f" (and its secrets) from the boot partition, delete it by hand: {exc.strerror}"
            )
    report(paths, owner, outcome, kept_previous)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="swabkiosk provision", description=__doc__.split("\n\n")[0])
    parser.add_argument("--boot", type=Path, default=Paths.boot, help="boot partition (default %(default)s)")
    parser.add_argument("--etc", type=Path, default=Paths.etc, help="config directory (default %(default)s)")
    parser.add_argument("--run", type=Path, default=Paths.run, help="runtime directory for the errors file")
    parser.add_argument("--screen", type=Path, default=Paths.screen, help="directory of the page the browser shows")
    parser.add_argument("--dropin-dir", type=Path, default=Paths.dropin_dir, help="swabkiosk.service.d directory")
    parser.add_argument("--user", default=SERVICE_USER, help="service user owning the secrets")
    parser.add_argument("--uid", type=int, help="service uid (instead of --user)")
    parser.add_argument("--gid", type=int, help="service gid (instead of --user)")
    parser.add_argument("--no-reload", action="store_true", help="do not run systemctl daemon-reload")
    args = parser.parse_args(argv)
    if args.uid is not None and args.gid is not None:
        owner = Owner(args.uid, args.gid)
    else:
        entry = pwd.getpwnam(args.user)
        owner = Owner(entry.pw_uid, entry.pw_gid)
    paths = Paths(args.boot, args.etc, args.run, args.screen, args.dropin_dir)
    outcome = provision(paths, owner, reload_systemd=not args.no_reload)
    return 0 if outcome.installed or not outcome.problems else 1


if __name__ == "__main__":
    sys.exit(main())
