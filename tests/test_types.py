"""Types at the seams (issue 14, item 5): mypy finds nothing in firmware_app/ and drivers/.

The settings are pyproject.toml's [tool.mypy]; what the package imports (hw_mocks, for the
simulator) is checked with it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout
