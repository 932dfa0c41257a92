"""Who may talk to the kiosk screen, and how much of it one client may hold (issue 13, findings 5, 6).

The screen listens on loopback, which every local user can reach. A loopback TCP connection
carries no credentials, but both of its ends are on this machine: the kernel knows the client's
socket and the uid that created it. Every accepted connection is looked up by its exact
four-tuple (client address:port -> this server's address:port, state ESTABLISHED) with one
``sock_diag`` netlink query (``/proc/net/tcp`` if netlink is refused: the same answer, but it
lists every socket, ~10 ms with 3,400 of them) and served only for the daemon's own uid and the
screen user's (``swabkiosk-screen``, which runs the kiosk browser). Anything else is refused
with 403: another local user, a client that closed before it was looked up (its entry is then a
time-wait socket, listed as uid 0), a kernel that cannot be asked.

A *client* is a uid (every loopback address is the same machine, so addresses tell nothing).
Each allowed uid has its own budget of connections and of ``/events`` streams, so one client
cannot use up another's; refused uids share a pool of MAX_REFUSED connections that are told
403, and beyond it are closed at once. Every connection must deliver its whole request within
REQUEST_TIMEOUT_S or it is shut down; the server speaks HTTP/1.0, so a connection ends with its
response and no idle keep-alive connection is held.
"""

from __future__ import annotations

import logging
import os
import pwd
import socket
import struct
import sys
import threading
import time
from typing import Iterable

log = logging.getLogger(__name__)

SCREEN_USER = "swabkiosk-screen"  # runs the kiosk browser (systemd/swabkiosk-screen.service)
PROC_NET = "/proc/net"
MAX_CONNECTIONS_PER_CLIENT = 32  # a browser opens ~6 at once; a page reload a few more
MAX_STREAMS_PER_CLIENT = 4  # one kiosk page, a reload whose old stream is not yet noticed, a tab
MAX_REFUSED = 4  # other users' connections being answered 403 at any one time (all of them together)
REQUEST_TIMEOUT_S = 5.0  # request line, headers and body, all of it, from the accept
REFUSED = -1  # the budget key of every not-allowed uid



def default_clients() -> set[int]:
    """The daemon's own uid and the screen user's, if that user exists; and whoever started it
    with sudo (``sudo bin/kiosk-sim``, then the page in their own desktop browser): systemd
    sets no SUDO_UID, and that user could act as root anyway."""
    uids = {os.geteuid()}
    try:
        uids.add(pwd.getpwnam(SCREEN_USER).pw_uid)
    except KeyError:
        pass
    if os.environ.get("SUDO_UID", "").isdigit():
        uids.add(int(os.environ["SUDO_UID"]))
    return uids


def _hex4(ip: str) -> str:
    return f"{int.from_bytes(socket.inet_aton(ip), sys.byteorder):08X}"


def _hex6(ip: str) -> str:
    raw = socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])
    return "".join(f"{int.from_bytes(raw[i:i + 4], sys.byteorder):08X}" for i in range(0, 16, 4))


def ends(sock: socket.socket) -> tuple[int, tuple, tuple] | None:
    """(family, client end, server end) of an accepted TCP connection; IPv4-mapped as IPv4."""
    try:
        peer, local = sock.getpeername(), sock.getsockname()
    except OSError:
        return None
    if sock.family == socket.AF_INET6 and peer[0].startswith("::ffff:") and "." in peer[0]:
        return socket.AF_INET, (peer[0][7:], peer[1]), (local[0].removeprefix("::ffff:"), local[1])
    return sock.family, peer[:2], local[:2]


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, TCP_ESTABLISHED = 4, 20, 1, 1


def diag_uid(family: int, client: tuple, server: tuple) -> int | None:
    """The client socket's uid by one exact ``sock_diag`` lookup (linux/inet_diag.h); raises OSError
    when netlink is not available."""
    def raw(ip: str) -> bytes:
        if family == socket.AF_INET:
            return socket.inet_aton(ip) + bytes(12)
        return socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])

    sockid = struct.pack("!HH16s16s", client[1], server[1], raw(client[0]), raw(server[0]))
    sockid += struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)  # any interface, no cookie
    req = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 1 << TCP_ESTABLISHED) + sockid
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.send(struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + req)
        data = nl.recv(8192)
    _, kind, _, _, _ = struct.unpack_from("=IHHII", data)
    if kind != SOCK_DIAG_BY_FAMILY or len(data) < 16 + 72:
        return None  # NLMSG_ERROR: no such socket (ENOENT) or not answered
    state = data[17]  # inet_diag_msg: family, state, timer, retrans, id (48 bytes), expires, rqueue, wqueue, uid
    uid = struct.unpack_from("=I", data, 16 + 4 + 48 + 12)[0]
    return uid if state == TCP_ESTABLISHED else None


