"""Is the wall clock synchronised? A Pi has no RTC: until NTP has run, records
carry ``synced=False`` so the district knows their times are guesses."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

TIME_ERROR = 5  # adjtimex(2) state while the kernel clock is unsynchronised (STA_UNSYNC)


def kernel_synced() -> bool | None:
    """The kernel's own view (set by chrony/timesyncd/ntpd); cheap enough for every event."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes=0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


def sync_state() -> tuple[bool | None, str]:
    """(synced, how we know: the source's name, "none" when there is none) from the best source
    this machine has, for `doctor`."""
    if shutil.which("timedatectl"):
        try:
            out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                                 capture_output=True, text=True, timeout=3)
            if out.returncode == 0 and out.stdout.strip() in ("yes", "no"):
                return out.stdout.strip() == "yes", "timedatectl"
        except (OSError, subprocess.TimeoutExpired):
            pass
    if os.path.exists("/run/systemd/timesync/synchronized"):
        return True, "systemd-timesyncd"
    if shutil.which("chronyc"):
        try:
            out = subprocess.run(["chronyc", "-n", "tracking"], capture_output=True, text=True, timeout=3)
            if out.returncode == 0:
                leap = [ln for ln in out.stdout.splitlines() if ln.startswith("Leap status")]
                if leap:
                    return "Not synchronised" not in leap[0], "chrony"
        except (OSError, subprocess.TimeoutExpired):
            pass
    kernel = kernel_synced()
    if kernel:
        return True, "kernel (adjtimex)"
    # No time service to ask, and the kernel clock was never disciplined (doctor.clock_unknown says so).
    return None, "none"
