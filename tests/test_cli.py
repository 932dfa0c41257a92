import subprocess
import sys

from firmware_app.cli import COMMANDS


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "firmware_app", *args], capture_output=True, text=True)


def test_help_lists_every_subcommand():
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ["run", "simulate", "doctor", "probe", "status", "tube", "export", "config", "qr"]:
        assert name in COMMANDS
        assert f"  {name} " in out.stdout


def test_unknown_command_is_refused():
    out = run_cli("frobnicate")
    assert out.returncode == 2
    assert "unknown command" in out.stderr
