"""Camera loop cost per 1280x720 grey frame, and how much of a hard frame set is read.

* with a code: ``drivers.camera.FrameScanner.process`` (our loop: change gate, QR-only
  zxing-cpp decode, debounce) on frames that each show a new phone with a new code,
  so every frame is decoded;
* idle: the same loop on the empty table, frame after frame of a still scene with
  fresh sensor noise (the gate skips the decode; one decode a second still runs);
* hard set: ``hw_mocks.camera.frame_set`` blur, low_contrast, rotation, glare; a frame
  counts as read when the loop reports exactly its payload. Beside it plain pyzbar
  (``pyzbar.decode`` with its defaults: every symbology) on the same frames, and its
  cost per frame with a code.
"""

from __future__ import annotations

import time

from bench.common import median


def _loop_ms(frames, scanner, fps: float = 10.0) -> list[float]:
    times = []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        scanner.process(frame, i / fps)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def measure(frames: int = 40, hard_per_kind: int = 25) -> dict:
    from pyzbar.pyzbar import decode as zbar_decode

    from drivers.camera import FrameScanner
    from drivers.qr_decode import make_decoder
    from hw_mocks.camera import HARD_KINDS, frame_set, with_noise

    decode = make_decoder("zxing")
    clean = frame_set("clean", frames, seed=21)
    scanner = FrameScanner(decode)
    scanner.process(clean[0][0], 0.0)  # warm up (library load, first allocations)
    with_code = _loop_ms([f for f, _ in clean], FrameScanner(decode))
    clean_read = 0
    check = FrameScanner(decode)
    for i, (frame, payload) in enumerate(clean):
        clean_read += check.process(frame, i * 10.0) == [payload]

    empty = frame_set("empty", 1, seed=22)[0][0]
    still = [with_noise(empty, seed=i) for i in range(max(frames * 5, 50))]
    idle = _loop_ms(still, FrameScanner(decode))
    idle_decode = _loop_ms(still[:frames], FrameScanner(decode, recheck_s=0.0))  # no gate: decode all

    def zbar(frame):
        h, w = frame.shape
        return [r.data.decode("utf-8", "replace") for r in zbar_decode((frame.tobytes(), w, h))]

    zbar_ms = []
    for frame, _ in clean[: max(5, frames // 4)]:
        t0 = time.perf_counter()
        zbar(frame)
        zbar_ms.append((time.perf_counter() - t0) * 1000)

    ours = theirs = total = 0
    per_kind = {}
    for kind in HARD_KINDS:
        hard = frame_set(kind, hard_per_kind, seed=23)
        read_ours = read_zbar = 0
        for i, (frame, payload) in enumerate(hard):
            # one FrameScanner per frame: each is a new person, read on its first frame
            read_ours += FrameScanner(decode).process(frame, 0.0) == [payload]
            read_zbar += payload in zbar(frame)
        per_kind[kind] = (read_ours, read_zbar, len(hard))
        ours, theirs, total = ours + read_ours, theirs + read_zbar, total + len(hard)
    return {
        "frames": frames,
        "with_code_median_ms": round(median(with_code), 2),
        "clean_read": f"{clean_read}/{len(clean)}",
        "idle_median_ms": round(median(idle), 3),
        "idle_decode_median_ms": round(median(idle_decode), 2),
        "pyzbar_all_symbologies_median_ms": round(median(zbar_ms), 1),
        "hard_success_ours": round(ours / total, 3),
        "hard_success_pyzbar": round(theirs / total, 3),
        "hard_frames": total,
        "hard_by_kind": {k: f"ours {a}/{n}, pyzbar {b}/{n}" for k, (a, b, n) in per_kind.items()},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=1))
