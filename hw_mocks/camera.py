"""A camera at the sampling table, simulated: 1280x720 grey frames of a phone
screen showing a QR code, held over a table, with the faults real frames have
(motion/focus blur, rotation, low contrast, glare on the screen, sensor noise).

Reusable pieces (the benchmark uses them too):
  render_frame(payload, ...)      one frame as a numpy array (H, W) uint8
  frame_set(kind, count, seed)    reproducible sets: clean, empty, blur,
                                  low_contrast, rotation, glare
  write_frames(dir, frames)       a directory the camera driver replays
                                  (``source = "dir:/path"``)
  with_noise(frame, seed)         the next frame of a still scene
  sample_payload(rng)             a payload as long as a signed SWB1 code
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import numpy as np
import qrcode
from PIL import Image, ImageFilter

FRAME_W, FRAME_H = 1280, 720
KINDS = ("clean", "empty", "blur", "low_contrast", "rotation", "glare")
HARD_KINDS = ("blur", "low_contrast", "rotation", "glare")


def sample_payload(rng: random.Random, length: int = 180) -> str:
    """A stand-in as long as a signed personal code (SWB1: + base64url body)."""
    alphabet = string.ascii_letters + string.digits + "-_."
    return "SWB1:" + "".join(rng.choice(alphabet) for _ in range(length - 5))


def qr_modules(payload: str) -> np.ndarray:
    """The QR matrix (True = dark) with a 4-module quiet zone, as phones show it."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(payload)
    qr.make(fit=True)
    return np.array(qr.get_matrix(), dtype=bool)


