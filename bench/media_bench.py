"""Camera and printer measurements quoted in docs/camera-printer.md.

Run from the repository root:  .venv/bin/python -m bench.media_bench [--cpu-seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from drivers.camera import Camera  # noqa: E402
from drivers.escpos_label import render, tube_label  # noqa: E402
from drivers.qr_decode import DECODERS, make_decoder  # noqa: E402
from hw_mocks.camera import HARD_KINDS, frame_set, write_frames  # noqa: E402


def ms(values):
    return f"{1000 * statistics.median(values):.2f} ms"


def decode_times() -> None:
    print("== decode time per 1280x720 grey frame, QR only, median of 30")
    sets = {"with code": frame_set("clean", 30, seed=11), "idle (no code)": frame_set("empty", 30, seed=11)}
    for name in DECODERS:
        decode = make_decoder(name)
        decode(sets["with code"][0][0])  # warm up
        for label, frames in sets.items():
            times, ok = [], 0
            for frame, payload in frames:
                t0 = time.perf_counter()
                got = decode(frame)
                times.append(time.perf_counter() - t0)
                ok += got == ([payload] if payload else [])
            print(f"  {name:5} {label:15} {ms(times)}  (correct {ok}/{len(frames)})")


def gate_cost() -> None:
    print("== per-frame cost of an unchanged frame (subsample + compare, no decode), median of 300")
    from drivers.camera import FrameScanner
    from hw_mocks.camera import with_noise

    base = frame_set("empty", 1, seed=3)[0][0]
    still = [with_noise(base, seed=i) for i in range(300)]
    scanner = FrameScanner(make_decoder("zxing"), recheck_s=1e9)
    scanner.process(still[0], 0.0)
    times = []
    for i, frame in enumerate(still):
        t0 = time.perf_counter()
        scanner.process(frame, i * 0.1)
        times.append(time.perf_counter() - t0)
    print(f"  {1e6 * statistics.median(times):.0f} us per frame, {scanner.decodes} decode(s) for 301 frames")


def hard_frames() -> None:
    print("== hard frames, 20 each (hw_mocks.camera.frame_set, seed 5): read exactly")
    sets = {kind: frame_set(kind, 20, seed=5) for kind in HARD_KINDS}
    for name in DECODERS:
        decode = make_decoder(name)
        row = [f"{kind} {sum(decode(f) == [p] for f, p in frames)}/20" for kind, frames in sets.items()]
        print(f"  {name:5} " + ", ".join(row))


def idle_cpu(seconds: float, fps: float) -> None:
    print(f"== camera loop CPU share at {fps:g} fps over {seconds:g} s (process_time / wall)")
    empty = [f for f, _ in frame_set("empty", 30, seed=2)]
    with tempfile.TemporaryDirectory() as png_dir, tempfile.TemporaryDirectory() as npy_dir:
        write_frames(png_dir, empty)
        for i, f in enumerate(empty):
            np.save(Path(npy_dir) / f"frame-{i:06d}.npy", f)
        for fmt, d in (("npy (read ~free, like a camera buffer)", npy_dir), ("png", png_dir)):
            for decoder in DECODERS:
                for gated in (True, False):
                    cam = Camera({"source": f"dir:{d}", "decoder": decoder, "fps": fps, "loop": True},
                                 lambda e: None)
                    if not gated:
                        cam.scanner._recheck_s = 0.0  # decode every frame
                    cam.start()
                    time.sleep(0.5)
                    w0, c0, f0 = time.monotonic(), time.process_time(), cam.scanner.frames
                    time.sleep(seconds)
                    w, c, f = time.monotonic() - w0, time.process_time() - c0, cam.scanner.frames - f0
                    cam.stop()
                    what = "change-gated" if gated else "decode every frame"
                    print(f"  {fmt:40} {decoder:5} {what:19} {100 * c / w:5.2f}% of one core, "
                          f"{f / w:.1f} fps, {cam.scanner.decodes} decodes")


def labels() -> None:
    print("== tube label bytes and render time")
    label = tube_label("DG032611230001", "莞城体育馆 3号采样台", "t03", "2026-11-23 10:41", 10)
    render(label)
    times = []
    for _ in range(2000):
        t0 = time.perf_counter()
        data = render(label)
        times.append(time.perf_counter() - t0)
    print(f"  {len(data)} bytes, render median {1e6 * statistics.median(times):.0f} us")
    code = (
        "import time; t=time.perf_counter(); from drivers.escpos_label import render, tube_label; "
        "render(tube_label('DG032611230001','s','t','x',10)); print(round(1000*(time.perf_counter()-t)))")
    root = str(Path(__file__).resolve().parent.parent)
    runs = [int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root).stdout)
            for _ in range(5)]
    print(f"  first render in a fresh process (import included): {runs} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=10.0)
    args = ap.parse_args()
    decode_times()
    gate_cost()
    hard_frames()
    labels()
    idle_cpu(args.cpu_seconds, args.fps)