def peer_uid(sock: socket.socket, proc_net: str = PROC_NET) -> int | None:
    """The uid owning the other end of a loopback TCP connection, or None if it cannot be told."""
    found = ends(sock)
    if found is None:
        return None
    family, peer, local = found
    try:
        return diag_uid(family, peer, local)
    except OSError:  # netlink refused (a sandbox without AF_NETLINK): ask /proc instead
        return proc_uid(family, peer, local, proc_net)


def proc_uid(family: int, peer: tuple, local: tuple, proc_net: str = PROC_NET) -> int | None:
    """The client socket's uid from ``/proc/net/tcp`` (``tcp6``): its line, found by the four-tuple."""
    table, hexaddr = ("tcp", _hex4) if family == socket.AF_INET else ("tcp6", _hex6)
    try:
        needle = f" {hexaddr(peer[0])}:{peer[1]:04X} {hexaddr(local[0])}:{local[1]:04X} 01 ".encode()
        with open(os.path.join(proc_net, table), "rb") as f:
            data = f.read()
    except (OSError, ValueError) as exc:
        log.error("screen: cannot tell who is connecting (%s/%s: %s): refused", proc_net, table, exc)
        return None
    at = data.find(needle)
    if at < 0:
        return None
    fields = data[data.rfind(b"\n", 0, at) + 1:data.find(b"\n", at)].split()
    try:
        return int(fields[7])  # sl local rem st tx:rx tr:when retrnsmt uid ...
    except (IndexError, ValueError):
        return None


class Guard:
    """Admission, budgets and request deadlines for the screen server's connections."""

    def __init__(self, clients: Iterable[int] | None = None, *, proc_net: str = PROC_NET) -> None:
        self.clients = frozenset(default_clients() if clients is None else clients)
        self.proc_net = proc_net
        self._lock = threading.Lock()
        self._peers: dict[socket.socket, int] = {}  # admitted connection -> its budget key
        self._open: dict[int, int] = {}
        self._streams: dict[int, int] = {}
        self._deadlines: dict[socket.socket, float] = {}
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._reaper = threading.Thread(target=self._reap_loop, name="ui-reaper", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)

    # ----------------------------------------------------------- connections
    def admit(self, sock: socket.socket) -> bool:
        """Called for each accepted connection before it gets a thread: False closes it now."""
        uid = peer_uid(sock, self.proc_net)
        key = uid if uid is not None and uid in self.clients else REFUSED
        cap = MAX_CONNECTIONS_PER_CLIENT if key != REFUSED else MAX_REFUSED
        with self._lock:
            if self._open.get(key, 0) >= cap:
                return False
            self._open[key] = self._open.get(key, 0) + 1
            self._peers[sock] = key
            self._deadlines[sock] = time.monotonic() + REQUEST_TIMEOUT_S
        return True

    def allowed(self, sock: socket.socket) -> bool:
        with self._lock:
            return self._peers.get(sock, REFUSED) != REFUSED

    def request_read(self, sock: socket.socket) -> None:
        """The whole request is in: the deadline no longer applies (a stream may last)."""
        with self._lock:
            self._deadlines.pop(sock, None)

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)
            key = self._peers.pop(sock, None)
            if key is not None:
                self._open[key] -= 1

    def connections(self) -> dict[int, int]:
        """Open connections per budget key (uid, or REFUSED): for tests and diagnosis."""
        with self._lock:
            return {k: v for k, v in self._open.items() if v}

    # ----------------------------------------------------------- streams
    def open_stream(self, sock: socket.socket, total: int) -> bool:
        with self._lock:
            key = self._peers.get(sock, REFUSED)
            if (key == REFUSED or self._streams.get(key, 0) >= MAX_STREAMS_PER_CLIENT
                    or sum(self._streams.values()) >= total):
                return False
            self._streams[key] = self._streams.get(key, 0) + 1
            return True

    def close_stream(self, sock: socket.socket) -> None:
        with self._lock:
            key = self._peers.get(sock, REFUSED)
            if self._streams.get(key, 0) > 0:
                self._streams[key] -= 1

    # ----------------------------------------------------------- deadlines
    def reap(self) -> int:
        """Shut down every connection whose request is not complete by its deadline."""
        now = time.monotonic()
        with self._lock:
            late = [s for s, at in self._deadlines.items() if at <= now]
            for s in late:
                del self._deadlines[s]
        for s in late:
            try:
                s.shutdown(socket.SHUT_RDWR)  # its handler's read returns at once and it ends
            except OSError:
                pass
        return len(late)

    def _reap_loop(self) -> None:
        while not self._stop.wait(0.25):
            self.reap()
