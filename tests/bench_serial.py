"""Serial-driver measurements (not a test: numbers for the report, no asserts).

    /work/main/.venv/bin/python -m tests.bench_serial

1. codec decode throughput (frames/s), 2. card placement -> CardRead latency
through the pty mock at the default 300 ms poll (median of 20), 3. idle CPU of
the reader and scanner loops over 10 s, measured in a child process so the
simulator's own CPU is not counted.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from drivers import idcard
from drivers.idcard_reader import IdCardReader, IdCardSettings
from firmware_app.model import CardRead
from hw_mocks.idcard_reader import LI_SI, ZHANG_SAN, SimIdCardReader, fake_photo, frame, text_block
from hw_mocks.scanner import SimScanner


def bench_codec() -> None:
    body = (256).to_bytes(2, "big") + (1024).to_bytes(2, "big") + text_block(ZHANG_SAN) + fake_photo("x")
    cases = {"read base info (1295 B)": frame(0x90, body), "find answer (15 B)": frame(0x9F, b"\0" * 4)}
    for name, one in cases.items():
        n = 20000 if len(one) < 100 else 5000
        stream = one * n
        for chunk in (64, 4096):
            d = idcard.ResponseDecoder()
            got = 0
            t = time.perf_counter()
            for i in range(0, len(stream), chunk):
                d.receive_data(stream[i : i + chunk])
                while not isinstance(d.next_event(), type(idcard.NEED_DATA)):
                    got += 1
            dt = time.perf_counter() - t
            print(f"codec  {name:24s} chunks of {chunk:4d} B: {got / dt:10.0f} frames/s ({got} frames)")
    t = time.perf_counter()
    for _ in range(5000):
        idcard.decode_base_info(body)
    print(f"codec  text block -> IdCard: {5000 / (time.perf_counter() - t):.0f} cards/s")


def bench_latency(runs: int = 20) -> None:
    with tempfile.TemporaryDirectory() as d:
        sim = SimIdCardReader(Path(d) / "idcard")
        got = threading.Event()
        stamps: list[float] = []

        def on_event(ev):
            if isinstance(ev, CardRead):
                stamps.append(time.monotonic())
                got.set()

        reader = IdCardReader(IdCardSettings(port=str(sim.path)), on_event)  # default poll 300 ms
        reader.start()
        lat = []
        try:
            for i in range(runs):
                got.clear()
                time.sleep(0.05 + (i % 7) * 0.037)  # place at varying phases of the poll cycle
                sim.place(ZHANG_SAN if i % 2 else LI_SI)
                placed = sim.placed_at
                if not got.wait(5):
                    raise SystemExit("no CardRead")
                lat.append((stamps[-1] - placed) * 1000)
                sim.lift()
                time.sleep(0.7)  # two empty polls: lifted
        finally:
            reader.stop()
            sim.close()
    lat.sort()
    print(f"latency placement -> CardRead, poll 300 ms, {runs} runs: median {statistics.median(lat):.0f} ms, "
          f"min {lat[0]:.0f}, max {lat[-1]:.0f}")


def bench_replug(runs: int = 10) -> None:
    """plug() of the mock -> DeviceStatus(ok=True) from the driver."""
    from drivers.scanner import Scanner, ScannerSettings
    from firmware_app.model import DeviceStatus

    with tempfile.TemporaryDirectory() as d:
        for kind in ("idcard", "scanner"):
            sim = SimIdCardReader(Path(d) / kind) if kind == "idcard" else SimScanner(Path(d) / kind)
            up = threading.Event()
            down = threading.Event()
            at: list[float] = []

            def on_event(ev, up=up, down=down, at=at):
                if isinstance(ev, DeviceStatus):
                    (up if ev.ok else down).set()
                    at.append(time.monotonic())

            dev = (IdCardReader(IdCardSettings(port=str(sim.path)), on_event) if kind == "idcard"
                   else Scanner(ScannerSettings(port=str(sim.path)), on_event))
            dev.start()
            took = []
            try:
                up.wait(5)
                for i in range(runs):
                    up.clear()
                    down.clear()
                    sim.unplug()
                    down.wait(5)
                    time.sleep(0.1 + (i % 5) * 0.05)  # vary the phase against the 0.25 s retry
                    t = time.monotonic()
                    sim.plug()
                    if not up.wait(5):
                        raise SystemExit(f"{kind} did not come back")
                    took.append((at[-1] - t) * 1000)
            finally:
                dev.stop()
                sim.close()
            took.sort()
            print(f"replug {kind:7s} plug -> ready, {runs} runs: median {statistics.median(took):.0f} ms, "
                  f"max {took[-1]:.0f} ms")


IDLE_CHILD = """
import sys, time
from drivers.idcard_reader import IdCardReader, IdCardSettings
from drivers.scanner import Scanner, ScannerSettings
kind, port, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
dev = IdCardReader(IdCardSettings(port=port), print) if kind == "idcard" else Scanner(ScannerSettings(port=port), print)
dev.start()
time.sleep(1.0)
c0, w0 = time.process_time(), time.monotonic()
time.sleep(secs)
c1, w1 = time.process_time(), time.monotonic()
dev.stop()
print(f"CPU {c1 - c0:.4f} s over {w1 - w0:.2f} s", flush=True)
"""


def bench_idle(seconds: float = 10.0) -> None:
    with tempfile.TemporaryDirectory() as d:
        for kind, sim in (("idcard", SimIdCardReader(Path(d) / "idcard")), ("scanner", SimScanner(Path(d) / "scanner"))):
            try:
                out = subprocess.run([sys.executable, "-c", IDLE_CHILD, kind, str(sim.path), str(seconds)],
                                     capture_output=True, text=True, timeout=seconds + 30).stdout
            finally:
                sim.close()
            line = [x for x in out.splitlines() if x.startswith("CPU")][-1]
            cpu = float(line.split()[1])
            print(f"idle   {kind:7s} loop ({'poll 300 ms' if kind == 'idcard' else 'read timeout 50 ms'}): "
                  f"{line} = {cpu / seconds * 100:.2f} % of one core")
            if kind == "idcard":
                finds = sum(1 for c in sim.commands if c == (0x20, 0x01))
                print(f"       reader answered {finds} find commands in {seconds + 1:.0f} s")


if __name__ == "__main__":
    bench_codec()
    bench_latency()
    bench_replug()
    bench_idle()
