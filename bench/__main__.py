"""python -m bench [--quick] [--json] [--only GROUPS] [--save FILE]

Every figure in docs/benchmarks.md, each beside its goal and, where there is one, the
naive stack measured in the same run. ``--quick`` runs the same code paths on small
counts (under a minute) to check the harness in CI; its timings mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT, STATION_PASSWORD

# Counts per mode: full run / --quick.
FULL = dict(store_backlog=50_000, store_writes=1_000, naive_writes=50, drain=10_000, scan=600, frames=40,
            hard_per_kind=25, startups=5, rss_total=100_000, rss_warmup=2_000, kill_trials=50, kill_offline_trials=10,
            chaos=10_000, month_days=30, month_people=8_000, month_more=8_000, month_startups=5, month_runs=3,
            scan_sd=600, district_ingest=50_000, district_tube=1_000_000)
QUICK = dict(store_backlog=1_000, store_writes=30, naive_writes=10, drain=1_000, scan=20, frames=5,
             hard_per_kind=3, startups=1, rss_total=300, rss_warmup=100, kill_trials=2, kill_offline_trials=1,
             chaos=300, month_days=2, month_people=500, month_more=300, month_startups=1, month_runs=1, scan_sd=20,
             district_ingest=2_000, district_tube=20_000)

# key -> (goal text, met(value) or None when the figure is a baseline)
GOALS = {
    "scan_to_label_p99_ms": ("<= 15", lambda v: v <= 15),
    "store_write_p99_ms_at_0": ("<= 5", lambda v: v <= 5),
    "store_write_p99_ms_at_50000": ("<= 5", lambda v: v <= 5),
    "store_cost_ratio_50k_vs_0": ("<= 1.5", lambda v: v <= 1.5),
    "store_bytes_per_write_at_50000": ("<= 32768", lambda v: v <= 32768),
    "naive_store_write_p99_ms_at_50000": ("baseline", None),
    "drain_10k_s": ("", None),
    "raw_paho_qos1_10k_s": ("baseline", None),
    "drain_vs_raw_ratio": ("<= 2", lambda v: v <= 2),
    "qr_decode_ms_720p_median": ("<= 5", lambda v: v <= 5),
    "idle_frame_ms_720p_median": ("<= 5", lambda v: v <= 5),
    "qr_hard_success_ours": (">= 0.8 and > pyzbar", None),  # judged beside pyzbar below
    "qr_hard_success_pyzbar": ("baseline", None),
    "startup_to_ready_s": ("<= 1.0", lambda v: v <= 1.0),
    "rss_mb_steady": ("<= 60", lambda v: v <= 60),
    "rss_growth_mb_100k": ("<= 2", lambda v: v <= 2),
    "killtest_trials": (">= 50", lambda v: v >= 50),
    "killtest_lost_ours": ("0", lambda v: v == 0),
    "killtest_lost_naive": ("baseline", None),
    "broker_chaos_lost": ("0", lambda v: v == 0),
    # A month-old kiosk beside a new one (issue 11; bench/month_bench.py): the empty (or one-day)
    # store's figure first, then the 30-day store's (8,000 people a day, all acknowledged).
    "startup_to_ready_s_empty": ("beside 30 d", None),
    "startup_to_ready_s_at_30d": ("<= 0.5", lambda v: v <= 0.5),
    "startup_ratio_30d_vs_empty": ("<= 1.3", lambda v: v <= 1.3),
    "rss_mb_empty": ("beside 30 d", None),
    "rss_mb_at_30d": ("<= 60", lambda v: v <= 60),
    "tube_recall_s_at_1d": ("beside 30 d", None),
    "tube_recall_s_at_30d": ("<= 0.3", lambda v: v <= 0.3),
    "status_s_at_1d": ("beside 30 d", None),
    "status_s_at_30d": ("<= 0.3", lambda v: v <= 0.3),
    "export_s_at_1d": ("beside 30 d", None),
    "export_s_at_30d": ("<= 1.5", lambda v: v <= 1.5),
    "durable_write_p99_ms_empty": ("<= 5", lambda v: v <= 5),
    "durable_write_p99_ms_at_30d": ("<= 5", lambda v: v <= 5),
    "fsyncs_per_registration": ("<= 1.1", lambda v: v <= 1.1),
    "scan_to_label_p99_ms_sd": ("<= 15", lambda v: v <= 15),
    "bytes_written_per_registration": ("reported", None),
    "mb_written_per_day_8000": ("reported", None),
    "sd_card_years_32gb": ("reported", None),
    "receiver_ingest_per_s_sqlite": (">= 2000", lambda v: v >= 2000),
    "receiver_ingest_per_s_postgres": (">= 2000", lambda v: v >= 2000),
    "district_tube_s_sqlite": ("<= 0.3", lambda v: v <= 0.3),
    "district_tube_s_postgres": ("<= 0.3", lambda v: v <= 0.3),
    "district_gap_check_20k_stations_s": ("", None),
}
GROUPS = ("store", "drain", "scan", "camera", "startup", "month", "rss", "kill", "chaos", "district")


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_store(n: dict, figures: dict, details: dict) -> None:
    from bench.store_bench import measure

    backlog = n["store_backlog"]
    at0 = measure(0, writes=n["store_writes"])
    at_n = measure(backlog, writes=n["store_writes"])
    naive = measure(backlog, writes=n["naive_writes"], storage="naive-sqlite")
    floor = measure(0, writes=n["store_writes"], storage="floor")
    figures["store_write_p99_ms_at_0"] = at0["p99_ms"]
    figures["store_write_p99_ms_at_50000"] = at_n["p99_ms"]
    figures["store_cost_ratio_50k_vs_0"] = round(at_n["p99_ms"] / at0["p99_ms"], 2)
    figures["store_bytes_per_write_at_50000"] = at_n["bytes_per_write"]
    figures["naive_store_write_p99_ms_at_50000"] = naive["p99_ms"]
    details["store"] = {"at_0": at0, f"at_{backlog}": at_n, f"naive_at_{backlog}": naive, "fsync_floor": floor}


def run_drain(n: dict, figures: dict, details: dict) -> None:
    from bench.common import start_broker
    from bench.drain_bench import measure

    with tempfile.TemporaryDirectory() as d:
        broker = start_broker(d)
        try:
            result = measure(n["drain"], port=broker.port, username="bench/drain/t01", password=STATION_PASSWORD)
        finally:
            broker.kill()
    figures["drain_10k_s"] = result["uplink_s"]
    figures["raw_paho_qos1_10k_s"] = result["raw_paho_s"]
    figures["drain_vs_raw_ratio"] = round(result["uplink_s"] / result["raw_paho_s"], 2)
    details["drain"] = result


def run_scan(n: dict, figures: dict, details: dict) -> None:
    from bench.scan_bench import measure

    result = measure(n["scan"])
    figures["scan_to_label_p99_ms"] = result["p99_ms"]
    details["scan"] = result


def run_camera(n: dict, figures: dict, details: dict) -> None:
    from bench.camera_bench import measure

    result = measure(n["frames"], n["hard_per_kind"])
    figures["qr_decode_ms_720p_median"] = result["with_code_median_ms"]
    figures["idle_frame_ms_720p_median"] = result["idle_median_ms"]
    figures["qr_hard_success_ours"] = result["hard_success_ours"]
    figures["qr_hard_success_pyzbar"] = result["hard_success_pyzbar"]
    details["camera"] = result


def run_startup(n: dict, figures: dict, details: dict) -> None:
    from bench.startup_bench import measure

    result = measure(n["startups"])
    figures["startup_to_ready_s"] = result["median_s"]
    details["startup"] = result


def run_month(n: dict, figures: dict, details: dict) -> None:
    from bench.month_bench import measure

    result = measure(n["month_days"], n["month_people"], n["month_more"], n["month_startups"], n["month_runs"],
                     n["scan_sd"], log=lambda text: log(f"  month: {text}"))
    figures.update(result["figures"])
    details["month"] = result["details"]


def start_rss(n: dict, workdir: str) -> subprocess.Popen:
    """The memory run is a child process of its own; it runs while the kill and chaos tests do."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "bench.kiosk_child", "rss", workdir, str(n["rss_total"]),
                             str(n["rss_warmup"])], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def finish_rss(proc: subprocess.Popen, figures: dict, details: dict) -> None:
    out, _ = proc.communicate(timeout=7200)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory run failed (exit {proc.returncode})")
    result = json.loads(lines[-1])
    figures["rss_mb_steady"] = result["rss_mb_steady"]
    # growth over the run, scaled to 100,000 registrations when --quick ran fewer
    figures["rss_growth_mb_100k"] = round(result["growth_mb"] * 100_000 / result["registrations"], 1)
    details["rss"] = result


