"""Run the fuzz targets: ``python -m fuzz [--seconds N] [--runs N] [--jobs N] [TARGET ...]``.

Each target runs in its own process (atheris/libFuzzer) for a fixed time, starting from its
committed seed corpus ``fuzz/corpus/<target>/`` (read only: new inputs go to a scratch copy,
``--keep DIR`` to keep them). A crash or an oracle failure leaves ``crash-*`` in the work dir
and makes the exit status 1. ``--replay`` only runs the committed corpus through each target
(no atheris needed): what CI does when atheris cannot be installed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def names() -> list[str]:
    from fuzz.targets import TARGETS

    return list(TARGETS)


def replay(name: str) -> tuple[str, bool, str]:
    from fuzz.targets import TARGETS

    n = 0
    for seed in sorted((CORPUS / name).iterdir()):
        TARGETS[name](seed.read_bytes())
        n += 1
    return name, True, f"{n} seeds replayed"


def run(name: str, seconds: int, runs: int, work: Path, keep: Path | None) -> tuple[str, bool, str]:
    scratch = (keep / name) if keep else work / name / "corpus"
    scratch.mkdir(parents=True, exist_ok=True)
    before = len(list(scratch.iterdir()))
    artifacts = work / name
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "fuzz.run_one", name, f"-max_total_time={seconds}", "-timeout=10",
           "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={artifacts}/"]
    if runs:
        cmd.append(f"-runs={runs}")
    cmd += [str(scratch), str(CORPUS / name)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
           "SWABKIOSK_FUZZ_WORK": str(artifacts)}  # a target's scratch files go here, removed with it
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(HERE.parent), env=env,
                          timeout=seconds * 3 + 120)
    out = proc.stdout + proc.stderr
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
    crashes = sorted(p.name for p in artifacts.glob("crash-*")) + sorted(p.name for p in artifacts.glob("timeout-*"))
    ok = proc.returncode == 0 and not crashes
    seconds_taken = time.monotonic() - started
    rate = f"{int(execs[-1]) / seconds_taken:,.0f}/s" if execs else "?/s"
    summary = (f"{execs[-1] if execs else '?'} executions in {seconds_taken:.0f} s ({rate}), "
               f"{len(list(scratch.iterdir())) - before} new corpus entries, {len(crashes)} crashes")
    if not ok:
        tail = "\n".join(out.strip().splitlines()[-40:])
        summary += f"; FAILED (exit {proc.returncode}) {crashes}\n{tail}"
    return name, ok, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help="default: all")
    ap.add_argument("--seconds", type=int, default=10, help="per target (default 10)")
    ap.add_argument("--runs", type=int, default=0, help="stop a target after this many executions")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="targets run at once")
    ap.add_argument("--keep", type=Path, help="keep each target's grown corpus in DIR/<target>")
    ap.add_argument("--replay", action="store_true", help="only replay the committed seed corpus")
    args = ap.parse_args(argv)
    chosen = args.targets or names()
    unknown = set(chosen) - set(names())
    if unknown:
        ap.error(f"unknown target(s): {', '.join(sorted(unknown))}; known: {', '.join(names())}")
    if args.replay:
        import logging

        logging.disable(logging.CRITICAL)  # the parsers log every refusal they make
        results = [replay(name) for name in chosen]
    else:
        work = Path(tempfile.mkdtemp(prefix="swabkiosk-fuzz-"))
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(lambda n: run(n, args.seconds, args.runs, work, args.keep), chosen))
        if all(ok for _n, ok, _s in results):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"crash inputs kept in {work}", file=sys.stderr)
    for name, ok, summary in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {summary}")
    return 0 if all(ok for _n, ok, _s in results) else 1


if __name__ == "__main__":
    sys.exit(main())
