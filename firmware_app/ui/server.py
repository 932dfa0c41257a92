"""The kiosk screen's server: one small page, live state pushed over Server-Sent Events.

Stdlib only (``http.server``) so a Pi Zero 2 W pays a few MB for it, nothing to build
and nothing to keep patched. The page (``static/``) talks to this daemon only, never
to the broker, so it keeps working offline.

Threads: ``update``/``notify`` are called from the daemon's loop; each browser's
``/events`` stream runs in its own handler thread and waits on one condition for the
next revision, so a push reaches the screen as soon as it happens (no polling).
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import re
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable

from firmware_app import boundedjson, commands
from firmware_app.catalogue import both, en, zh
from firmware_app.ui import texts
from firmware_app.model import Command, mask_id
from firmware_app.ui.guard import REQUEST_TIMEOUT_S, Guard

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
PROVISION_ERRORS = Path("/run/swabkiosk/provision-errors.json")
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/keypad.js": ("keypad.js", "text/javascript; charset=utf-8"),
    "/texts.js": ("", "text/javascript; charset=utf-8"),  # the page's words, from the catalogue (ui/texts.py)
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}

LEVELS = ("ok", "confirm", "error", "info")
SEVERITY = {"info": 0, "ok": 1, "confirm": 2, "error": 3}
MAX_STREAMS = 8  # every client's streams together; one client's: guard.MAX_STREAMS_PER_CLIENT
KEEPALIVE_S = 15.0  # ping idle streams: dead browsers are noticed, the page spots a hung daemon
MAX_BODY = 4096
MAX_BODY_DEPTH = 4  # {"name": ..., "args": {"mode": ...}} is 2 deep; checked before json.loads recurses

# A full 18- or 15-digit resident ID number anywhere in outgoing text gets masked:
# the station already sends masked data, this keeps a slip from reaching the screen.
_FULL_ID = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])")


def scrub(value: Any) -> Any:
    """Mask any full ID number in strings nested in ``value``."""
    if isinstance(value, str):
        return _FULL_ID.sub(lambda m: mask_id(m.group(0)), value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def _refusal(key: str) -> dict[str, str]:
    """A refused request's words: ``error`` in English, ``error_zh`` in zh-CN (screen.*)."""
    return {"error": en(key), "error_zh": zh(key)}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_provision_errors(path: Path) -> list[dict]:
    """Problems written by first-boot provisioning, as ``[{key, line, message, message_en}]``.

    Accepts a JSON list or ``{"problems": [...]}`` of strings or objects. An unreadable
    file is itself reported: a technician must never see a clean screen by accident.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        text_zh, text_en = both("screen.provision_unreadable", path=path, reason=exc.strerror)
        return [_problem({"message": text_zh, "message_en": text_en})]
    try:
        data = boundedjson.loads(raw, max_bytes=1 << 20, max_depth=8)
        items = data.get("problems", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValueError("not a list")
    except ValueError:
        text_zh, text_en = both("screen.provision_corrupt", path=path)
        return [_problem({"message": text_zh, "message_en": text_en})]
    return [_problem(item if isinstance(item, dict) else {"message": str(item)}) for item in items]


def _problem(item: dict) -> dict:
    return {
        "key": str(item.get("key", "") or ""),
        "line": item.get("line") if isinstance(item.get("line"), int) else None,
        "message": str(item.get("message", "") or ""),
        "message_en": str(item.get("message_en", "") or ""),
    }


class UiServer:
    """The screen. ``notify`` for every Show effect, ``update(snapshot)`` after every step.

    ``notify`` puts the message in the big panel with its colour and tone (a repeated
    identical error beeps again). ``update`` merges the given top-level keys into the
    screen state, so the daemon may push ``Station.snapshot()`` and, separately or
    together, its own keys (``devices``, ``broker``, ``backlog``, ``labels_waiting``,
    ``problems``; see docs/screen.md). An update that changes nothing sends nothing.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        on_command: Callable[[Command], None] | None = None,
        *,
        language: str = "zh-CN",
        sound: bool = True,
        provision_errors: str | os.PathLike | None = PROVISION_ERRORS,
        clients: Iterable[int] | None = None,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the kiosk screen is served on loopback only, not {host!r}")
        self.host = host
        self.port = port
        self.on_command = on_command or (lambda command: None)
        self._provision_path = Path(provision_errors) if provision_errors else None
        self._cond = threading.Condition()
        self._rev = 0
        self._snapshot: dict[str, Any] = {}
        self._show_key: tuple | None = None
        self._flash: dict[str, Any] = {"n": 0, "level": "info"}
        self._in_step = False  # notify() since the last update(): Shows of one station step
        self._provision: list[dict] = []
        self._provision_stamp: tuple | None = None
        self._ui = {"language": "en" if language == "en" else "zh-CN", "sound": bool(sound)}
        self._guard = Guard(clients)  # the uids served (default: this one and the screen user's), budgets
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._stopping.clear()
        self._check_provision()
        self._httpd = _Server((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._guard.start()
        # poll 10x/s for shutdown: stop() returns quickly, the idle cost is negligible
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                 name="ui-http", daemon=True)
        watch = threading.Thread(target=self._watch, name="ui-watch", daemon=True)
        self._threads = [serve, watch]
        for t in self._threads:
            t.start()
        log.info("screen on %s", self.url)

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()  # wake every stream so it ends and the browser reconnects
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        self._guard.stop()
        for t in self._threads:
            t.join(timeout=5)
        self._httpd = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # ---------------------------------------------------------------- daemon side

    def update(self, snapshot: dict) -> None:
        """Merge ``snapshot``'s top-level keys into the screen and push it if it changed."""
        with self._cond:
            merged = {**self._snapshot, **snapshot}
            if merged == self._snapshot:
                self._in_step = False
                return
            self._snapshot = merged
            key = (merged.get("level"), merged.get("message"), merged.get("message_en"))
            if key != self._show_key and merged.get("message"):
                self._flash_locked(merged.get("level"))  # a Show this server was not told of
            self._show_key = key
            self._in_step = False
            self._bump()

    def notify(self, level: str, message: str, message_en: str = "") -> None:
        """A Show: the big panel takes its colour and words and the page plays its tone."""
        with self._cond:
            self._snapshot = {**self._snapshot, "level": level, "message": message, "message_en": message_en}
            self._show_key = (level, message, message_en)
            self._flash_locked(level)
            self._in_step = True
            self._bump()

    def state(self) -> dict:
        """What the page renders (masked), as sent on /events and /api/state."""
        with self._cond:
            return self._state_locked()

    # ---------------------------------------------------------------- internals

    def _state_locked(self) -> dict:
        snap = self._snapshot
        problems = [_problem(p if isinstance(p, dict) else {"message": str(p)})
                    for key in ("config_problems", "problems") for p in snap.get(key) or []]
        return scrub({
            "rev": self._rev,
            "snapshot": snap,
            "problems": self._provision + problems,
            "flash": self._flash,
            "ui": self._ui,
        })

    def _flash_locked(self, level: Any) -> None:
        level = level if level in LEVELS else "info"
        if self._in_step and SEVERITY[self._flash["level"]] > SEVERITY[level]:
            level = self._flash["level"]  # one step said person 10 (ok) then tube full (info): the OK tone
        self._flash = {"n": self._flash["n"] + 1, "level": level}

    def _bump(self) -> None:
        self._rev += 1
        self._cond.notify_all()

    def _watch(self) -> None:
        """Pick up a provisioning-errors file written (or fixed) after start."""
        while not self._stopping.wait(2.0):
            self._check_provision()

    def _check_provision(self) -> None:
        if self._provision_path is None:
            return
        try:
            st = self._provision_path.stat()
            stamp: tuple | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            stamp = ("error", exc.errno)
        if stamp == self._provision_stamp:
            return
        problems = read_provision_errors(self._provision_path)
        with self._cond:
            self._provision_stamp = stamp
            if problems != self._provision:
                self._provision = problems
                if problems:
                    self._flash_locked("error")
                self._bump()

    def _command(self, body: dict) -> Command:
        """A tap on the screen as a station command, checked against the one command table."""
        name = body.get("name")
        args = body.get("args", {})
        commands.check(name, args, "ui")  # a CommandError is a ValueError: its str is the English, .message the zh-CN
        return Command(str(name), dict(args), source="ui")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connects waits in the kernel, not in SYN retries

    def __init__(self, address, handler, ui: UiServer) -> None:
        self.ui = ui
        super().__init__(address, handler)

    def get_request(self):
        try:
            return super().get_request()
        except OSError as exc:  # out of descriptors: the connection waits in the backlog; do not spin on it
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                time.sleep(0.1)
            raise

    def verify_request(self, request, client_address) -> bool:
        # before the connection gets a thread: who it is, and whether its budget has room
        return self.ui._guard.admit(request)

    def shutdown_request(self, request) -> None:
        self.ui._guard.release(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the client went away, or was shut for its deadline
            log.debug("ui: connection from %s ended: %s", client_address, sys.exc_info()[1])
        else:
            log.exception("ui: request from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "swabkiosk-ui"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S  # each read or write; the guard bounds the whole request

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("ui %s: " + fmt, self.address_string(), *args)

    # ----- guards: loopback Host (blocks DNS rebinding), same origin + JSON for POSTs

    def _host_ok(self) -> bool:
        port = self.server.ui.port
        allowed = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
        return self.headers.get("Host", "") in allowed

    def _reply(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        self._reply(status, json.dumps(data, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _client_ok(self) -> bool:
        """Only the daemon's own uid and the screen user's are served (ui/guard.py)."""
        if self.server.ui._guard.allowed(self.connection):
            return True
        self._json(HTTPStatus.FORBIDDEN, {"ok": False, "error": " / ".join(both("screen.forbidden")), **_refusal("screen.forbidden")})
        return False

    def do_GET(self) -> None:
        self.server.ui._guard.request_read(self.connection)
        if not self._client_ok():
            return
        if not self._host_ok():
            self._json(HTTPStatus.MISDIRECTED_REQUEST, {"ok": False, **_refusal("screen.bad_host")})
            return
        path = self.path.split("?", 1)[0]
        if path == "/events":
            self._events()
        elif path == "/api/state":
            self._json(HTTPStatus.OK, self.server.ui.state())
        elif path == "/api/commands":  # what the screen may send, from the one command table
            self._json(HTTPStatus.OK, {"commands": commands.for_source("ui")})
        elif path == "/favicon.ico":
            self._reply(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif path in STATIC_FILES:
            name, ctype = STATIC_FILES[path]
            csp = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                   "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
            body = texts.script() if path == "/texts.js" else (STATIC_DIR / name).read_bytes()
            self._reply(HTTPStatus.OK, texts.fill(body) if name == "index.html" else body, ctype,
                        {"Content-Security-Policy": csp})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"ok": False, **_refusal("screen.not_found")})

    def do_POST(self) -> None:
        ui = self.server.ui
        if not self._client_ok():
            return
        if not self._host_ok() or self.headers.get("Origin", "") != f"http://{self.headers.get('Host')}":
            self._json(HTTPStatus.FORBIDDEN, {"ok": False, **_refusal("screen.same_origin")})
            return
        if self.path.split("?", 1)[0] != "/api/command":
            self._json(HTTPStatus.NOT_FOUND, {"ok": False, **_refusal("screen.not_found")})
            return
        # a JSON content type cannot be sent cross-site without a CORS preflight we never answer
        if self.headers.get_content_type() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"ok": False, **_refusal("screen.json_only")})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"ok": False, **_refusal("screen.body_length")})
            return
        raw = self.rfile.read(length)
        ui._guard.request_read(self.connection)
        try:
            body = boundedjson.loads(raw, max_bytes=MAX_BODY, max_depth=MAX_BODY_DEPTH)
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            command = ui._command(body)
        except (ValueError, TypeError) as exc:  # TypeError: a validator surprised by a type; still a 400
            self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "error": str(exc),
                                                "error_zh": getattr(exc, "message", "") or zh("screen.bad_request")})
            return
        try:
            ui.on_command(command)
        except Exception as exc:  # the daemon could not take it: the page says so, we keep serving
            log.exception("screen command %s failed", command.name)
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ok": False, "error": str(exc)})
            return
        self._json(HTTPStatus.ACCEPTED, {"ok": True})

    def _events(self) -> None:
        ui = self.server.ui
        if not ui._guard.open_stream(self.connection, MAX_STREAMS):  # per client, and all together
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"ok": False, **_refusal("screen.too_many")})
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n")  # the browser retries every second after a restart
            seen = -1
            while not ui._stopping.is_set():
                with ui._cond:
                    ui._cond.wait_for(lambda: ui._rev != seen or ui._stopping.is_set(), timeout=KEEPALIVE_S)
                    if ui._stopping.is_set():
                        break
                    if ui._rev == seen:
                        chunk = b"event: ping\ndata: \n\n"  # lets the page spot a hung daemon
                    else:
                        seen = ui._rev
                        data = json.dumps(ui._state_locked(), ensure_ascii=False, separators=(",", ":"))
                        chunk = f"id: {seen}\nevent: state\ndata: {data}\n\n".encode()
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the browser went away; it reconnects on its own
        finally:
            ui._guard.close_stream(self.connection)
            self.close_connection = True
