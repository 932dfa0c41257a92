"""Crash-safe file helpers: a directory fsync and an atomic whole-file replace.

Used by the provisioning and pushed-config code, the store's legacy import and
the high-water-mark file's creation. A reader sees the old file or the new
one, never half of one (temp file, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import os

FILE_MODE = 0o600
DIR_MODE = 0o700


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory, so a rename or a new file in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file.

    Raises OSError; the temp file is removed on failure and ``path`` is untouched.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(path) or ".")


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
