"""systemd may send SIGTERM the moment it hears READY=1 (a `systemctl stop` or restart
queued while the kiosk was starting). The daemon must already have its SIGTERM handler
then, or the default action kills it without the clean stop: no STOPPING=1, no retained
`availability = offline` for the district, exit status -15 instead of 0.

To hit that moment every time, the test fills the notify socket's queue so the daemon's
READY datagram blocks in sendto(2), sends SIGTERM while it is blocked, and only then
lets the datagram through."""

import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from hw_mocks.table import Table
from tests.broker import PASSWORDS, STATION_A, Collector, free_port, password_broker  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def full_notify_socket(tmp_path):
    """A NOTIFY_SOCKET whose queue is full: the next sender blocks until it is read."""
    path = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    for _ in range(10_000):
        try:
            filler.sendto(b"FILL", path)
        except BlockingIOError:
            break
    else:
        pytest.fail("the notify socket's queue never filled")
    yield path, receiver
    filler.close()
    receiver.close()


def until(proc, stream, text: str) -> None:
    """Read the daemon's output until a line containing ``text``."""
    for line in stream:
        if text in line:
            return
    raise AssertionError(f"daemon exited ({proc.wait()}) before printing {text!r}")


def notifications_until(receiver, proc, prefix: bytes) -> list[bytes]:
    """sd_notify messages up to one starting with ``prefix``; fails fast if the daemon died."""
    got: list[bytes] = []
    receiver.settimeout(0.5)
    for _ in range(60):
        try:
            msg = receiver.recv(4096)
        except TimeoutError:
            assert proc.poll() is None, f"daemon died with status {proc.returncode}; it sent {got}"
            continue
        if msg != b"FILL":
            got.append(msg)
            if msg.startswith(prefix):
                return got
    raise AssertionError(f"no {prefix!r} within 30 s; got {got}")


def test_sigterm_right_at_ready_stops_cleanly_and_says_offline(password_broker, full_notify_socket, tmp_path):
    path, receiver = full_notify_socket
    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{password_broker.port}"
    table = Table(tmp_path / "table", devices=()).start()
    station_file = tmp_path / "station.toml"
    station_file.write_text(table.station_file(str(tmp_path / "data"), broker=url))
    collector = Collector(password_broker.port)
    proc = subprocess.Popen([sys.executable, "-m", "firmware_app", "run", "--config", str(station_file),
                             "--ui-port", str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, "NOTIFY_SOCKET": path})
    try:
        until(proc, proc.stdout, "ready in")  # logged just before READY=1, which now blocks on the full socket
        proc.send_signal(signal.SIGTERM)
        # the uplink's own thread goes on meanwhile: the table is online at the district
        assert collector.wait_for(lambda c: any(t.endswith("/availability") and p == b"online"
                                                for t, p, _ in c.messages), 15)
        got = notifications_until(receiver, proc, b"STOPPING=1")  # now let READY=1 through
        assert got[0].startswith(b"READY=1")
        assert proc.wait(30) == 0  # not -15: the handler was there before READY
        assert collector.wait_for(lambda c: any(t.endswith("/availability") and p == b"offline"
                                                for t, p, _ in c.messages), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        collector.close()
        table.stop()


def test_sigterm_right_at_ready_of_a_refused_station_file_exits_78(full_notify_socket, tmp_path):
    """The broken-file screen sends READY too; a stop then must end with EX_CONFIG (78), which
    the unit's RestartPreventExitStatus=78 keeps from restarting in a loop."""
    path, receiver = full_notify_socket
    bad = tmp_path / "station.toml"
    bad.write_text('[station]\ndevice_id = "Bad Id"\n')
    proc = subprocess.Popen([sys.executable, "-m", "firmware_app", "run", "--config", str(bad),
                             "--ui-port", str(free_port())], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "NOTIFY_SOCKET": path})
    try:
        until(proc, proc.stderr, "not starting")  # printed before the screen starts and READY=1 (blocked) is sent
        proc.send_signal(signal.SIGTERM)
        got = notifications_until(receiver, proc, b"STOPPING=1")
        assert got[0].startswith(b"READY=1")
        assert proc.wait(30) == 78
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)



