"""First-boot provisioning, the install: stage a complete new /etc/swabkiosk beside the live
one (fsynced), swap it in with one atomic rename, and shred the station file and its secrets
from the FAT boot partition."""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import tempfile
from pathlib import Path

from firmware_app.atomic import fsync_dir
from firmware_app.provision_checks import Supplied, read_source
from firmware_app.provision_layout import FILES_DIR, MAX_SUPPLIED_BYTES, STATION_FILE, Owner, Paths


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
