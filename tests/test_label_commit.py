"""A step that stores records and prints a label makes ONE durable write (the kiosk, end to end)."""

from __future__ import annotations

import os

import pytest

from firmware_app import config
from firmware_app.daemon import Kiosk
from firmware_app.sdnotify import Notifier
from firmware_app.simulate import LIVE_CAMERA, Tracker, present, step, wait_devices
from firmware_app.store import Store
from hw_mocks.table import Table

pytestmark = pytest.mark.timeout(60)


def test_a_labelled_step_is_one_durable_write_and_its_label_survives_a_restart(tmp_path, monkeypatch):
    table = Table(tmp_path / "table", devices=("idcard", "scanner", "printer")).start()
    data = str(tmp_path / "data")
    cfg = config.parse_text(table.station_file(data, poll_ms=50, camera_fps=20))
    kiosk = Kiosk(cfg, use_ui=False, notifier=Notifier({}), device_overrides=LIVE_CAMERA)
    kiosk.start()
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

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
        monkeypatch.setattr(os, "fsync", fsync)
        # the 10th person fills tube 1: closed, tube 2 opened, its label queued — all in one step
        assert present(table, tracker, table.people.person(via="card")) == "ok"
        monkeypatch.setattr(os, "fsync", real_fsync)
        tube2 = kiosk.runtime.snapshot["tube"]["id"]
        ours = [p for p in synced if p.startswith(data)]
        assert len(ours) == 2 and ours[0].endswith(".json.tmp"), ours  # one segment replace: file + directory
        assert [p["ref"] for p in kiosk.store.get_meta("pending_labels")] == [tube2]
    finally:
        monkeypatch.setattr(os, "fsync", real_fsync)
        kiosk.stop()
        table.stop()
    with Store(data) as store:  # restarted: the tube's record and its unprinted label are both there
        assert [p["ref"] for p in store.get_meta("pending_labels")] == [tube2]
        assert any(r["kind"] == "tube_open" and r.get("tube_id") == tube2 for r in store.iter_records())
