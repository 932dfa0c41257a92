"""The screen against other local users and idle connections (issue 13, findings 5 and 6).

Other users are real: the clients run in child processes that drop to ``nobody`` (or ``daemon``)
before they start. The daemon of the finding-5 tests is a real kiosk (``Kiosk`` on
``hw_mocks.table.Table``) in a child process with the default soft limit of 1,024 descriptors.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from firmware_app.ui import UiServer
from firmware_app.ui.guard import (
    MAX_CONNECTIONS_PER_CLIENT,
    MAX_STREAMS_PER_CLIENT,
    REQUEST_TIMEOUT_S,
    diag_uid,
    ends,
    proc_uid,
)
from tests.browser_fixtures import browser, page  # noqa: F401
from tests.ui_fixtures import Recorder

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"  # other users cannot reach a venv under /root; the clients need the stdlib only
NOBODY = pwd.getpwnam("nobody").pw_uid
DAEMON_UID = pwd.getpwnam("daemon").pw_uid  # another local user, neither the kiosk's nor the screen's

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(os.geteuid() != 0, reason="other local users are made with setuid: needs root")]

# A local client of another user: stdlib only, so it runs as nobody from any interpreter.
CLIENT = r"""
import http.client, json, socket, sys
port, mode = int(sys.argv[1]), sys.argv[2]
def req(method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
    r = c.getresponse()
    data = r.readline() if r.getheader("Content-Type", "").startswith("text/event-stream") else r.read()
    c.close()
    return [r.status, data.decode()]
if mode == "requests":
    post = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json"}
    print(json.dumps([req("GET", "/"), req("GET", "/api/state"), req("GET", "/events"),
                      req("POST", "/api/command", json.dumps({"name": "void_last"}), post),
                      req("POST", "/api/command", json.dumps({"name": "close_tube"}), post)]))
elif mode == "hold":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # room for 1,100 and more
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(int(sys.argv[3]))]
    print(len(socks), flush=True)
    sys.stdin.read()  # hold every connection until the test closes our stdin
"""


def as_user(uid: int, argv: list[str], **kw) -> subprocess.Popen:
    """``argv`` run as ``uid`` (its own group, no others): dropped by subprocess itself, no preexec_fn."""
    return subprocess.Popen(argv, user=uid, group=pwd.getpwuid(uid).pw_gid, extra_groups=[], cwd="/", text=True, **kw)


def client(uid: int, port: int, *args: str, **kw) -> subprocess.Popen:
    return as_user(uid, [SYSTEM_PYTHON, "-I", "-c", CLIENT, str(port), *args], **kw)


@pytest.fixture
def ui(tmp_path):
    rec = Recorder()
    server = UiServer("127.0.0.1", 0, rec, provision_errors=None, clients={os.geteuid(), NOBODY})
    server.recorder = rec
    server.start()
    yield server
    server.stop()


def get(port: int, path: str = "/api/state", timeout: float = 5) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
    status = conn.getresponse().status
    conn.close()
    return status


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (None: still open after ``seconds``)."""
    t0 = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


# ------------------------------------------------------------------ finding 6: who may command


