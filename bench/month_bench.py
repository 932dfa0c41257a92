"""A month-old kiosk beside a new one: the issue 11 figures, measured in one run.

The 30-day store (8,000 people a day, all acknowledged, as a district runs it) is built
once with ``swabkiosk simulate --days 30 --people-per-day 8000 --no-pacing --acked`` and
cached under the temp dir, keyed by the code that writes it (firmware_app/*.py,
hw_mocks/people.py) and the counts; each run measures a copy of it (start-up and the
memory run write to their store). The small store beside it is one day of 500 people (the
commands need a tube and a day to look at); the empty store is a fresh data dir.

* start to READY=1: ``swabkiosk run --simulate --data-dir D`` (bench.startup_bench), median;
* ``tube``, ``status``, ``export --day`` as whole processes (interpreter start included);
* RSS at READY and after registering another 8,000 people, the durable write (``store.append``
  on the station loop) p99 over them, flushes per registration (fsync + fdatasync counted by
  an LD_PRELOAD shim, bench/flushcount.c, compiled with gcc into the run's temp dir) and bytes
  sent to storage per registration (/proc/self/io write_bytes): bench.kiosk_child ``month``;
* scan to label p99 with +10 ms per flush (the same shim with SLOWSYNC_US=10000, as
  /work/shared/tools/slowsync.c): bench.scan_bench in a child process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, median

CACHE = Path(tempfile.gettempdir()) / "swabkiosk-bench-month"
# What a 32 GB card takes before it wears out, in bytes the host writes: 500 program/erase
# cycles (a consumer TLC card; "high endurance" cards are rated several times more) over
# 32 GB, divided by a write amplification of 10 for small random writes on a card with no
# DRAM cache. 1.6 TB; the figure is an assumption, stated so it can be changed.
CARD_BYTES = 32e9
CARD_PE_CYCLES = 500
CARD_WRITE_AMPLIFICATION = 10
CARD_ENDURANCE_BYTES = CARD_BYTES * CARD_PE_CYCLES / CARD_WRITE_AMPLIFICATION


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def code_key(days: int, people: int) -> str:
    h = hashlib.sha256(f"{days}x{people}".encode())
    for path in sorted((ROOT / "firmware_app").glob("*.py")) + [ROOT / "hw_mocks" / "people.py"]:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def build(days: int, people: int) -> tuple[Path, dict]:
    """The cached filled data dir (built now if this code has none) and its fill summary."""
    where = CACHE / f"{days}x{people}-{code_key(days, people)}"
    summary_file = where / "fill.json"
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        summary["cached"] = True
        return where / "data", summary
    shutil.rmtree(where, ignore_errors=True)
    building = where.with_name(where.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    out = subprocess.run([sys.executable, "-m", "firmware_app", "simulate", "--days", str(days), "--people-per-day",
                          str(people), "--data-dir", str(building / "data"), "--no-pacing", "--acked", "--json"],
                         cwd=ROOT, env=env(), capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"fill failed: {out.stderr[-1500:]}")
    summary = json.loads(out.stdout)
    (building / "fill.json").write_text(json.dumps(summary))
    building.rename(where)
    summary["data_dir"] = str(where / "data")
    summary["cached"] = False
    return where / "data", summary


def copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("lock"))
    return dst


def whole_process(args: list[str], runs: int) -> dict:
    """A `swabkiosk` command as a whole process: wall time (median of runs), peak RSS."""
    times, rss = [], []
    for _ in range(runs):
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "firmware_app", *args], cwd=ROOT, env=env(),
                                    stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            times.append(time.perf_counter() - t0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"swabkiosk {' '.join(args)} exited {proc.returncode}: {err.read()[-500:]!r}")
        rss.append(usage.ru_maxrss / 1024)
    return {"runs": [round(t, 3) for t in times], "median_s": round(median(times), 3),
            "max_rss_mb": round(max(rss), 1)}


def pick(data: Path) -> dict:
    """A tube and a day to ask about: the middle day's busiest hour, a full 10-tube."""
    from firmware_app.store import Store

    with Store(str(data), read_only=True) as store:
        last = store.last_seq()
        mid = store.records([f"sim-t01-{last // 2:010d}"])
        day = mid[0]["at"][:10] if mid else ""
        for seq in range(last // 2, last // 2 + 200):
            rec = store.records([f"sim-t01-{seq:010d}"])
            if rec and rec[0]["kind"] == "tube_close" and rec[0].get("count") == 10:
                return {"tube_id": rec[0]["tube_id"], "day": rec[0]["at"][:10]}
    return {"tube_id": "", "day": day}


def commands(data: Path, runs: int, workdir: str) -> dict:
    what = pick(data)
    csv_path = os.path.join(workdir, "export.csv")
    out = {"tube_id": what["tube_id"], "day": what["day"]}
    out["tube"] = whole_process(["tube", "--data-dir", str(data), what["tube_id"]], runs)
    out["status"] = whole_process(["status", "--data-dir", str(data)], runs)
    out["export"] = whole_process(["export", "--data-dir", str(data), "--day", what["day"], "--csv", csv_path], runs)
    with open(csv_path, encoding="utf-8-sig") as f:
        out["export"]["records"] = sum(1 for _ in f) - 1
    return out


def shim(workdir: str) -> str:
    """bench/flushcount.c compiled into workdir (gcc); its path for LD_PRELOAD."""
    target = os.path.join(workdir, "flushcount.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", target, str(ROOT / "bench" / "flushcount.c"), "-ldl"],
                   check=True, capture_output=True)
    return target