def run_kill(n: dict, figures: dict, details: dict) -> None:
    from bench.kill_bench import measure

    result = measure(n["kill_trials"], n["kill_offline_trials"])
    figures["killtest_trials"] = result["trials"]
    figures["killtest_lost_ours"] = result["lost_ours"]
    figures["killtest_lost_naive"] = result["lost_naive"]
    details["kill"] = result


def run_chaos(n: dict, figures: dict, details: dict) -> None:
    from bench.chaos_bench import measure

    result = measure(n["chaos"])
    figures["broker_chaos_lost"] = result["lost"]
    details["chaos"] = result


def run_district(n: dict, figures: dict, details: dict) -> None:
    """The district receiver (bench/district_bench.py); a throwaway PostgreSQL as in the tests.
    `python -m bench.district_bench 50000 1000000,10000000 --pg` measures tube at 10 million."""
    from bench.district_bench import measure
    from tests.pg import postgres_server, unavailable

    why = unavailable()
    if why:
        raise RuntimeError(f"district bench needs PostgreSQL: {why}")
    from bench.district_bench import measure_end_to_end

    with postgres_server() as url:
        result = measure(n["district_ingest"], [n["district_tube"]], url)
    result["receiver_process_sqlite"] = measure_end_to_end(n["district_ingest"])  # through Mosquitto
    figures["receiver_ingest_per_s_sqlite"] = result["ingest_sqlite"]["per_s"]
    figures["receiver_ingest_per_s_postgres"] = result["ingest_postgres"]["per_s"]
    figures["district_tube_s_sqlite"] = result["tube_sqlite"][-1]["command_s_median"]
    figures["district_tube_s_postgres"] = result["tube_postgres"][-1]["command_s_median"]
    figures["district_gap_check_20k_stations_s"] = result["gaps_sqlite"]["all_stations_s"]
    details["district"] = result


