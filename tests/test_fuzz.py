"""CI runs every fuzz target (fuzz/targets.py) for a short fixed budget: ~8 s each, two at a time
(about a minute in all). ``python -m fuzz --seconds 600`` runs them longer (fuzz/README.md)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.__main__ import replay
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 8


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_committed_seed_passes_its_oracle(name):
    assert replay(name)[1]


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed ([test] extra)")
def test_every_fuzz_target_runs_clean_for_a_short_budget():
    proc = subprocess.run([sys.executable, "-m", "fuzz", "--seconds", str(SECONDS), "--jobs", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=len(TARGETS) * SECONDS + 240)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert proc.stdout.count("ok  ") == len(TARGETS), proc.stdout