def month_child(data: Path, workdir: str, people: int, preload: str) -> dict:
    """bench.kiosk_child month: the daemon assembly on data, another `people` registered."""
    child_env = {**env(), "LD_PRELOAD": preload, "SLOWSYNC_US": "0"}
    out = subprocess.run([sys.executable, "-m", "bench.kiosk_child", "month", workdir, str(data), str(people)],
                         cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=3600)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"month child failed (exit {out.returncode}): {out.stderr[-1500:]}")
    return json.loads(lines[-1])


def scan_sd(people: int, preload: str) -> dict:
    child_env = {**env(), "LD_PRELOAD": preload, "SLOWSYNC_US": "10000"}
    out = subprocess.run([sys.executable, "-m", "bench.scan_bench", str(people)], cwd=ROOT, env=child_env,
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"scan bench under +10 ms flushes failed: {out.stderr[-1500:]}")
    return json.loads(out.stdout)


def measure(days: int = 30, people: int = 8000, more: int = 8000, startups: int = 5, runs: int = 3,
            scan: int = 600, log=lambda text: None) -> dict:
    from bench import startup_bench

    figures: dict = {}
    details: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-month-") as d:
        t0 = time.monotonic()
        month, fill = build(days, people)
        details["fill"] = fill
        log(f"month store {days} x {people}: {'cached' if fill['cached'] else f'built in {time.monotonic() - t0:.0f} s'}"
            f" ({fill['records']} records, {fill['db_bytes'] / 1e6:.0f} MB)")
        small, small_fill = build(1, 500)
        details["small_fill"] = small_fill
        month = copy_store(month, Path(d) / "month")
        small = copy_store(small, Path(d) / "small")
        empty = Path(d) / "empty"
        preload = shim(d)

        log("tube / status / export as whole processes ...")
        at_30 = commands(month, runs, d)
        at_1 = commands(small, runs, d)
        details["commands_at_30d"], details["commands_at_1d"] = at_30, at_1
        figures["tube_recall_s_at_1d"] = at_1["tube"]["median_s"]
        figures["tube_recall_s_at_30d"] = at_30["tube"]["median_s"]
        figures["status_s_at_1d"] = at_1["status"]["median_s"]
        figures["status_s_at_30d"] = at_30["status"]["median_s"]
        figures["export_s_at_1d"] = at_1["export"]["median_s"]
        figures["export_s_at_30d"] = at_30["export"]["median_s"]

        log("start to READY, empty and 30-day stores ...")
        results = {}
        for name, data in (("empty", empty), ("at_30d", month)):
            times = []
            for i in range(startups):
                run_dir = os.path.join(d, f"startup-{name}-{i}")
                os.mkdir(run_dir)
                times.append(startup_bench.once(run_dir, data_dir=str(data)))
            results[name] = {"runs": [round(t, 3) for t in times], "median_s": round(median(times), 3)}
        details["startup"] = results
        figures["startup_to_ready_s_empty"] = results["empty"]["median_s"]
        figures["startup_to_ready_s_at_30d"] = results["at_30d"]["median_s"]
        figures["startup_ratio_30d_vs_empty"] = round(results["at_30d"]["median_s"] / results["empty"]["median_s"], 2)

        log(f"memory, durable writes, flushes and bytes over {more} registrations, empty and 30-day ...")
        for name, data in (("empty", empty), ("at_30d", month)):
            work = os.path.join(d, f"child-{name}")
            os.mkdir(work)
            details[f"registrations_{name}"] = r = month_child(data, work, more, preload)
            suffix = "empty" if name == "empty" else "at_30d"
            figures[f"rss_mb_{suffix}"] = max(r["rss_mb_ready"], r["rss_mb_end"])
            figures[f"durable_write_p99_ms_{suffix}"] = r["append_p99_ms"]
        r = details["registrations_at_30d"]
        figures["fsyncs_per_registration"] = r["flushes_per_registration"]
        figures["bytes_written_per_registration"] = r["write_bytes_per_registration"]
        per_day = r["write_bytes_per_registration"] * 8000
        figures["mb_written_per_day_8000"] = round(per_day / 1e6, 1)
        figures["sd_card_years_32gb"] = round(CARD_ENDURANCE_BYTES / (per_day * 365), 1)
        details["card"] = {"bytes": CARD_BYTES, "pe_cycles": CARD_PE_CYCLES,
                           "write_amplification": CARD_WRITE_AMPLIFICATION, "endurance_bytes": CARD_ENDURANCE_BYTES,
                           "people_per_day": 8000, "every_day": True}

        log(f"scan to label under +10 ms per flush ({scan} people) ...")
        details["scan_sd"] = result = scan_sd(scan, preload)
        figures["scan_to_label_p99_ms_sd"] = result["p99_ms"]
    return {"figures": figures, "details": details}


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    counts = dict(days=2, people=500, more=300, startups=1, runs=1, scan=20) if quick else {}
    print(json.dumps(measure(**counts, log=lambda t: print(t, file=sys.stderr, flush=True)), indent=1,
                     ensure_ascii=False))
