"""A serial device on a real pseudo-terminal, reachable at a stable path.

The driver opens ``path`` (a symlink to the pty's slave side) with pyserial,
exactly as it opens /dev/swabkiosk-idcard on a Pi. ``unplug()`` hangs the pty
up and removes the symlink (the driver's reads fail, its reopen finds nothing),
``plug()`` makes a fresh pty behind the same symlink (as udev does on replug).
"""

from __future__ import annotations

import os
import select
import threading
import tty
from pathlib import Path


class PtyDevice:
    """Subclasses override ``on_receive(data)``; ``send(data)`` writes to the driver."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()

    # -- life cycle ---------------------------------------------------------

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        with self._lock:
            if self._master is not None:
                return
            master, slave = os.openpty()
            # Raw from the start: no echo or CR/LF translation before pyserial configures it.
            tty.setraw(slave)
            os.set_blocking(master, False)
            # Holding the slave open keeps the master readable while no driver has it open.
            self._master, self._slave = master, slave
            tmp = self.path.with_name(self.path.name + ".new")
            tmp.unlink(missing_ok=True)
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.path)  # atomic: the path never points at a dead pty
            self._thread = threading.Thread(target=self._pump, args=(master,), daemon=True,
                                            name=f"pty-{self.path.name}")
            self._thread.start()

    def unplug(self) -> None:
        with self._lock:
            master, slave, thread = self._master, self._slave, self._thread
            if master is None or slave is None:
                return
            self._master = self._slave = self._thread = None
            self.path.unlink(missing_ok=True)
            os.write(self._wake_w, b"x")
        if thread is not None:
            thread.join(timeout=2)
        os.close(master)  # hang-up: the driver's next read or write fails with EIO
        os.close(slave)
        os.read(self._wake_r, 16)

    def close(self) -> None:
        self.unplug()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self):
        self.plug()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- data ---------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Write bytes towards the driver. Like a real cable, bytes are lost when
        unplugged or when nobody reads them for a second; returns False then."""
        with self._lock:
            master = self._master
            if master is None:
                return False
            view = memoryview(data)
            while view:
                if not select.select([], [master], [], 1.0)[1]:
                    return False
                try:
                    view = view[os.write(master, view):]
                except BlockingIOError:
                    continue
            return True

    def on_receive(self, data: bytes) -> None:
        """Bytes the driver wrote. Called on the device's own thread."""

    def _pump(self, master: int) -> None:
        while True:
            ready, _, _ = select.select([master, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if data:
                self.on_receive(data)
