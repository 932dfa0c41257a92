"""The kiosk process SIGKILLed at random points: after restart every record arrives."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from firmware_app.store import Store
from tests.broker import ROOT, STATION_A, Collector, password_broker  # noqa: F401 - fixture
from tests.store_fixtures import in_tube_order

TRIALS = 24
PER_RUN = 60


def _spawn(data_dir, port, total):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.uplink_child", str(data_dir), str(port), str(PER_RUN), str(total)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


@pytest.mark.timeout(240)
def test_sigkill_at_random_points_loses_nothing(password_broker, tmp_path):
    rng = random.Random(4)
    collector = Collector(password_broker.port, f"swab/v1/{STATION_A}/#")
    data = tmp_path / "kiosk"
    total = TRIALS * PER_RUN // 2  # later runs only drain, so kills also hit the sending phase
    acknowledged_by_store = 0
    try:
        for trial in range(TRIALS):
            child = _spawn(data, password_broker.port, total)
            first = child.stdout.readline()  # the child is up and appending
            time.sleep(rng.uniform(0.0, 0.25))
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()
            child.wait(10)
            lines = [first] + rest.splitlines()
            appended = [int(x.split()[1]) for x in lines if x.startswith("APPENDED")]
            acknowledged_by_store = max([acknowledged_by_store, *appended])
        child = _spawn(data, password_broker.port, total)  # and now let it finish
        out, _ = child.communicate(timeout=120)
        assert "DONE" in out
        with Store(data, read_only=True) as store:
            stored = {r["record_id"]: r for r in store.iter_records()}
            assert store.stats()["backlog"] == 0
        # every record the kiosk ever confirmed as stored is stored
        assert max(r["seq"] for r in stored.values()) >= acknowledged_by_store
        assert sorted(r["seq"] for r in stored.values()) == list(range(1, len(stored) + 1))
        assert collector.wait_for(lambda c: {r["record_id"] for r in c.records()} >= set(stored), 60)
        received = collector.records()
        # duplicates only as the same record: identical content under one record_id
        by_id = defaultdict(list)
        for r in received:
            by_id[r["record_id"]].append(r)
        assert set(by_id) == set(stored)
        assert all(all(copy == stored[rid] for copy in copies) for rid, copies in by_id.items())
        assert in_tube_order(received)
        # the broker told the district each time the kiosk vanished (last will)
        offline = [m for m in collector.messages if m[0].endswith("/availability") and m[1] == b"offline"]
        assert len(offline) >= TRIALS // 2
        dups = len(received) - len(by_id)
        print(f"\n{TRIALS} SIGKILLs: {len(stored)} records, {dups} duplicate deliveries (same record_id)")
    finally:
        collector.close()