RUNNERS = {"store": run_store, "drain": run_drain, "scan": run_scan, "camera": run_camera,
           "startup": run_startup, "month": run_month, "kill": run_kill, "chaos": run_chaos,
           "district": run_district}


def verdict(key: str, value: float, figures: dict) -> str:
    goal, met = GOALS[key]
    if key == "qr_hard_success_ours" and "qr_hard_success_pyzbar" in figures:
        ok = value >= 0.8 and value > figures["qr_hard_success_pyzbar"]
        return "met" if ok else "MISSED"
    if met is None:
        return ""
    return "met" if met(value) else "MISSED"


def table(figures: dict, counts: dict, quick: bool) -> str:
    rows = [f"{'figure':36} {'value':>12}  {'goal':22} verdict", "-" * 82]
    if quick:
        rows.insert(0, "(--quick: the month figures are of a 2-day x 500 store, not 30 x 8,000)")
    for key in GOALS:
        if key in figures:
            goal, _ = GOALS[key]
            rows.append(f"{key:36} {figures[key]:>12}  {goal:22} {verdict(key, figures[key], figures)}")
    if quick:
        rows.append(f"(--quick: small counts {counts}; timings are not the figures)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts, same code paths (CI smoke, < 60 s)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    ap.add_argument("--only", default=",".join(GROUPS),
                    help=f"comma-separated groups to run (default all: {','.join(GROUPS)})")
    ap.add_argument("--save", help="also write figures, details and machine info to this JSON file")
    args = ap.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        ap.error(f"unknown group(s) {sorted(unknown)}; choose from {','.join(GROUPS)}")
    counts = QUICK if args.quick else FULL
    figures: dict = {}
    details: dict = {}
    started = time.monotonic()
    # Timing figures first, one at a time; then the memory run beside the kill and chaos tests
    # (those count records, not milliseconds).
    for group in ("store", "drain", "scan", "camera", "startup", "month", "district"):
        if group in groups:
            log(f"{group} ...")
            RUNNERS[group](counts, figures, details)
    with tempfile.TemporaryDirectory() as rss_dir:
        rss = start_rss(counts, rss_dir) if "rss" in groups else None
        if rss is not None:
            log("rss (child process, in the background) ...")
        try:
            for group in ("kill", "chaos"):
                if group in groups:
                    log(f"{group} ...")
                    RUNNERS[group](counts, figures, details)
            if rss is not None:
                log("waiting for the memory run ...")
                finish_rss(rss, figures, details)
        finally:
            if rss is not None and rss.poll() is None:
                rss.kill()
                rss.wait()
    ordered = {key: figures[key] for key in GOALS if key in figures}
    log(f"done in {time.monotonic() - started:.0f} s")
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"figures": ordered, "details": details, "counts": counts, "quick": args.quick,
                       "cpu": cpu(), "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, f, indent=1,
                      ensure_ascii=False)
    print(json.dumps(ordered) if args.json else table(ordered, counts, args.quick))
    return 0


def cpu() -> dict:
    info = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return info
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket"):
            info[key.strip()] = value.strip()
    return info


if __name__ == "__main__":
    sys.exit(main())
