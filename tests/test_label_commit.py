"""A step that stores records and prints a label makes ONE durable write (the kiosk, end to end)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from firmware_app import config
from firmware_app.daemon import Kiosk
from firmware_app.sdnotify import Notifier
from firmware_app.simulate import LIVE_CAMERA, Tracker, present, step, wait_devices
from firmware_app.store import Store
from hw_mocks.table import Table

pytestmark = pytest.mark.timeout(60)


class Flushes:
    """strace attached to this very process, counting fsync/fdatasync calls with the path of
    the file each flushed (SQLite's flushes happen in C: no Python hook sees them)."""

    def __init__(self, log_path) -> None:
        self.log = log_path
        self.proc = subprocess.Popen(["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(log_path),
                                      "-p", str(os.getpid())], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.path.exists(log_path):
            time.sleep(0.05)
        time.sleep(0.5)  # attached to every thread

    def stop(self) -> list[str]:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        return [m.group(1) for m in re.finditer(r"(?:fsync|fdatasync)\(\d+<([^>]*)>", self.log.read_text())]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (bin/bootstrap --test installs it)")
def test_a_labelled_step_is_one_durable_write_and_its_label_survives_a_restart(tmp_path):
    table = Table(tmp_path / "table", devices=("idcard", "scanner", "printer")).start()
    data = str(tmp_path / "data")
    cfg = config.parse_text(table.station_file(data, poll_ms=50, camera_fps=20))
    kiosk = Kiosk(cfg, use_ui=False, notifier=Notifier({}), device_overrides=LIVE_CAMERA)
    kiosk.start()
    try:
        tracker = Tracker(kiosk.runtime)
        wait_devices(kiosk, ["idcard", "scanner", "printer"])
        step(table, tracker, table.sign_in, "sign in")
        assert present(table, tracker, table.people.person(via="card")) == "ok"  # tube 1, label 1
        assert len(table.printer.wait_for(1)) == 1
        assert kiosk.runtime.wait_for(lambda s: s["labels_waiting"] == 0, 10)
        table.printer.paper_out()  # the label of the next tube waits: nothing else writes meanwhile
        for _ in range(8):
            assert present(table, tracker, table.people.person(via="scanner")) == "ok"
        flushes = Flushes(tmp_path / "strace.log")
        # the 10th person fills tube 1: closed, tube 2 opened, its label queued — all in one step
        assert present(table, tracker, table.people.person(via="card")) == "ok"
        ours = [p for p in flushes.stop() if p.startswith(data)]
        tube2 = kiosk.runtime.snapshot["tube"]["id"]
        # one flush: the commit of the WAL (the id marks kept apart in `hwm` were reserved ahead,
        # today's tube and box stems at the day's first record)
        assert ours == [os.path.join(data, "kiosk.db-wal")], ours
        assert [p["ref"] for p in kiosk.store.get_meta("pending_labels")] == [tube2]
    finally:
        kiosk.stop()
        table.stop()
    with Store(data) as store:  # restarted: the tube's record and its unprinted label are both there
        assert [p["ref"] for p in store.get_meta("pending_labels")] == [tube2]
        assert any(r["kind"] == "tube_open" and r.get("tube_id") == tube2 for r in store.iter_records())
