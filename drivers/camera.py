"""Camera shell: frames in, one ``CodeScanned(text, "camera")`` per code shown.

The capture part is tiny (``PiCameraSource``: picamera2, imported only on
the Pi; ``DirectorySource``: replays image files for tests, demos and
training). Everything that matters is in ``FrameScanner`` (sans-I/O:
frames and times in, new codes out), tested with the directory source:

* Skip unchanged frames. A 160x90 subsample is compared with the last
  decoded frame; while the scene stands still the last result is reused, so
  an idle table costs a subsample and a compare per frame, not a decode. A
  decode still runs every ``recheck_s`` (a code held still that failed once).
* Debounce. A code is reported when it appears, then not again while it stays
  in view (plus ``forget_after`` seconds of missed frames: a hand moving over
  it). It is reported again only once it has been gone that long. Another code
  appearing does not reset it: with two phones in view the decoder may see
  them in alternate frames, and each re-report would be a same-day duplicate
  for the volunteer to confirm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import drivers
from drivers import said
from drivers.qr_decode import DECODERS, Decoder, make_decoder
from firmware_app.catalogue import both, en, zh
from firmware_app.model import CodeScanned, DeviceError, DeviceStatus, Event

FRAME_SIZE = (1280, 720)
THUMB_STEP = 8  # subsample 1280x720 -> 160x90 for change detection
CHANGE_LEVEL = 20  # grey levels; sensor noise (sigma ~3) stays far below
CHANGE_PIXELS = 14  # changed thumbnail pixels (0.1%) that count as "the scene moved"
IMAGE_SUFFIXES = (".png", ".pgm", ".jpg", ".jpeg", ".bmp", ".npy")
REOPEN_S = 5.0  # default of [devices.camera] reopen_s


class Debouncer:
    """Codes seen per frame -> codes to report (see the module doc)."""

    def __init__(self, forget_after: float = 1.5) -> None:
        self.forget_after = forget_after
        self._seen: dict[str, float] = {}

    def update(self, codes: list[str], t: float) -> list[str]:
        self._seen = {c: s for c, s in self._seen.items() if t - s <= self.forget_after}
        new = [c for c in dict.fromkeys(codes) if c not in self._seen]
        for c in codes:
            self._seen[c] = t
        return new


class FrameScanner:
    """Frames -> new codes, decoding only frames that changed."""

    def __init__(self, decode: Decoder, forget_after: float = 1.5, recheck_s: float = 1.0) -> None:
        self._decode = decode
        self._debouncer = Debouncer(forget_after)
        self._recheck_s = recheck_s
        self._thumb: np.ndarray | None = None
        self._codes: list[str] = []
        self._decoded_at = float("-inf")
        self.frames = 0
        self.decodes = 0
        self.decode_s: list[float] = []  # per decode, for probe and benchmarks

    def process(self, frame: np.ndarray, t: float) -> list[str]:
        self.frames += 1
        thumb = frame[::THUMB_STEP, ::THUMB_STEP].astype(np.int16)
        if (self._thumb is None or t - self._decoded_at >= self._recheck_s
                or np.count_nonzero(np.abs(thumb - self._thumb) > CHANGE_LEVEL) > CHANGE_PIXELS):
            t0 = time.perf_counter()
            self._codes = self._decode(frame)
            self.decode_s.append(time.perf_counter() - t0)
            del self.decode_s[:-1000]
            self.decodes += 1
            self._thumb, self._decoded_at = thumb, t
        return self._debouncer.update(self._codes, t)


class SourceError(OSError):
    """A frame source that cannot open, in words from the catalogue (``words``: zh, en)."""

    def __init__(self, words: tuple[str, str]) -> None:
        super().__init__(said(words))
        self.words = words


class DirectorySource:
    """Image files of a directory in name order, as grey frames."""

    def __init__(self, path: str, loop: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError(both("camera.dir_missing", path=path))
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(both("camera.dir_empty", path=path))
        self.loop = loop
        self._i = 0

    def read(self) -> np.ndarray | None:
        """The next frame, or None when the directory has been played (no loop)."""
        if self._i >= len(self.files):
            if not self.loop:
                return None
            self._i = 0
        p = self.files[self._i]
        self._i += 1
        if p.suffix.lower() == ".npy":
            return np.load(p)
        from PIL import Image

        with Image.open(p) as im:
            return np.asarray(im.convert("L"))

    def close(self) -> None:
        self._i = len(self.files)


class PiCameraSource:
    """The Pi camera via picamera2 (only on Raspberry Pi OS). Grey = the Y plane."""

    def __init__(self, size: tuple[int, int] = FRAME_SIZE, fps: float = 10) -> None:
        from picamera2 import Picamera2  # lazy: not installable off the Pi

        self._cam = Picamera2()
        config = self._cam.create_video_configuration(
            main={"size": size, "format": "YUV420"}, controls={"FrameRate": fps})
        self._cam.configure(config)
        self._cam.start()
        self._h = size[1]

    def read(self) -> np.ndarray:
        return self._cam.capture_array("main")[: self._h]  # blocks until the next frame

    def close(self) -> None:
        self._cam.stop()
        self._cam.close()


def check_source(source: str) -> None:
    if source != "picamera2" and not (source.startswith("dir:") and len(source) > 4):
        raise ValueError(said(both("camera.unknown_source", source=repr(source))))


def open_source(source: str, fps: float, loop: bool = False):
    check_source(source)
    if source == "picamera2":
        return PiCameraSource(fps=fps)
    return DirectorySource(source[4:], loop=loop)


class Camera:
    """Device shell. ``settings`` is ``[devices.camera]``: source, decoder, fps
    (and ``loop = true`` to replay a directory forever, for demos; ``reopen_s``, how
    often a camera that is missing or lost is tried again)."""

    def __init__(self, settings: dict[str, Any], on_event: Callable[[Event], None]) -> None:
        self.source_name = settings.get("source", "picamera2")
        self.fps = float(settings.get("fps", 10))
        self.loop = bool(settings.get("loop", False))
        self.reopen_s = float(settings.get("reopen_s", REOPEN_S))
        check_source(self.source_name)
        self.scanner = FrameScanner(make_decoder(settings.get("decoder", "zxing")))
        self._on_event = on_event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()  # a directory source has been played
        self.heartbeat = time.monotonic()
        self._status: tuple[bool, str] | None = None

    def start(self) -> None:
        self._stop.clear()
        self.finished.clear()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _report(self, ok: bool, words: tuple[str, str] = ("", ""), raw: str = "") -> None:
        if (ok, words[0]) != self._status:  # once per change, not every retry
            self._status = (ok, words[0])
            self._on_event(drivers.status("camera", ok, words, raw))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                source = open_source(self.source_name, self.fps, self.loop)
            except Exception as exc:  # no camera, no libcamera, empty directory
                words = exc.words if isinstance(exc, SourceError) else both("camera.unavailable")
                self._report(False, words, drivers.why(exc, 300))
                self._stop.wait(self.reopen_s)
                continue
            self._report(True)
            try:
                self._capture(source)
            except Exception as exc:  # the camera went away mid-stream
                self._report(False, both("camera.lost"), drivers.why(exc, 300))
                self._stop.wait(self.reopen_s)
            finally:
                try:
                    source.close()
                except Exception:  # already gone; the next open reports it
                    pass
            if self.finished.is_set():
                self._idle()
                return

    def _capture(self, source) -> None:
        period = 1.0 / self.fps
        next_at = time.monotonic()
        bad_frames = False
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            frame = source.read()
            if frame is None:
                self._report(True, both("camera.replay_finished"))
                self.finished.set()
                return
            if frame.ndim != 2 or frame.dtype != np.uint8:
                if not bad_frames:  # once per run of bad frames
                    self._on_event(drivers.error("camera", both("camera.bad_frame"), f"{frame.shape} {frame.dtype}"))
                bad_frames = True
            else:
                bad_frames = False
                for text in self.scanner.process(frame, time.monotonic()):
                    self._on_event(CodeScanned(text, "camera"))
            next_at = max(next_at + period, time.monotonic() - period)
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _idle(self) -> None:
        """After a replay: stay alive for the watchdog until stopped."""
        while not self._stop.wait(1.0):
            self.heartbeat = time.monotonic()


# --------------------------------------------------------------------------
# swabkiosk probe camera SOURCE [--decoder zxing|zbar] [--seconds N] [--json]
# --------------------------------------------------------------------------


def code_kind(text: str) -> str:
    """What a code is, without its content (personal data never printed)."""
    if text.startswith("SWB1:"):
        return "SWB1 signed code"
    if text.startswith("SWABCMD:"):
        return "command card"
    return "other code"


def probe(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="swabkiosk probe camera",
                                 description="Watch the camera for a while; report frames, speed and codes (kind and length only).")
    ap.add_argument("source", help="picamera2 | dir:/path/to/frames")
    ap.add_argument("--decoder", choices=DECODERS, default="zxing")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    events: list[Event] = []
    try:
        cam = Camera({"source": args.source, "decoder": args.decoder, "fps": args.fps}, events.append)
    except ValueError as exc:
        print(str(exc))
        return 2
    t0, c0 = time.monotonic(), time.process_time()
    cam.start()
    cam.finished.wait(args.seconds)
    cam.stop()
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    s = cam.scanner
    problems = [f"{e.reason} ({e.raw})" if e.raw else e.reason for e in events
                if isinstance(e, (DeviceStatus, DeviceError)) and not getattr(e, "ok", False)]
    codes = [{"kind": code_kind(e.text), "length": len(e.text)} for e in events if isinstance(e, CodeScanned)]
    report = {
        "source": args.source, "decoder": args.decoder, "ok": s.frames > 0 and not problems,
        "frames": s.frames, "fps": round(s.frames / wall, 1) if wall else 0.0, "decodes": s.decodes,
        "decode_ms_median": round(1000 * statistics.median(s.decode_s), 2) if s.decode_s else None,
        "cpu_share": round(cpu / wall, 3) if wall else 0.0, "codes": codes, "problems": problems,
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        verdict = both("device_error.verdict_ok" if report["ok"] else "device_error.verdict_fault")
        print(said((zh("camera.probe_verdict", source=args.source, verdict=verdict[0]),
                    en("camera.probe_verdict", source=args.source, verdict=verdict[1]))))
        for p in problems:
            print(f"  {p}")
        print("  " + said(both("camera.probe_frames", frames=report["frames"], fps=report["fps"],
                               decodes=report["decodes"], decoder=args.decoder, median=report["decode_ms_median"],
                               cpu=f"{100 * report['cpu_share']:.1f}")))
        for c in codes:
            print("  " + said(both("camera.probe_code", kind=c["kind"], length=c["length"])))
    return 0 if report["ok"] else 1
