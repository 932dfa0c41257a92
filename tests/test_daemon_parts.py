"""The daemon's own parts: sd_notify, the watchdog's freshness rule, the device
supervisor's backoff, and the log filter that masks ID numbers."""

import io
import logging
import os
import socket
import threading
import time

import pytest

from firmware_app.logsetup import IdMaskFilter, mask_ids, setup
from firmware_app.model import DeviceStatus
from firmware_app.sdnotify import Notifier, Watchdog
from firmware_app.supervisor import Supervisor

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_notifier_sends_ready_status_stopping(notify_socket):
    path, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    assert n.watchdog_s == 2.0
    n.ready("kiosk up")
    assert sock.recv(1024) == b"READY=1\nSTATUS=kiosk up"
    n.stopping()
    assert sock.recv(1024) == b"STOPPING=1"


def test_notifier_without_systemd_is_silent():
    n = Notifier({})
    assert not n.enabled and n.watchdog_s is None
    assert n.send("READY=1") is False


def test_watchdog_usec_for_another_pid_is_ignored():
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000",
                     "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 1.0


def test_watchdog_pings_only_while_every_heartbeat_is_fresh(notify_socket):
    path, sock = notify_socket
    beats = {"station loop": time.monotonic(), "uplink": time.monotonic()}
    wd = Watchdog(Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}),
                  {k: (lambda k=k: beats[k]) for k in beats}, stale_after=5)
    assert wd.check_and_ping() is True
    assert sock.recv(64) == b"WATCHDOG=1"
    beats["station loop"] -= 6  # hung for 6 s
    assert wd.stale() == ["station loop"]
    assert wd.check_and_ping() is False
    assert sock.recv(64) == b"STATUS=not responding: station loop"  # no WATCHDOG=1
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(64)
    beats["station loop"] = time.monotonic()
    assert wd.check_and_ping() is True


class FlakyPort:
    """Stands in for a USB serial device that is unplugged for the first tries."""

    def __init__(self, failures):
        self.failures = failures
        self.tries = 0
        self.started = threading.Event()

    def factory(self, on_event):
        self.tries += 1
        if self.tries <= self.failures:
            raise OSError(2, "No such file or directory: '/dev/swabkiosk-idcard'")
        dev = type("Dev", (), {})()
        dev.heartbeat = time.monotonic()
        dev.start = self.started.set
        dev.stop = lambda: None
        return dev


def test_supervisor_reports_down_then_retries_until_up():
    events = []
    port = FlakyPort(failures=2)
    sup = Supervisor("idcard", port.factory, events.append, backoff=(0.05, 0.1))
    sup.start()
    assert port.started.wait(5)
    deadline = time.monotonic() + 10
    while not sup.ok and time.monotonic() < deadline:  # a quiet shell counts as up after 2 s
        time.sleep(0.05)
    sup.stop()
    statuses = [e for e in events if isinstance(e, DeviceStatus)]
    assert [s.ok for s in statuses] == [False, True]  # one "down" (reported once per change), then up
    assert "No such file" in statuses[0].reason
    assert port.tries == 3


def test_supervisor_restarts_a_hung_device():
    events = []
    port = FlakyPort(failures=0)
    sup = Supervisor("scanner", port.factory, events.append, stale_after=0.01, backoff=(0.05, 0.1))
    sup.start()
    deadline = time.monotonic() + 10
    while port.tries < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sup.stop()
    assert port.tries >= 2
    assert any(isinstance(e, DeviceStatus) and not e.ok and "not responding" in e.reason for e in events)


def test_log_filter_masks_id_numbers_in_messages_args_and_tracebacks():
    assert mask_ids("id 44190019900307123X ok") == "id 441900********123X ok"
    assert mask_ids("record gd-dg-0001-t03-0000000042") == "record gd-dg-0001-t03-0000000042"
    stream = io.StringIO()
    handler = setup(stream=stream)
    try:
        log = logging.getLogger("test.mask")
        log.info("card %s read", "11010519491231002X")
        try:
            raise ValueError("bad 110105194912310021")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert "11010519491231002X" not in out and "110105194912310021" not in out
    assert "110105********002X" in out and "110105********0021" in out
    assert isinstance(handler.filters[0], IdMaskFilter)
