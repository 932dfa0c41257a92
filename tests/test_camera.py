"""Camera: rendered QR frames -> each decoder -> the exact text; one event per
code shown; unchanged frames are not decoded; the probe never prints payloads."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.camera import REOPEN_S, Camera, Debouncer, FrameScanner, check_source
from drivers.qr_decode import DECODERS, make_decoder
from firmware_app.model import CodeScanned, DeviceStatus
from hw_mocks.camera import frame_set, render_frame, with_noise, write_frames
from tests.media_fixtures import Recorder, collect, frames

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("decoder", DECODERS)
def test_each_decoder_reads_the_exact_payload_of_clean_frames(decoder):
    decode = make_decoder(decoder)
    for frame, payload in frames("clean", 5):
        assert decode(frame) == [payload]


@pytest.mark.parametrize("decoder", DECODERS)
def test_each_decoder_sees_nothing_on_an_empty_table(decoder):
    decode = make_decoder(decoder)
    assert all(decode(frame) == [] for frame, _ in frames("empty", 3))


def test_chinese_payload_comes_back_exactly():
    payload = "SWB1:张三丰|110101199003071234|绿码"
    frame = render_frame(payload, seed=1)
    for decoder in DECODERS:
        assert make_decoder(decoder)(frame) == [payload], decoder


def test_zxing_reads_hard_frames_that_zbar_misses():
    # The reason zxing is the default (full numbers: docs/camera.md).
    hard = frames("low_contrast", 6)
    zx, zb = make_decoder("zxing"), make_decoder("zbar")
    zx_ok = sum(zx(f) == [p] for f, p in hard)
    zb_ok = sum(zb(f) == [p] for f, p in hard)
    assert zx_ok >= 5 and zx_ok > zb_ok


def test_unknown_decoder_and_source_are_refused_clearly():
    with pytest.raises(ValueError, match="zxing"):
        make_decoder("opencv")
    with pytest.raises(ValueError, match="picamera2"):
        check_source("/dev/video0")


def test_debouncer_reports_a_code_once_while_it_stays_in_view():
    d = Debouncer(forget_after=1.5)
    out = []
    for i in range(30):  # 3 s at 10 fps, decoded in most frames only
        out += d.update(["A"] if i % 4 else [], i * 0.1)
    assert out == ["A"]
    assert d.update([], 5.0) == [] and d.update(["A"], 5.1) == ["A"]  # gone a while, back: again


def test_debouncer_reports_the_next_person_but_not_two_phones_flickering():
    d = Debouncer(forget_after=1.5)
    seq = [["A"], ["A"], ["B"], ["B"], ["A"], ["A", "B"], ["B"], ["A"]]
    out = [c for i, codes in enumerate(seq) for c in d.update(codes, i * 0.1)]
    assert out == ["A", "B"]
    assert d.update(["A"], 0.7 + 1.6) == ["A"]  # the first person again, after a pause


def test_unchanged_frames_are_not_decoded_but_keep_the_code_in_view():
    calls = []
    decode = make_decoder("zxing")

    def counting(frame):
        calls.append(1)
        return decode(frame)

    scanner = FrameScanner(counting, recheck_s=1.0)
    code_frames = frames("clean", 1)
    payload = code_frames[0][1]
    # same scene, fresh sensor noise in every frame: still the same scene
    still = [with_noise(code_frames[0][0], seed=s) for s in range(8)]
    empty = [f for f, _ in frames("empty", 3)]
    seq = empty + still + empty
    new = [c for i, f in enumerate(seq) for c in scanner.process(f, i * 0.1)]
    assert new == [payload]
    assert len(calls) == 3  # first empty frame, the code arriving, the code leaving
    assert scanner.frames == len(seq)


def test_a_still_scene_is_decoded_again_after_recheck_s():
    scanner = FrameScanner(make_decoder("zxing"), recheck_s=1.0)
    empty = frames("empty", 1)[0][0]
    for i in range(25):
        scanner.process(empty, i * 0.1)
    assert scanner.decodes == 3  # t=0, 1.0, 2.0


def test_camera_on_a_frame_directory_gives_one_event_for_thirty_frames(tmp_path):
    payload = frames("clean", 1)[0][1]
    moving = [render_frame(payload, seed=s, centre=(500 + 8 * s, 360)) for s in range(10)]
    still = [with_noise(moving[-1], seed=s) for s in range(30)]
    empty = [f for f, _ in frames("empty", 2)]
    write_frames(tmp_path, empty + moving + still + empty, fmt="npy")
    rec = Recorder()
    cam = Camera({"source": f"dir:{tmp_path}", "decoder": "zxing", "fps": 200}, rec)
    cam.start()
    try:
        assert cam.finished.wait(30)
    finally:
        cam.stop()
    assert collect(rec.events, CodeScanned) == [CodeScanned(payload, "camera")]
    assert cam.scanner.frames == 44
    assert DeviceStatus("camera", True, "回放结束 / replay finished") in rec.events


def test_camera_reports_a_missing_directory_once_and_opens_it_when_it_appears(tmp_path):
    frame, payload = frames("clean", 1)[0]
    rec = Recorder()
    cam = Camera({"source": f"dir:{tmp_path}/cam", "fps": 100, "reopen_s": 0.02}, rec)  # [devices.camera] reopen_s
    cam.start()
    try:
        assert rec.wait_for(lambda ev: any(isinstance(e, DeviceStatus) and not e.ok for e in ev))
        write_frames(tmp_path / "new", [frame], fmt="npy")
        (tmp_path / "new").rename(tmp_path / "cam")  # retried several times meanwhile: reported once
        appeared = time.monotonic()
        assert cam.finished.wait(10)
        assert time.monotonic() - appeared < REOPEN_S - 1  # tried again every reopen_s, not every 5 s
    finally:
        cam.stop()
    statuses = collect(rec.events, DeviceStatus)
    assert "frame directory not found" in statuses[0].reason and not statuses[0].ok
    assert statuses[1:] == [DeviceStatus("camera", True, ""),
                            DeviceStatus("camera", True, "回放结束 / replay finished")]
    assert collect(rec.events, CodeScanned) == [CodeScanned(payload, "camera")]


def test_reopen_s_is_a_station_file_key_with_the_old_default():
    from firmware_app import config
    from tests.station_fixtures import STATION_TOML

    base = STATION_TOML.format(mode="10", source="print", box_capacity=50)
    assert config.parse_text(base, allow_demo_keys=True).devices["camera"]["reopen_s"] == REOPEN_S == 5.0
    text = base + '\n[devices.camera]\nsource = "dir:/tmp/frames"\nreopen_s = 0.5\n'
    assert config.parse_text(text, allow_demo_keys=True).devices["camera"]["reopen_s"] == 0.5
    with pytest.raises(config.ConfigError) as bad:
        config.parse_text(text.replace("reopen_s = 0.5", "reopen_s = 0"), allow_demo_keys=True)
    assert "devices.camera.reopen_s" in str(bad.value)


def test_grey_frames_of_any_source_format_replay(tmp_path):
    frame, payload = frames("clean", 1)[0]
    np.save(tmp_path / "a.npy", frame)
    write_frames(tmp_path, [frame], start=1, fmt="pgm")
    rec = Recorder()
    cam = Camera({"source": f"dir:{tmp_path}", "fps": 100}, rec)
    cam.start()
    try:
        assert cam.finished.wait(10)
    finally:
        cam.stop()
    assert cam.scanner.frames == 2
    assert collect(rec.events, CodeScanned) == [CodeScanned(payload, "camera")]


@pytest.mark.parametrize("decoder", DECODERS)
def test_probe_counts_codes_without_printing_them(tmp_path, decoder):
    sets = frame_set("clean", 2, seed=3)
    write_frames(tmp_path, [f for f, _ in sets])
    out = subprocess.run([sys.executable, "-m", "firmware_app", "probe", "camera", f"dir:{tmp_path}",
                          "--decoder", decoder, "--json", "--fps", "50"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["frames"] == 2 and report["decoder"] == decoder
    assert report["codes"] == [{"kind": "SWB1 signed code", "length": len(p)} for _, p in sets]
    for _, p in sets:
        assert p[5:] not in out.stdout and p[5:25] not in out.stdout


@pytest.mark.parametrize("decoder", DECODERS)
def test_signed_personal_code_on_a_phone_is_read_and_verifies(decoder):
    qr = pytest.importorskip("firmware_app.qr")  # the core area's SWB1 format
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    now = 1_795_400_000
    text = qr.issue_personal(key, name="张三丰", id_number="11010519491231002X", phone="13800138000",
                             colour="green", issued_at=now - 60, expires_at=now + 3600)
    keys = qr.Keys(personal={qr.key_id(key.public_key()): key.public_key()})
    frame = frame_set("clean", 1, seed=9, payloads=[text])[0][0]
    [read] = make_decoder(decoder)(frame)
    assert read == text
    code = qr.verify(read, keys, now)
    assert code.name == "张三丰" and code.id_number == "11010519491231002X"


def test_a_colour_frame_is_reported_not_decoded_and_the_camera_carries_on(tmp_path):
    frame, payload = frames("clean", 1)[0]
    np.save(tmp_path / "a.npy", np.stack([frame] * 3, axis=-1))  # wrong, colour frames
    np.save(tmp_path / "b.npy", np.stack([frame] * 3, axis=-1))
    np.save(tmp_path / "c.npy", frame)
    rec = Recorder()
    cam = Camera({"source": f"dir:{tmp_path}", "fps": 100}, rec)
    cam.start()
    try:
        assert cam.finished.wait(10)
    finally:
        cam.stop()
    [error] = [e for e in rec.events if type(e).__name__ == "DeviceError"]
    assert error.device == "camera" and "unusable frame" in error.reason
    assert collect(rec.events, CodeScanned) == [CodeScanned(payload, "camera")]


def test_picamera2_source_uses_the_y_plane_of_a_yuv420_stream(monkeypatch):
    # picamera2 only installs on Raspberry Pi OS: stand in for it at its API
    # (YUV420 arrays are (h * 3/2, w): the Y plane, then U and V).
    import types

    frame, payload = frames("clean", 1)[0]
    calls = {}

    class FakePicamera2:
        def create_video_configuration(self, main, controls):
            calls["config"] = (main, controls)
            return "config"

        def configure(self, config):
            calls["configured"] = config

        def start(self):
            calls["started"] = True

        def capture_array(self, stream):
            chroma = np.full((frame.shape[0] // 2, frame.shape[1]), 128, np.uint8)
            return np.vstack([frame, chroma])

        def stop(self):
            calls["stopped"] = True

        def close(self):
            calls["closed"] = True

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    rec = Recorder()
    cam = Camera({"source": "picamera2", "fps": 50}, rec)
    cam.start()
    try:
        assert rec.wait_for(lambda ev: CodeScanned(payload, "camera") in ev)
    finally:
        cam.stop()
    assert calls["config"] == ({"size": (1280, 720), "format": "YUV420"}, {"FrameRate": 50.0})
    assert calls["stopped"] and calls["closed"]
    assert collect(rec.events, CodeScanned) == [CodeScanned(payload, "camera")]


def test_importing_the_drivers_loads_no_decoder_or_printer_library():
    # the CLI and the daemon's start-up pay for these only when a device is used
    code = ("import sys, drivers.camera, drivers.printer, drivers.escpos_label; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'escpos', 'zxingcpp', 'pyzbar', 'picamera2'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", None]), st.floats(0.01, 3.0)), max_size=60))
def test_debouncer_reports_a_code_exactly_when_it_was_not_seen_for_forget_after(steps):
    d = Debouncer(forget_after=1.5)
    last_seen: dict[str, float] = {}
    t = 0.0
    for code, dt in steps:
        t += dt
        codes = [code] if code else []
        expected = [c for c in codes if c not in last_seen or t - last_seen[c] > 1.5]
        assert d.update(codes, t) == expected
        for c in codes:
            last_seen[c] = t
