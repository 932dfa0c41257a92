"""A plain `pip install swabkiosk` (no extras) into a fresh venv runs the kiosk.

Every import on the runtime path must be a declared dependency: numpy was once only in the
[test] extra, and a plain install then failed with "camera down: No module named 'numpy'".
Real pip, real PyPI on the first run; pip's own cache makes later runs quick."""

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

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(900)


def run(args, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory):
    base = tmp_path_factory.mktemp("plain")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build",
                                                             ".pytest_cache", ".hypothesis", "var"))
    venv = base / "venv"
    start = time.monotonic()
    run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)], timeout=800)
    print(f"[plain install] venv + pip install: {time.monotonic() - start:.1f} s", file=sys.stderr)
    # not the working tree: the installed package, from a directory with no source in it
    work = base / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return venv, work, env


def test_no_test_tools_come_with_it(plain_venv):
    venv, work, env = plain_venv
    out = run([str(venv / "bin/python"), "-m", "pip", "list", "--format=freeze"], cwd=work, env=env).stdout.lower()
    names = {line.split("==")[0] for line in out.split()}
    assert {"swabkiosk", "numpy", "python-escpos", "zxing-cpp"} <= names
    assert not names & {"pytest", "hypothesis", "playwright"}
    where = run([str(venv / "bin/python"), "-c", "import firmware_app; print(firmware_app.__file__)"],
                cwd=work, env=env).stdout
    assert where.startswith(str(venv))


def test_simulate_runs_from_a_plain_install(plain_venv):
    venv, work, env = plain_venv
    out = run([str(venv / "bin/swabkiosk"), "simulate", "--people", "3"], cwd=work, env=env, timeout=300)
    assert "camera down" not in out.stdout + out.stderr
    assert "3" in out.stdout


def test_run_simulate_runs_from_a_plain_install(plain_venv):
    """`run --simulate --people 2` serves people, then keeps the screen up until stopped."""
    venv, work, env = plain_venv
    port = free_port()
    proc = subprocess.Popen([str(venv / "bin/swabkiosk"), "run", "--simulate", "--people", "2", "--pace", "0.2",
                             "--ui-port", str(port), "--data-dir", str(work / "sim")], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "end of the queue" in line:
                break
        text = "".join(seen)
        assert "end of the queue" in text, text[-3000:]
        assert "camera down" not in text and "not up" not in text
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
