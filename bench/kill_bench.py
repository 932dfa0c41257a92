"""Kill test: SIGKILL the kiosk at a random instant while people are being registered,
restart it, and count the people the volunteer saw accepted that never reach the broker.

Each trial, for each stack, in a fresh data directory with its own device id (MQTT
session and record ids): start ``bench.kiosk_child`` (ours or naive), wait for READY,
let it register for a random 0.05-1.5 s, SIGKILL it. Accepted = the ``OK <record_id>``
lines it printed before dying. Ours is then restarted on the same data directory
(``drain``) until its outbox is empty; the naive stack has nothing to resend after a
restart (its queue was in paho's memory), so it is not. A district collector (QoS 1,
persistent session, subscribed before the trial) counts what arrived.

Offline trials (beside, not in the issue's figures): the same, with the broker
unreachable while the kiosk registers (a site whose link is down) and back for the
restart. The naive stack's queue then holds every record accepted since the link went.
After each naive kill its database is opened again: ``naive_db_unreadable`` counts
the files a kill left damaged (SQLite as it comes: bench/naive_store.py).

A child's stderr is dropped; set BENCH_CHILD_STDERR=FILE to keep it when a trial fails.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

from bench.common import ROOT, start_broker
from tests.broker import Collector

USER = "bench/kill/t01"
ARRIVAL_TIMEOUT_S = 30.0


def _child(*args: str) -> tuple[subprocess.Popen, list[str], threading.Thread, threading.Event]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "bench.kiosk_child", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=open(os.environ.get("BENCH_CHILD_STDERR", os.devnull), "a"), text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("READY") or line.startswith("DONE"):
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, lines, reader, ready


def _run_and_kill(mode: str, workdir: str, port: int, device_id: str, seed: int, delay: float,
                  offline: bool = False) -> list[str]:
    extra = ["offline"] if offline and mode == "naive" else []
    proc, lines, reader, ready = _child(mode, workdir, str(port), device_id, str(seed), *extra)
    if not ready.wait(60) or proc.poll() is not None:
        proc.kill()
        raise RuntimeError(f"{mode} kiosk did not start: {lines[-3:]}")
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    reader.join(10)
    return [line.split()[1] for line in lines if line.startswith("OK ")]


def _drain(workdir: str, port: int, device_id: str) -> None:
    proc, lines, reader, ready = _child("drain", workdir, str(port), device_id)
    try:
        proc.wait(150)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(10)
    if "DONE" not in lines:
        raise RuntimeError(f"restarted kiosk did not empty its outbox: {lines[-3:]}")


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _naive_db_readable(workdir: str) -> bool:
    from bench.naive_store import NaiveStore

    path = os.path.join(workdir, "naive.db")
    if not os.path.exists(path):
        return False
    naive = NaiveStore(path)
    try:
        return naive.readable()
    finally:
        naive.close()


def measure(trials: int = 50, offline_trials: int = 10, seed: int = 8) -> dict:
    rng = random.Random(seed)
    tag = f"{os.getpid()}-{int(time.time())}"
    out = {f"{what}_{stack}{variant}": 0 for what in ("lost", "accepted", "worst_trial")
           for stack in ("ours", "naive") for variant in ("", "_offline")}
    out["naive_db_unreadable"] = 0
    with tempfile.TemporaryDirectory() as d:
        broker = start_broker(os.path.join(d, "broker"))
        collector = Collector(broker.port, f"swab/v1/{USER}/records", client_id=f"bench-kill-{tag}")
        try:
            for trial in range(trials + offline_trials):
                offline = trial >= trials
                variant = "_offline" if offline else ""
                delay = rng.uniform(0.05, 1.5)
                for stack in ("ours", "naive"):
                    device_id = f"kt-{stack}{'-offline' if offline else ''}-{tag}-{trial:03d}"
                    workdir = os.path.join(d, device_id)
                    port = _closed_port() if offline else broker.port
                    ok = _run_and_kill(stack, workdir, port, device_id, 1000 * trial + 1, delay, offline)
                    if stack == "ours":
                        _drain(workdir, broker.port, device_id)  # restarted with the broker reachable
                    else:
                        out["naive_db_unreadable"] += not _naive_db_readable(workdir)
                    want = set(ok)

                    def arrived(c, want=want):
                        return want <= {r["record_id"] for r in c.records()}

                    # ours: everything must arrive; naive: wait as long, then count what did
                    collector.wait_for(arrived, ARRIVAL_TIMEOUT_S if stack == "ours" else 2.0)
                    missing = len(want - {r["record_id"] for r in collector.records()})
                    out[f"lost_{stack}{variant}"] += missing
                    out[f"accepted_{stack}{variant}"] += len(want)
                    out[f"worst_trial_{stack}{variant}"] = max(out[f"worst_trial_{stack}{variant}"], missing)
        finally:
            collector.close()
            broker.kill()
    return {"trials": trials, "offline_trials": offline_trials, **out}

if __name__ == "__main__":
    import json

    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(measure(*args), indent=1))