def test_the_kernel_names_the_user_at_the_other_end_and_a_closed_client_is_nobody_known():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        other = client(NOBODY, port, "hold", "1", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        theirs, _ = listener.accept()
        assert other.stdout.readline().strip() == "1"
        mine = socket.create_connection(("127.0.0.1", port))
        ours, _ = listener.accept()
        # netlink's exact lookup and the /proc/net/tcp fallback give the same answer
        assert diag_uid(*ends(theirs)) == proc_uid(*ends(theirs)) == NOBODY
        assert diag_uid(*ends(ours)) == proc_uid(*ends(ours)) == os.geteuid()
        other.stdin.close()
        other.wait(10)  # its socket is closed: what is left of it is a time-wait entry listed as uid 0
        mine.close()
        time.sleep(0.2)
        for conn in (theirs, ours):
            assert diag_uid(*ends(conn)) is None and proc_uid(*ends(conn)) is None
            conn.close()


def test_another_local_user_is_refused_and_changes_nothing(monkeypatch):
    """Served to this uid (the daemon's) and the screen user's only; ``daemon`` is neither."""
    monkeypatch.delenv("SUDO_UID", raising=False)
    rec = Recorder()
    server = UiServer("127.0.0.1", 0, rec, provision_errors=None)  # default clients
    server.start()
    try:
        before = server.state()
        out = client(DAEMON_UID, server.port, "requests", stdout=subprocess.PIPE)
        answers = json.loads(out.communicate(timeout=30)[0])
        assert [status for status, _ in answers] == [403] * 5, answers
        assert all("只有本机采样屏" in body for _, body in answers)  # zh-CN first, then English
        assert rec.commands == [] and server.state() == before
        assert get(server.port) == 200  # the kiosk's own uid still is served
    finally:
        server.stop()


def test_whoever_started_the_simulator_with_sudo_may_use_its_screen(monkeypatch):
    monkeypatch.setenv("SUDO_UID", str(NOBODY))  # `sudo bin/kiosk-sim`, the page in nobody's browser
    rec = Recorder()
    server = UiServer("127.0.0.1", 0, rec, provision_errors=None)
    server.start()
    try:
        out = client(NOBODY, server.port, "requests", stdout=subprocess.PIPE)
        assert [status for status, _ in json.loads(out.communicate(timeout=30)[0])] == [200, 200, 200, 202, 202]
        assert [c.name for c in rec.commands] == ["void_last", "close_tube"]
    finally:
        server.stop()


def test_the_kiosk_browser_launcher_runs_the_browser_as_the_screen_user(ui, tmp_path):
    """systemd/kiosk-browser as the screen user (here: nobody) starts a browser whose requests are
    served; the same launcher run by another user gets 403. The browser is a stand-in that does
    what the kiosk page does: load it, open /events, send a tap."""
    work = Path(tempfile.mkdtemp(prefix="w-screen-launcher-"))
    try:
        os.chmod(work, 0o755)
        fake = work / "bin" / "chromium"
        fake.parent.mkdir()
        fake.write_text(f"#!{SYSTEM_PYTHON} -I\n" + """
import http.client, json, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[sys.argv.index("--kiosk") + 1])
port = url.port
def req(method, path, body=None, headers=None):
    c = http.client.HTTPConnection(url.hostname, port, timeout=10)
    c.request(method, path, body=body, headers={"Host": url.netloc, **(headers or {})})
    r = c.getresponse()
    r.readline() if path == "/events" else r.read()
    return r.status
print(json.dumps([req("GET", url.path), req("GET", "/events"),
                  req("POST", "/api/command", json.dumps({"name": "close_tube"}),
                      {"Origin": f"http://{url.netloc}", "Content-Type": "application/json"})]))
""")
        fake.chmod(0o755)
        runtime_dir = work / "run"
        runtime_dir.mkdir(mode=0o777)
        runtime_dir.chmod(0o777)
        env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "SWABKIOSK_URL": ui.url, "XDG_RUNTIME_DIR": str(runtime_dir),
               "SWABKIOSK_ERRORS_PAGE": str(work / "none.html"), "SWABKIOSK_WAIT_S": "5"}

        def launch(uid: int) -> list[int]:
            proc = as_user(uid, [str(ROOT / "systemd" / "kiosk-browser")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            return json.loads(out)

        assert launch(NOBODY) == [200, 200, 202]
        assert [c.name for c in ui.recorder.commands] == ["close_tube"]
        assert launch(DAEMON_UID) == [403, 403, 403]
        assert [c.name for c in ui.recorder.commands] == ["close_tube"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ finding 5: holding the server


def test_a_half_sent_request_is_dropped_after_a_few_seconds(ui):
    half = socket.create_connection(("127.0.0.1", ui.port))
    half.sendall(b"POST /api/command HTTP/1.1\r\nHost: 127.0.0.1")
    slow = socket.create_connection(("127.0.0.1", ui.port))  # one byte a second: no read ever times out
    slow.settimeout(0.2)
    t0 = time.monotonic()
    dropped = None
    for byte in b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-Slow: " + b"a" * 40:
        try:
            slow.sendall(bytes([byte]))
            if slow.recv(1) == b"":
                dropped = time.monotonic() - t0
                break
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            dropped = time.monotonic() - t0
            break
        time.sleep(0.8)
    assert dropped is not None and dropped <= REQUEST_TIMEOUT_S + 1.5, dropped
    assert closed_within(half, REQUEST_TIMEOUT_S + 1.5) is not None
    half.close()
    slow.close()


def test_no_connection_is_kept_alive_after_its_response(ui):
    conn = socket.create_connection(("127.0.0.1", ui.port))
    conn.sendall(f"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1:{ui.port}\r\nConnection: keep-alive\r\n\r\n".encode())
    conn.settimeout(2)
    reply = b""
    while chunk := conn.recv(65536):  # the server closes after one response: HTTP/1.0
        reply += chunk
    assert reply.startswith(b"HTTP/1.0 200")
    conn.close()


def test_connections_are_capped_per_client_and_other_users_use_no_budget_of_ours(ui):
    nobody = client(NOBODY, ui.port, "hold", "200", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert nobody.stdout.readline().strip() == "200"
        ours = [socket.create_connection(("127.0.0.1", ui.port)) for _ in range(MAX_CONNECTIONS_PER_CLIENT)]
        extra = socket.create_connection(("127.0.0.1", ui.port))
        assert closed_within(extra, 2.0) is not None  # over our budget: closed at once, unanswered
        with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
            get(ui.port)  # our own budget is full...
        assert closed_within(ours[0], REQUEST_TIMEOUT_S + 1.5) is not None  # ... until the idle ones time out
        for s in ours + [extra]:
            s.close()
        assert get(ui.port) == 200  # while nobody still holds 200 connections
    finally:
        nobody.stdin.close()
        nobody.wait(10)


def test_streams_are_capped_per_client(ui):
    streams = []
    for _ in range(MAX_STREAMS_PER_CLIENT):
        conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=5)
        conn.request("GET", "/events", headers={"Host": f"127.0.0.1:{ui.port}"})
        resp = conn.getresponse()  # kept: a dropped response closes its socket
        assert resp.status == 200
        streams.append(resp)
    assert get(ui.port, "/events") == 503  # this client holds its share...
    # ... and the screen user's browser still gets its own (nobody stands in for it here)
    screen = client(NOBODY, ui.port, "requests", stdout=subprocess.PIPE)
    answers = json.loads(screen.communicate(timeout=30)[0])
    assert answers[2][0] == 200 and "retry: 1000" in answers[2][1]
    for resp in streams:
        resp.close()


# ------------------------------------------------------------------ finding 5 on the real daemon

KIOSK = r"""
import json, os, resource, sys, time
from pathlib import Path
from firmware_app import config
from firmware_app.daemon import Kiosk
from firmware_app.model import mask_id
from firmware_app.sdnotify import Notifier
from firmware_app.simulate import LIVE_CAMERA, Tracker, present, step, wait_devices
from hw_mocks.table import Table

work, data = Path(sys.argv[1]), sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # systemd's default soft limit
table = Table(work / "table", devices=("idcard", "scanner", "printer")).start()
cfg = config.parse_text(table.station_file(data, poll_ms=50))
kiosk = Kiosk(cfg, ui_port=0, notifier=Notifier({}), device_overrides=LIVE_CAMERA)
kiosk.start()
tracker = Tracker(kiosk.runtime)
wait_devices(kiosk, ["idcard", "scanner", "printer"])
step(table, tracker, table.sign_in, "sign in")
print(json.dumps({"url": kiosk.ui.url}), flush=True)
held, person = [], None
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "exhaust":  # every descriptor left taken, as the idle connections of finding 5 did
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
    elif cmd == "release":
        while held:
            os.close(held.pop())
    elif cmd == "fill":  # the card fills up: the store refuses the next write
        with open(os.path.join(data, "filler"), "wb", buffering=0) as f:
            chunk = 65536
            while chunk:
                try:
                    f.write(b"\0" * chunk)
                except OSError:
                    chunk //= 2
    elif cmd == "unfill":
        os.unlink(os.path.join(data, "filler"))
    elif cmd in ("present", "again"):
        if cmd == "again":
            time.sleep(0.5)  # lifted long enough for the reader to see a new placement
        person = person if cmd == "again" else table.people.person(via="card")
        level = present(table, tracker, person)
    if cmd in ("present", "again"):
        show = tracker.last_shows[-1]
        alive = kiosk.runtime._thread.is_alive() and kiosk.runtime.call(lambda: True, timeout=5)
        tube = (kiosk.runtime.snapshot.get("tube") or {}).get("count")  # what the screen shows
        print(json.dumps({"level": level, "message": show.message, "masked": mask_id(person.id_number), "tube": tube,
                          "stored": sum(1 for _ in kiosk.store.iter_records()) if not held else None,
                          "alive": alive, "fds": len(os.listdir("/proc/self/fd")) if not held else None}), flush=True)
    else:
        print(json.dumps({"done": cmd}), flush=True)
kiosk.stop()
table.stop()
"""


class Child:
    def __init__(self, tmp_path: Path, data: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", KIOSK, str(tmp_path), str(data)], cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.url = self.read()["url"]

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"the kiosk child ended (exit {self.proc.poll()})"
        return json.loads(line)

    def __call__(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read()

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def room_for_descriptors():
    """A hard limit the flooding child (which inherits it) can raise its soft limit to."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, 4096))  # root may raise it
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_1100_idle_connections_of_another_user_do_not_stop_the_kiosk(tmp_path, page, room_for_descriptors):  # noqa: F811
    kiosk = Child(tmp_path, tmp_path / "data")
    flood = None
    try:
        page.goto(kiosk.url)
        page.wait_for_selector("#app[data-conn=open]")
        first = kiosk("present")
        assert first["level"] == "ok"
        flood = client(NOBODY, int(kiosk.url.rsplit(":", 1)[1].strip("/")), "hold", "1100",
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert flood.stdout.readline().strip() == "1100"  # 1,100 connections open, held idle
        second = kiosk("present")
        assert second["level"] == "ok" and second["alive"], second  # the store took it, the loop lives
        assert second["stored"] > first["stored"]
        assert second["fds"] < first["fds"] + 20, (first["fds"], second["fds"])  # none of them held
        page.wait_for_function("(id) => document.querySelector('#person-id').textContent === id",
                               arg=second["masked"])  # the kiosk's own browser still updates
        print(f"\ndaemon descriptors: {first['fds']} before, {second['fds']} with 1,100 idle connections held")
    finally:
        if flood is not None:
            flood.stdin.close()
            flood.wait(10)
        kiosk.stop()


def test_the_station_loop_survives_running_out_of_descriptors(tmp_path):
    """Finding 5's second half: a write refused while no descriptor is left, and the loop's own
    error handler then rebuilding the station with none left either. Before, the rebuilt station
    had lost its volunteer list (it could not be opened) and refused every scan until a restart."""
    data = tmp_path / "data"
    data.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(data)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    kiosk = None
    try:
        kiosk = Child(tmp_path, data)
        first = kiosk("present")
        assert first["level"] == "ok"
        kiosk("fill")
        kiosk("exhaust")
        refused = kiosk("present")
        assert refused["level"] == "error" and refused["alive"], refused
        assert refused["message"].startswith("未保存")  # a clear refusal, zh-CN first
        assert refused["tube"] == first["tube"] == 1  # the screen shows what is stored, not the refused person
        kiosk("release")
        kiosk("unfill")
        again = kiosk("again")  # the same person: registered now, not a duplicate of a half-stored try
        assert again["level"] == "ok" and again["alive"], again
        assert again["stored"] == first["stored"] + 1 and again["tube"] == 2
    finally:
        if kiosk is not None:
            kiosk.stop()
        subprocess.run(["umount", "-l", str(data)], check=False)


SPIN = r"""
import os, socket, time
from firmware_app.ui import UiServer
ui = UiServer("127.0.0.1", 0, lambda c: None, provision_errors=None)
ui.start()
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
os.close(held.pop())
waiting = socket.create_connection(("127.0.0.1", ui.port))  # accept() now fails with EMFILE
t0, cpu0 = time.monotonic(), time.process_time()
time.sleep(2)
print((time.process_time() - cpu0) / (time.monotonic() - t0), flush=True)
for fd in held:  # a thread's exit loads libgcc_s: it needs a descriptor
    os.close(fd)
ui.stop()
"""


def test_out_of_descriptors_the_screen_server_does_not_spin_on_a_waiting_connection():
    out = subprocess.run([sys.executable, "-c", SPIN], check=False, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    share = float(out.stdout)
    assert share < 0.10, f"the server used {share:.0%} of a core retrying accept()"  # 35% before
