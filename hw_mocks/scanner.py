"""A handheld scanner on a pseudo-terminal: each scan is one line of bytes.

    scanner = SimScanner(tmp_path / "scanner", terminator=b"\\r")
    scanner.scan("SWABCMD:close_tube")
    scanner.scan("SWB1:...", chunks=7)    # the USB-CDC link may split a line
    scanner.send(b"\\x00\\xff")            # garbage
    scanner.unplug(); scanner.plug()
"""

from __future__ import annotations

import time

from hw_mocks.pty_device import PtyDevice


class SimScanner(PtyDevice):
    def __init__(self, path, *, terminator: bytes = b"\r", prefix: bytes = b"", suffix: bytes = b"",
                 plug: bool = True) -> None:
        super().__init__(path)
        self.terminator = terminator
        self.prefix = prefix
        self.suffix = suffix
        if plug:
            self.plug()

    def scan(self, text: str, *, chunks: int = 1, gap_s: float = 0.0, encoding: str = "utf-8") -> bool:
        """Send one scan, optionally split into ``chunks`` writes ``gap_s`` apart."""
        line = self.prefix + text.encode(encoding) + self.suffix + self.terminator
        size = max(1, -(-len(line) // max(1, chunks)))
        ok = True
        for i in range(0, len(line), size):
            if i and gap_s:
                time.sleep(gap_s)
            ok = self.send(line[i : i + size]) and ok
        return ok