# ------------------------------------------------------------------ bursts of signals
# GNU `timeout` sends SIGTERM to the child and then to its process group, and systemd's
# KillMode=control-group does the same to every process of the unit: the daemon can get a
# second SIGTERM while the first one's handler runs. A handler that took a lock (an Event's,
# logging's) could then deadlock the main thread for good; ours only lets the signal reach
# the wakeup pipe, so every burst must end in a clean stop well within TimeoutStopSec=30s.

BURST_RUNS = 20
STOP_TIMEOUT_S = 30  # systemd/swabkiosk.service TimeoutStopSec


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify-burst")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    yield path, receiver
    receiver.close()


def burst(pid: int) -> None:
    """Several SIGTERMs at once: a tight loop to the process, the process group, and again."""
    for _ in range(5):
        os.kill(pid, signal.SIGTERM)
    os.killpg(pid, signal.SIGTERM)
    for _ in range(5):
        os.kill(pid, signal.SIGTERM)
    os.killpg(pid, signal.SIGINT)


def burst_until_stopped(command: list[str], notify, expected_status: int) -> float:
    path, receiver = notify
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "NOTIFY_SOCKET": path})
    try:
        notifications_until(receiver, proc, b"READY=1")
        start = time.monotonic()
        burst(proc.pid)
        status = proc.wait(STOP_TIMEOUT_S)
        took = time.monotonic() - start
        assert status == expected_status
        notifications_until(receiver, proc, b"STOPPING=1")
        return took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.timeout(BURST_RUNS * STOP_TIMEOUT_S)
def test_a_burst_of_sigterms_always_stops_the_broken_file_screen(notify_socket, tmp_path):
    bad = tmp_path / "station.toml"
    bad.write_text('[station]\ndevice_id = "Bad Id"\n')
    command = [sys.executable, "-m", "firmware_app", "run", "--config", str(bad), "--ui-port", str(free_port())]
    took = [burst_until_stopped(command, notify_socket, 78) for _ in range(BURST_RUNS)]
    print(f"stopped after a burst in at most {max(took):.2f} s ({BURST_RUNS} runs)")


@pytest.mark.timeout(BURST_RUNS * STOP_TIMEOUT_S)
def test_a_burst_of_sigterms_always_stops_the_kiosk_cleanly(notify_socket, tmp_path):
    table = Table(tmp_path / "table", devices=()).start()
    try:
        took = []
        for run in range(BURST_RUNS):
            station_file = tmp_path / "station.toml"
            station_file.write_text(table.station_file(str(tmp_path / f"data-{run}")))
            command = [sys.executable, "-m", "firmware_app", "run", "--config", str(station_file),
                       "--ui-port", str(free_port())]
            took.append(burst_until_stopped(command, notify_socket, 0))
        print(f"stopped after a burst in at most {max(took):.2f} s ({BURST_RUNS} runs)")
    finally:
        table.stop()


HANDLER_INSIDE_A_LOCK = """
import os, signal, sys, threading, time
from firmware_app.daemon import stop_on_signals, wait_for

class Guarded(threading.Event):
    # An Event whose lock the test can hold: set(), clear() and wait() take it, as
    # threading.Event's own set/clear/wait take the Event's internal lock (is_set does not).
    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def set(self):
        with self.lock:
            super().set()

    def clear(self):
        with self.lock:
            super().clear()

    def wait(self, timeout=None):
        with self.lock:
            pass
        return super().wait(timeout)

stop = Guarded()
stop_on_signals(stop)
# The main thread holds the Event's lock, as it does while inside stop.set() (the moment a
# second SIGTERM of a burst arrives). The handler runs right here, in this thread: if it took
# that lock (stop.set() in the handler did) it would wait for itself forever.
with stop.lock:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)  # signal handlers run here, between bytecodes
print("handler returned", flush=True)
wait_for(stop)
print("stopped", flush=True)
"""


def test_the_handler_takes_no_lock_the_interrupted_thread_may_hold():
    out = subprocess.run([sys.executable, "-c", HANDLER_INSIDE_A_LOCK], capture_output=True, text=True, timeout=20,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["handler returned", "stopped"]
