"""The kiosk's voice: espeak-ng really speaks (recorded to a WAV file and checked for sound),
long ids are read as their last four digits, and the unsent-records warning is spoken once
per level at the station file's thresholds."""

from __future__ import annotations

import array
import math
import shutil
import time
import wave

import pytest

from firmware_app.model import Command
from firmware_app.runtime import Runtime
from firmware_app.voice import Speaker, speakable


def test_long_ids_are_read_as_their_last_four_digits():
    assert speakable("管 DG032611230007 已关闭") == "管 尾号零零零七 已关闭"
    assert speakable("已封箱 DG-B251123001") == "已封箱 尾号三零零一"
    assert speakable("第7人") == "第7人"


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed: run bin/bootstrap")
def test_a_prompt_is_spoken_out_loud(tmp_path):
    out = tmp_path / "prompt.wav"
    speaker = Speaker(enabled=True, wav=str(out))
    speaker.say("二维码无效：签名无效，管 DG032611230007")
    speaker.wait(timeout=30)
    with wave.open(str(out)) as w:
        assert w.getsampwidth() == 2 and w.getnframes() > w.getframerate() // 2  # over half a second of audio
        samples = array.array("h", w.readframes(w.getnframes()))
        seconds = w.getnframes() / w.getframerate()
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    loud = sum(1 for s in samples if abs(s) > 1000) / len(samples)
    print(f"\nespeak-ng: {seconds:.2f} s, RMS {rms:.0f}, {loud:.0%} of samples above 1000")
    assert rms > 300 and loud > 0.05  # speech, not silence
    assert speaker.said == ["二维码无效：签名无效，管 尾号零零零七"]


class _Quiet(Speaker):
    def __init__(self) -> None:
        super().__init__(enabled=False)


def _sample(seq: int, age_s: float) -> dict:
    at = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(time.time() - age_s))
    return {"schema": "swab.record/1", "record_id": f"gd-dg-0001-t03-{seq:010d}", "seq": seq, "kind": "sample",
            "device_id": "gd-dg-0001-t03", "at": at, "tube_id": "DG032611230001", "name": "张三",
            "id_type": "none", "id_number": "", "phone": "13800000000"}


def test_unsent_records_warn_amber_then_red_and_are_spoken_once_each(tmp_path):
    # a real store whose oldest unsent record gets older step by step (a new, older record is
    # stored first, then the ones before it are acknowledged), and the real runtime's snapshot
    from firmware_app.station import Station
    from firmware_app.store import Store
    from tests.station_fixtures import VOLUNTEERS, make_config

    speaker = _Quiet()
    with Store(tmp_path / "data") as store:
        cfg = make_config()
        rt = Runtime(store, lambda: Station(cfg, VOLUNTEERS), speaker=speaker, unsent_minutes=(15, 60))
        rt.start()
        stored: list[str] = []

        def unsent(age_s):
            """The screen's unsent state once the oldest unsent record is age_s old (None: all sent)."""
            older = list(stored)
            stored.clear()
            if age_s is not None:
                record = _sample(store.last_seq() + 1, age_s)
                store.append([record])
                stored.append(record["record_id"])
            store.ack(older)
            minutes = None if age_s is None else int(age_s // 60)
            assert rt.wait_for(lambda snap: snap.get("unsent", {}).get("oldest_min") == minutes, 10), rt.snapshot
            return rt.snapshot["unsent"]

        try:
            assert unsent(None)["level"] == "ok"
            assert unsent(14 * 60)["level"] == "ok" and speaker.said == []
            warn = unsent(15 * 60 + 5)
            assert warn == {"level": "warn", "oldest_min": 15, "warn_min": 15, "alarm_min": 60}
            unsent(20 * 60)
            assert speaker.said == ["有记录15分钟未上传，请检查网络"]  # once, not every tick
            assert unsent(61 * 60)["level"] == "alarm"
            unsent(90 * 60)
            assert speaker.said[1:] == ["记录已1小时1分钟未上传，请联系技术员"]
            assert unsent(None)["level"] == "ok"  # all sent: the next outage is spoken again
            unsent(16 * 60)
            assert len(speaker.said) == 3
        finally:
            rt.stop()


def test_the_snapshot_carries_the_unsent_age_at_the_station_files_thresholds(tmp_path):
    # a real store whose oldest unsent record is 16.5 minutes old, and the real runtime's snapshot
    import time

    from firmware_app.store import Store
    from firmware_app.station import Station
    from tests.station_fixtures import VOLUNTEERS, make_config

    at = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(time.time() - (16 * 60 + 30)))
    record = {"schema": "swab.record/1", "record_id": "gd-dg-0001-t03-0000000001", "seq": 1, "kind": "sample",
              "device_id": "gd-dg-0001-t03", "at": at, "tube_id": "DG032611230001", "name": "张三",
              "id_type": "none", "id_number": "", "phone": "13800000000"}
    with Store(tmp_path / "data") as store:
        store.append([record])
        cfg = make_config()
        rt = Runtime(store, lambda: Station(cfg, VOLUNTEERS), speaker=_Quiet(), unsent_minutes=(10, 30))
        rt.start()
        try:
            assert rt.snapshot["unsent"] == {"level": "warn", "oldest_min": 16, "warn_min": 10, "alarm_min": 30}
            assert rt.speaker.said == ["有记录16分钟未上传，请检查网络"]
            store.ack([record["record_id"]])
            time.sleep(1.1)  # the screen's count is read at most once a second
            rt.post(Command("close_tube"))  # any step republishes the snapshot
            assert rt.wait_for(lambda snap: snap.get("unsent", {}).get("level") == "ok", 5)
        finally:
            rt.stop()


def test_the_thresholds_are_read_from_the_station_file():
    from firmware_app import config
    from tests.station_fixtures import STATION_TOML

    text = STATION_TOML.format(mode="10", source="print", box_capacity=50)
    cfg = config.parse_text(text + "\n[ui]\nunsent_warn_minutes = 5\nunsent_alarm_minutes = 20\n", allow_demo_keys=True)
    assert (cfg.ui["unsent_warn_minutes"], cfg.ui["unsent_alarm_minutes"]) == (5, 20)
    try:
        config.parse_text(text + "\n[ui]\nunsent_warn_minutes = 0\n", allow_demo_keys=True)
    except config.ConfigError:
        pass
    else:
        raise AssertionError("0 minutes accepted")