def _table(rng: np.random.Generator) -> np.ndarray:
    """A plain table top: a soft lighting gradient with some low-frequency texture."""
    y = np.linspace(0, 1, FRAME_H, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, FRAME_W, dtype=np.float32)[None, :]
    base = 95 + 40 * x + 25 * y
    coarse = rng.normal(0, 6, (FRAME_H // 40 + 1, FRAME_W // 40 + 1)).astype(np.float32)
    texture = Image.fromarray(coarse, mode="F").resize((FRAME_W, FRAME_H), Image.Resampling.BILINEAR)
    return base + np.asarray(texture)


def _table_cached(seed: int) -> np.ndarray:
    cached = _TABLES.get(seed)
    if cached is None:
        cached = _TABLES[seed] = _table(np.random.default_rng(seed))
    return cached


_TABLES: dict[int, np.ndarray] = {}


def render_frame(payload: str | None, *, seed: int = 0, qr_px: int = 300, angle: float = 0.0,
                 centre: tuple[int, int] = (640, 360), blur: float = 0.6, contrast: float = 1.0,
                 glare: float = 0.0, noise: float = 3.0) -> np.ndarray:
    """One grey frame. ``payload=None`` renders the empty table.

    qr_px: side of the code incl. quiet zone in pixels; angle: degrees;
    blur: Gaussian radius (0.6 ~ a sharp but real lens); contrast: 1 = full
    screen-black to screen-white, 0.15 = a dim screen seen at an angle;
    glare: 0..1 strength of a bright reflection over part of the code;
    noise: sensor noise sigma in grey levels (different in every frame)."""
    rng = np.random.default_rng(seed)
    img = _table_cached(0).copy()
    if payload is not None:
        img = _place_phone(img, payload, qr_px, angle, centre, contrast)
    if glare > 0 and payload is not None:
        cy = centre[1] + rng.uniform(-0.3, 0.3) * qr_px
        cx = centre[0] + rng.uniform(-0.3, 0.3) * qr_px
        sy, sx = qr_px * rng.uniform(0.15, 0.3), qr_px * rng.uniform(0.25, 0.45)
        yy = (np.arange(FRAME_H, dtype=np.float32)[:, None] - cy) / sy
        xx = (np.arange(FRAME_W, dtype=np.float32)[None, :] - cx) / sx
        img += 255 * glare * np.exp(-(yy * yy + xx * xx))
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(out, dtype=np.float32)
    if noise > 0:
        arr = arr + rng.normal(0, noise, arr.shape).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _place_phone(img: np.ndarray, payload: str, qr_px: int, angle: float,
                 centre: tuple[int, int], contrast: float) -> np.ndarray:
    modules = qr_modules(payload)
    module_px = max(1, round(qr_px / len(modules)))
    code = np.kron(~modules, np.ones((module_px, module_px), bool))  # True = light
    hi = 200 + 35 * contrast  # a phone screen photographed is bright but not white
    lo = hi - 190 * contrast
    side = code.shape[0]
    pad = side // 6  # the phone body around the screen
    phone = np.full((side + 4 * pad, side + 2 * pad), 30, np.float32)
    phone[2 * pad:2 * pad + side, pad:pad + side] = np.where(code, hi, lo)
    phone[pad:2 * pad, pad:pad + side] = hi  # screen above the code (app header)
    patch = Image.fromarray(phone.astype(np.uint8))
    mask = Image.new("L", patch.size, 255)
    if angle:
        patch = patch.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        mask = mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    canvas.paste(patch, (centre[0] - patch.width // 2, centre[1] - patch.height // 2), mask)
    return np.asarray(canvas, dtype=np.float32)


def with_noise(frame: np.ndarray, seed: int, noise: float = 3.0) -> np.ndarray:
    """The same scene again, as the next frame of a still camera: fresh sensor noise."""
    rng = np.random.default_rng(seed)
    return np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)


def frame_set(kind: str, count: int, seed: int = 0,
              payloads: list[str] | None = None) -> list[tuple[np.ndarray, str | None]]:
    """``count`` reproducible frames of one kind, each with its expected payload.

    clean: sharp, upright-ish; empty: no code (the idle table); blur: Gaussian
    radius 2; low_contrast: contrast 0.12-0.2; rotation: 10-80 degrees; glare:
    a reflection of strength 0.6-1.0 over the code. Position and size vary."""
    if kind not in KINDS:
        raise ValueError(f"unknown frame kind {kind!r}; one of {KINDS}")
    rng = random.Random(f"{kind}-{seed}")
    frames = []
    for i in range(count):
        payload = None if kind == "empty" else (
            payloads[i % len(payloads)] if payloads else sample_payload(rng))
        params: dict[str, Any] = dict(seed=rng.randrange(2**31), qr_px=rng.randint(260, 340),
                      centre=(rng.randint(480, 800), rng.randint(300, 420)),
                      angle=rng.uniform(-5, 5))
        if kind == "blur":
            params["blur"] = 2.0
        elif kind == "low_contrast":
            params["contrast"] = rng.uniform(0.12, 0.2)
        elif kind == "rotation":
            params["angle"] = rng.choice((-1, 1)) * rng.uniform(10, 80)
        elif kind == "glare":
            params["glare"] = rng.uniform(0.6, 1.0)
        frames.append((render_frame(payload, **params), payload))
    return frames


def write_frames(directory: str | Path, frames: list[np.ndarray], start: int = 0,
                 fmt: str = "png") -> list[Path]:
    """Write frames as frame-000000.png ... (.pgm or .npy: faster to write and read)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames, start):
        p = d / f"frame-{i:06d}.{fmt}"
        if fmt == "npy":
            np.save(p, frame)
        else:
            Image.fromarray(frame).save(p)
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    """python -m hw_mocks.camera DIR [--kind K] [--count N] [--seed S]: a replay directory."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m hw_mocks.camera", description=main.__doc__)
    ap.add_argument("directory")
    ap.add_argument("--kind", choices=KINDS, default="clean")
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    paths = write_frames(args.directory, [f for f, _ in frame_set(args.kind, args.count, args.seed)])
    print(f"wrote {len(paths)} {args.kind} frames to {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
