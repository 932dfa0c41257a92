"""`swabkiosk run --simulate` start to READY=1 on a NOTIFY_SOCKET we listen on.

The clock starts just before the process is spawned (interpreter start and imports
count) and stops when the READY=1 datagram arrives. The kiosk is then stopped with
SIGTERM (as systemd would) and must exit cleanly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT, median


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def once(directory: str, timeout: float = 120.0, data_dir: str | None = None) -> float:
    """One start to READY=1; ``data_dir``: start on that store (e.g. a 30-day one), else a new one."""
    path = os.path.join(directory, "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(timeout)
        env = {**os.environ, "NOTIFY_SOCKET": path, "PYTHONPATH": str(ROOT)}
        env.pop("WATCHDOG_USEC", None)
        cmd = [sys.executable, "-m", "firmware_app", "run", "--simulate", "--data-dir", data_dir or os.path.join(directory, "data"),
               "--ui-port", str(free_port()), "--pace", "3600"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            ready = None
            deadline = time.monotonic() + timeout
            while ready is None and time.monotonic() < deadline:
                data = sock.recv(4096)
                if b"READY=1" in data.split(b"\n"):
                    ready = time.perf_counter() - t0
            if ready is None:
                raise RuntimeError("no READY=1 from run --simulate")
        finally:
            # run installs its SIGTERM handler just after READY: give it that moment
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError("run --simulate did not stop on SIGTERM") from None
        if proc.returncode != 0:
            raise RuntimeError(f"run --simulate exited {proc.returncode}: {err.decode()[-500:]}")
        os.unlink(path)
        return ready


def measure(runs: int = 5) -> dict:
    times = []
    for i in range(runs):
        with tempfile.TemporaryDirectory() as d:
            times.append(once(d))
    return {"runs": [round(t, 3) for t in times], "median_s": round(median(times), 3), "max_s": round(max(times), 3)}


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=1))
