"""An ESC/POS thermal printer where the real one would sit: a byte sink on TCP
(like port 9100) or on a pseudo-terminal (like a USB-serial printer).

It parses the byte stream back into labels (text lines in GB18030 Chinese
mode or the code page, barcodes with symbology and data, QR data, cuts),
answers DLE EOT status queries as an Epson-compatible printer does, and can
be told to run out of paper, be unplugged, or answer slowly.

``EscposParser`` is sans-I/O: feed it bytes in any chunks, get labels and
status queries out. It raises ``EscposParseError`` (and nothing else) on a
stream a printer would not understand, so the tests catch our own bugs.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import tempfile
import threading
import time
import tty
from dataclasses import dataclass, field

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10

# GS k function B symbology numbers (Epson ESC/POS)
SYMBOLOGIES = {65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF",
               71: "CODABAR", 72: "CODE93", 73: "CODE128", 74: "GS1-128",
               75: "GS1 DATABAR OMNIDIRECTIONAL", 76: "GS1 DATABAR TRUNCATED",
               77: "GS1 DATABAR LIMITED", 78: "GS1 DATABAR EXPANDED"}
# ESC x / GS x commands taking a fixed number of parameter bytes
_ESC_ARGS = {b"@": 0, b"!": 1, b"E": 1, b"-": 1, b"M": 1, b"a": 1, b"d": 1, b"J": 1, b"t": 1,
             b"{": 1, b"G": 1, b"2": 0, b"3": 1, b"r": 1, b"V": 1, b"R": 1, b"c": 2, b"p": 3,
             b"=": 1, b" ": 1, b"e": 1}
_GS_ARGS = {b"!": 1, b"B": 1, b"b": 1, b"|": 1, b"h": 1, b"w": 1, b"f": 1, b"H": 1,
            b"L": 2, b"W": 2, b"a": 1}
_FS_ARGS = {b"&": 0, b".": 0, b"!": 1, b"C": 1, b"-": 1, b"W": 1}


class EscposParseError(ValueError):
    """The byte stream is not ESC/POS this printer understands."""


@dataclass(frozen=True)
class PrintedLabel:
    """What came out of the printer between two cuts."""

    lines: tuple[str, ...]
    barcodes: tuple[tuple[str, str], ...]  # (symbology, decoded data)
    qrs: tuple[str, ...]
    images: int = 0
    cut: str = "partial"  # "partial" | "full"

    @property
    def barcode(self) -> str:
        return self.barcodes[0][1] if self.barcodes else ""


@dataclass(frozen=True)
class StatusQuery:
    """DLE EOT n: the host asks for real-time status n (1..4)."""

    n: int


def decode_code128(data: bytes) -> str:
    """ESC/POS Code128 data (code set prefixes ``{A``/``{B``/``{C``, ``{{``) -> text."""
    if len(data) < 2 or data[0] != 0x7B or data[1] not in b"ABC":
        raise EscposParseError(f"Code128 data must start with {{A, {{B or {{C: {data[:4]!r}")
    out: list[str] = []
    codeset = ""
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x7B:  # '{' escapes in every code set (code C values stop at 99)
            if i + 1 >= len(data):
                raise EscposParseError("Code128 data ends in '{'")
            nxt = data[i + 1]
            if nxt in b"ABC":
                codeset = chr(nxt)
            elif nxt == 0x7B:
                out.append("{")
            else:
                raise EscposParseError(f"unsupported Code128 function {{{chr(nxt)!r}")
            i += 2
            continue
        if codeset == "C":
            if b > 99:
                raise EscposParseError(f"Code128 code set C value {b} > 99")
            out.append(f"{b:02d}")
        elif codeset == "B":
            if not 32 <= b <= 127:
                raise EscposParseError(f"Code128 code set B byte {b:#x}")
            out.append(chr(b))
        else:
            if b > 95:
                raise EscposParseError(f"Code128 code set A byte {b:#x}")
            out.append(chr(b))
        i += 1
    return "".join(out)


def decode_raster(bits: bytes, width_bytes: int, height: int) -> list[str]:
    """The Code 128 barcodes in a GS v 0 raster image (1 bit a dot, MSB first, 1 = black),
    decoded as a scanner would (zxing-cpp), with a white quiet zone added around it."""
    if not width_bytes or not height:
        return []
    import numpy as np
    import zxingcpp

    dots = np.unpackbits(np.frombuffer(bits, dtype=np.uint8).reshape(height, width_bytes), axis=1)
    grey = np.where(dots == 1, 0, 255).astype(np.uint8)
    grey = np.pad(grey, 20, constant_values=255)
    return [r.text for r in zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.Code128))]


@dataclass
class _Page:
    lines: list[str] = field(default_factory=list)
    barcodes: list[tuple[str, str]] = field(default_factory=list)
    qrs: list[str] = field(default_factory=list)
    images: int = 0


class EscposParser:
    """Incremental ESC/POS parser. ``feed(data)`` -> labels and status queries."""

    def __init__(self, chinese_default: bool = False) -> None:
        # An export-firmware printer starts in single-byte mode: the host must
        # send FS & itself to get Chinese, which is what we want to prove.
        self._chinese_default = chinese_default
        self._chinese = chinese_default
        self._buf = bytearray()
        self._text = bytearray()  # bytes of the current line in the current mode
        self._parts: list[str] = []  # decoded pieces of the current line
        self._page = _Page()
        self._qr_store = b""

    def feed(self, data: bytes) -> list[PrintedLabel | StatusQuery]:
        self._buf += data
        out: list[PrintedLabel | StatusQuery] = []
        while self._buf:
            used = self._step(out)
            if used == 0:
                break
            del self._buf[:used]
        return out

    def close(self) -> PrintedLabel | None:
        """End of stream: an unfinished command is an error; uncut text is returned."""
        if self._buf:
            raise EscposParseError(f"stream ends inside a command: {bytes(self._buf[:8])!r}")
        self._flush_line(force=False)
        page, self._page = self._page, _Page()
        if page.lines or page.barcodes or page.qrs or page.images:
            return PrintedLabel(tuple(page.lines), tuple(page.barcodes), tuple(page.qrs),
                                page.images, cut="none")
        return None

    # -- internals ---------------------------------------------------------

    def _decode_text(self) -> None:
        if not self._text:
            return
        raw = bytes(self._text)
        self._text.clear()
        if self._chinese:
            try:
                self._parts.append(raw.decode("gb18030"))
            except UnicodeDecodeError as exc:
                raise EscposParseError(f"invalid GB18030 text {raw[:16]!r}") from exc
        else:
            self._parts.append(raw.decode("cp437"))

    def _flush_line(self, force: bool) -> None:
        self._decode_text()
        if self._parts or force:
            self._page.lines.append("".join(self._parts))
            self._parts = []

    def _cut(self, mode: str) -> PrintedLabel:
        self._flush_line(force=False)
        page, self._page = self._page, _Page()
        return PrintedLabel(tuple(page.lines), tuple(page.barcodes), tuple(page.qrs), page.images,
                            cut=mode)

    def _step(self, out: list) -> int:
        """Consume one command or text byte run; 0 = need more bytes."""
        buf = self._buf
        b = buf[0]
        if b >= 0x20:
            end = 1
            while end < len(buf) and buf[end] >= 0x20:
                end += 1
            self._text += buf[:end]  # decoded at the line end: chunks may split a character
            return end
        if b == 0x0A:
            self._flush_line(force=True)
            return 1
        if b == 0x0D:
            return 1
        if b == 0x0C:  # FF: print and return to standard mode
            self._flush_line(force=False)
            return 1
        if len(buf) < 2:
            return 0
        c = bytes(buf[1:2])
        if b == DLE:
            if c == b"\x04":
                if len(buf) < 3:
                    return 0
                if not 1 <= buf[2] <= 4:
                    raise EscposParseError(f"DLE EOT {buf[2]}: no such status")
                out.append(StatusQuery(buf[2]))
                return 3
            raise EscposParseError(f"unsupported real-time command DLE {c!r}")
        if b == ESC:
            if c not in _ESC_ARGS:
                raise EscposParseError(f"unsupported command ESC {c!r}")
            n = 2 + _ESC_ARGS[c]
            if len(buf) < n:
                return 0
            self._decode_text()
            if c == b"@":
                self._chinese = self._chinese_default
            elif c in (b"d", b"J"):
                self._flush_line(force=False)
            return n
        if b == FS:
            if c not in _FS_ARGS:
                raise EscposParseError(f"unsupported command FS {c!r}")
            n = 2 + _FS_ARGS[c]
            if len(buf) < n:
                return 0
            self._decode_text()
            if c == b"&":
                self._chinese = True
            elif c == b".":
                self._chinese = False
            return n
        if b == GS:
            return self._gs(c, out)
        raise EscposParseError(f"unexpected control byte {b:#04x}")

    def _gs(self, c: bytes, out: list) -> int:
        buf = self._buf
        if c in _GS_ARGS:
            n = 2 + _GS_ARGS[c]
            return n if len(buf) >= n else 0
        if c == b"V":
            if len(buf) < 3:
                return 0
            m = buf[2]
            if m in (0, 1, 48, 49):
                out.append(self._cut("full" if m in (0, 48) else "partial"))
                return 3
            if m in (65, 66, 97, 98, 103, 104):
                if len(buf) < 4:
                    return 0
                out.append(self._cut("full" if m in (65, 97, 103) else "partial"))
                return 4
            raise EscposParseError(f"GS V {m}: no such cut")
        if c == b"k":
            return self._barcode()
        if c == b"(":
            if len(buf) < 5:
                return 0
            length = buf[3] | buf[4] << 8
            if len(buf) < 5 + length:
                return 0
            body = bytes(buf[5:5 + length])
            if buf[2:3] == b"k":
                self._two_d(body)
            elif buf[2:3] == b"L":
                self._page.images += body[1:2] == b"2"  # fn 50: print stored graphics
            else:
                raise EscposParseError(f"unsupported command GS ( {chr(buf[2])!r}")
            return 5 + length
        if c == b"v":  # GS v 0 m xL xH yL yH raster image
            if len(buf) < 8:
                return 0
            if buf[2] != 0x30:
                raise EscposParseError("GS v: only raster '0' is supported")
            size = (buf[4] | buf[5] << 8) * (buf[6] | buf[7] << 8)
            if len(buf) < 8 + size:
                return 0
            self._flush_line(force=False)
            self._page.images += 1
            width_bytes, height = buf[4] | buf[5] << 8, buf[6] | buf[7] << 8
            for text in decode_raster(bytes(buf[8:8 + size]), width_bytes, height):
                self._page.barcodes.append(("CODE128", text))
            return 8 + size
        raise EscposParseError(f"unsupported command GS {c!r}")

    def _barcode(self) -> int:
        buf = self._buf
        if len(buf) < 3:
            return 0
        m = buf[2]
        if m <= 6:  # function A: NUL-terminated
            end = buf.find(b"\x00", 3)
            if end < 0:
                return 0
            data, used, name = bytes(buf[3:end]), end + 1, SYMBOLOGIES.get(m + 65, "?")
        elif m in SYMBOLOGIES:
            if len(buf) < 4 or len(buf) < 4 + buf[3]:
                return 0
            data, used, name = bytes(buf[4:4 + buf[3]]), 4 + buf[3], SYMBOLOGIES[m]
        else:
            raise EscposParseError(f"GS k {m}: no such barcode system")
        if not data:
            raise EscposParseError(f"empty {name} barcode")
        self._flush_line(force=False)
        if name in ("CODE128", "GS1-128"):
            text = decode_code128(data)
        else:
            try:
                text = data.decode("ascii")
            except UnicodeDecodeError as exc:
                raise EscposParseError(f"non-ASCII {name} barcode data") from exc
        self._page.barcodes.append((name, text))
        return used

    def _two_d(self, body: bytes) -> None:
        if len(body) < 2:
            raise EscposParseError("GS ( k: too short")
        cn, fn = body[0], body[1]
        if cn != 49:  # only QR (cn '1'); PDF417 and others are not used by us
            raise EscposParseError(f"GS ( k: unsupported 2D code cn={cn}")
        if fn == 80:  # store data (after m '0')
            self._qr_store = body[3:]
        elif fn == 81:  # print stored data
            if not self._qr_store:
                raise EscposParseError("QR print with no stored data")
            try:
                text = self._qr_store.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EscposParseError("QR data is not UTF-8") from exc
            self._flush_line(force=False)
            self._page.qrs.append(text)
        elif fn not in (65, 67, 69, 82):  # model, module size, error level, size query
            raise EscposParseError(f"GS ( k: unsupported QR function {fn}")


# --------------------------------------------------------------------------
# The simulated printer
# --------------------------------------------------------------------------


class PrinterMock:
    """A printer on TCP 127.0.0.1:<free port> (``transport="tcp"``) or on a pty.

    ``target`` is what the driver is configured with (``tcp://127.0.0.1:PORT``
    or ``serial:/dev/pts/N``). Printed labels collect in ``labels``; a label
    sent while the paper is out is lost as on a real printer (``dropped``)."""

    def __init__(self, transport: str = "tcp", paper_left: int | None = None) -> None:
        if transport not in ("tcp", "pty"):
            raise ValueError(transport)
        self.transport = transport
        self.labels: list[PrintedLabel] = []
        self.dropped: list[PrintedLabel] = []
        self.errors: list[str] = []  # parse errors: the host sent something wrong
        self.queries = 0
        self.paper_left = paper_left  # labels left on the roll; None = endless
        self.out_at_last_label = False  # True: paper out reported right after the last label printed
        self._out = paper_left == 0  # the paper-end sensor
        self.near_end = False
        self.cover_open = False
        self.slow = 0.0  # seconds before each status answer
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self.port = 0
        self._master = self._slave = -1
        self._pty_thread: threading.Thread | None = None
        self._pty_up = threading.Event()
        self._dir = ""
        self.device = ""  # pty: a symlink to the current /dev/pts/N, as udev gives a real printer

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> PrinterMock:
        if self.transport == "tcp":
            self._listen()
        else:
            self._dir = tempfile.mkdtemp(prefix="printer-mock-")
            self.device = os.path.join(self._dir, "printer")
            self._open_pty()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.unplug()
        for t in self._threads:
            t.join(timeout=5)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PrinterMock:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def target(self) -> str:
        return f"tcp://127.0.0.1:{self.port}" if self.transport == "tcp" else f"serial:{self.device}"

    # -- faults ------------------------------------------------------------

    def paper_out(self) -> None:
        with self._cond:
            self.paper_left, self._out = 0, True

    def refill(self) -> None:
        with self._cond:
            self.paper_left, self._out = None, False

    def unplug(self) -> None:
        """The printer loses power or its cable: TCP stops listening and drops
        connections; the pty closes and its device link disappears."""
        if self.transport == "pty":
            self._close_pty()
            return
        with self._cond:
            listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        self.drop_connections()

    def drop_connections(self) -> None:
        """TCP: close open connections but keep listening (an idle timeout)."""
        with self._cond:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def replug(self) -> None:
        if self.transport == "tcp":
            self._listen()
        else:
            self._open_pty()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[PrintedLabel]:
        """Block until ``count`` labels have printed (or the timeout passes)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.labels) >= count, timeout=timeout)
            return list(self.labels)

    # -- status bytes (Epson DLE EOT n) -------------------------------------

    def status_byte(self, n: int) -> int:
        out = self._out
        if n == 1:  # printer status: bit 3 offline
            return 0x12 | (0x08 if out or self.cover_open else 0)
        if n == 2:  # offline cause: bit 2 cover open, bit 5 stopped by paper end
            return 0x12 | (0x04 if self.cover_open else 0) | (0x20 if out else 0)
        if n == 3:  # error status: none simulated
            return 0x12
        return 0x12 | (0x0C if self.near_end else 0) | (0x60 if out else 0)  # paper sensor

    # -- transports --------------------------------------------------------

    def _spawn(self, fn, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True, name="printer-mock")
        t.start()
        self._threads.append(t)

    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(1)
        self.port = s.getsockname()[1]
        self._listener = s
        self._spawn(self._accept, s)

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # unplugged
            with self._cond:
                self._conns.append(conn)
            self._spawn(self._serve_socket, conn)

    def _serve_socket(self, conn: socket.socket) -> None:
        parser = EscposParser()
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except OSError:
                return
            if not data:
                return
            if not self._handle(parser, data, lambda b: conn.sendall(b)):
                return

    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tmp = self.device + ".new"
        os.symlink(os.ttyname(self._slave), tmp)
        os.replace(tmp, self.device)
        self._pty_up.set()
        self._pty_thread = threading.Thread(target=self._serve_pty, args=(self._master,), daemon=True,
                                            name="printer-mock-pty")
        self._pty_thread.start()

    def _close_pty(self) -> None:
        self._pty_up.clear()
        if self._pty_thread is not None:
            self._pty_thread.join(timeout=5)  # it stops using the fds before they close
            self._pty_thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.device and os.path.lexists(self.device):
            os.unlink(self.device)

    def _serve_pty(self, master: int) -> None:
        parser = EscposParser()
        while self._pty_up.is_set() and not self._stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            self._handle(parser, data, lambda b: os.write(master, b))

    def _handle(self, parser: EscposParser, data: bytes, reply) -> bool:
        try:
            items = parser.feed(data)
        except EscposParseError as exc:
            with self._cond:
                self.errors.append(str(exc))
                self._cond.notify_all()
            return False
        for item in items:
            if isinstance(item, StatusQuery):
                if self.slow:
                    time.sleep(self.slow)
                with self._cond:
                    self.queries += 1
                    answer = bytes([self.status_byte(item.n)])
                try:
                    reply(answer)
                except OSError:
                    return False
                continue
            with self._cond:
                if self.paper_left == 0:  # the roll ends: this label never comes out
                    self._out = True
                    self.dropped.append(item)
                else:
                    if self.paper_left is not None:
                        self.paper_left -= 1
                        # a printer whose end sensor trips as the last label feeds out: it
                        # printed, and its next status already says paper out
                        self._out = self.paper_left == 0 and self.out_at_last_label
                    self.labels.append(item)
                self._cond.notify_all()
        return True
