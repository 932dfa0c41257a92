"""A throwaway PostgreSQL (Debian's `postgresql` package) for the district receiver's tests.

    from tests.pg import postgres_url   # session fixture: "postgresql://postgres@127.0.0.1:PORT/postgres"

initdb into a fresh directory owned by the `postgres` user (PostgreSQL refuses to run as root),
pg_ctl start on a free loopback port, no fsync (a test database), stopped at the end. Skips with
the reason when the package is not installed."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.broker import free_port


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def _as_postgres(cmd: list[str], **kw):
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def unavailable() -> str:
    """Why no test PostgreSQL can start here ("" when it can)."""
    if not _bin("initdb") or not _bin("pg_ctl"):
        return "PostgreSQL is not installed (Debian package postgresql; bin/bootstrap --test installs it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e .[test])"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres user to run PostgreSQL as (the postgresql package creates it)"
    return ""


@pytest.fixture(scope="session")
def postgres_url():
    why = unavailable()
    if why:
        pytest.skip(why)
    with postgres_server() as url:
        yield url


@contextlib.contextmanager
def postgres_server():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    base = tempfile.mkdtemp(prefix="swab-pg-")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data = os.path.join(base, "data")
    port = free_port()
    _as_postgres([initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
    _as_postgres([pg_ctl, "-D", data, "-l", os.path.join(base, "log"), "-w", "-t", "30", "-o",
                  f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
                  "start"])
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        yield url
    finally:
        try:
            _as_postgres([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """A new empty database on that server (each test its own)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name
