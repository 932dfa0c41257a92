"""Durability before OK (a kill -9 right after append returned loses nothing) and one flush per
append with the WAL checkpoints off the appending thread (counted with strace, not timed)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from firmware_app.store import Store
from tests.broker import ROOT

CHILD = textwrap.dedent("""
    import sys, time
    from firmware_app.store import Store
    from tests.store_fixtures import sample
    s = Store(sys.argv[1])
    n = int(sys.argv[2])
    for seq in range(1, n + 1):
        s.append([sample(seq)], meta={"queue": seq}, marks={"seq": seq, "numbers": {"T": seq // 10 + 1}})
        print("OK", seq, flush=True)  # what the volunteer sees: only after append returned
        time.sleep(float(sys.argv[3]))
    s.close()
""")


def _child(d, n: int, pause: float, prefix: list[str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([*(prefix or []), sys.executable, "-c", CHILD, str(d), str(n), str(pause)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True, **kw)


def test_kill_9_after_ok_loses_nothing_and_marks_stay_above(tmp_path):
    p = _child(tmp_path, 10_000, 0.0)
    shown = 0
    for line in p.stdout:
        shown = int(line.split()[1])
        if shown >= 300:
            break
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with Store(tmp_path) as s:
        seqs = [r["seq"] for r in s.iter_records()]
        assert seqs[:shown] == list(range(1, shown + 1))  # every record shown OK is there
        assert s.get_meta("queue") == seqs[-1]  # meta moved with its records
        assert s.high_water()["seq"] == seqs[-1] and s.high_water()["numbers"]["T"] == seqs[-1] // 10 + 1


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to count flushes")
def test_one_flush_per_append_on_the_appending_thread(tmp_path):
    log = tmp_path / "strace.log"
    n = 400
    p = _child(tmp_path / "data", n, 0.002, prefix=["strace", "-f", "-e", "trace=fsync,fdatasync", "-o", str(log)])
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and out.count("OK") == n
    by_thread: dict[str, int] = {}
    for line in log.read_text().splitlines():
        if re.search(r"\b(fsync|fdatasync)\(", line):
            tid = line.split()[0]
            by_thread[tid] = by_thread.get(tid, 0) + 1
    main = max(by_thread.values())  # the appending thread; the checkpoint helper makes the rest
    # one per append, plus start (first reservation, WAL header) and close (the last checkpoint)
    assert main <= n * 1.02 + 6, by_thread
