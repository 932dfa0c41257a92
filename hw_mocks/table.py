"""A simulated sampling table: every device mock where the hardware would be.

    table = Table(workdir).start()
    cfg_text = table.station_file(data_dir, broker="mqtt://127.0.0.1:1883")
    ...the kiosk runs on cfg_text: the real drivers open the ptys and the TCP printer...
    table.sign_in()                  # the volunteer scans their certificate
    table.present(person)            # card on the reader / code at the scanner or camera
    table.take_away(person)          # card lifted, phone away
    table.command("close_tube")      # a laminated command card scanned

The ID-card reader and the scanner are pseudo-terminals behind stable paths (the
real pyserial drivers open them), the printer listens on TCP and parses the
ESC/POS back into labels, the camera is a directory of frames rendered from the
QR payloads. A throwaway authority signs the codes and the operator certificate.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from hw_mocks.people import Authority, People, Person

T = TypeVar("T")

if TYPE_CHECKING:
    from hw_mocks.idcard_reader import SimIdCardReader
    from hw_mocks.printer import PrinterMock
    from hw_mocks.scanner import SimScanner

OPERATOR = ("SIM-V-0001", "李志愿")
ALL_DEVICES = ("idcard", "scanner", "camera", "printer")
FRAME_W, FRAME_H = 1280, 720  # hw_mocks.camera's frame size


class Table:
    def __init__(self, workdir: str | os.PathLike, *, devices: tuple[str, ...] = ALL_DEVICES,
                 printer_target: str | None = None, seed: int = 2022) -> None:
        self.dir = Path(workdir)
        self.devices = devices
        self.printer_target = printer_target  # an outside printer instead of our mock
        self.authority = Authority()
        self.people = People(seed)
        self.reader: SimIdCardReader | None = None
        self.scanner: SimScanner | None = None
        self.printer: PrinterMock | None = None
        self.frames_dir = self.dir / "camera"
        self._frame_no = 0

    # ------------------------------------------------------------ life cycle
    def start(self) -> Table:
        from hw_mocks.idcard_reader import SimIdCardReader
        from hw_mocks.scanner import SimScanner

        (self.dir / "dev").mkdir(parents=True, exist_ok=True, mode=0o700)
        if "idcard" in self.devices:
            self.reader = SimIdCardReader(self.dir / "dev" / "idcard")
        if "scanner" in self.devices:
            self.scanner = SimScanner(self.dir / "dev" / "scanner", terminator=b"\r")
        if "printer" in self.devices and self.printer_target is None:
            from hw_mocks.printer import PrinterMock

            self.printer = PrinterMock("tcp").start()
        if "camera" in self.devices:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
            self._show_frame(None)
        volunteers = {"volunteers": [{"cert_id": OPERATOR[0], "name": OPERATOR[1], "expires": "2099-12-31"}]}
        (self.dir / "volunteers.json").write_text(json.dumps(volunteers, ensure_ascii=False), encoding="utf-8")
        return self

    def stop(self) -> None:
        """Unplug everything and remove what the table put in its directory (not the store)."""
        for mock in (self.reader, self.scanner):
            if mock is not None:
                mock.close()
        if self.printer is not None:
            self.printer.stop()
        for path in (self.frames_dir, self.dir / "dev"):
            shutil.rmtree(path, ignore_errors=True)
        for name in ("mqtt-password", "volunteers.json", "frame.pgm.new"):
            (self.dir / name).unlink(missing_ok=True)

    def __enter__(self) -> Table:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------- the station file
    def station_file(self, data_dir: str, *, broker: str = "", mode: str = "10", ui_port: int = 8080,
                     poll_ms: int = 50, camera_fps: int = 5) -> str:
        """A complete station file (TOML) pointing every device at its mock.

        ``broker`` may carry credentials (mqtt://USER:PASS@HOST:PORT); a username shaped
        like a topic path (district/site/table, as the district's ACL wants) also names
        the simulated table, so its records land where that user may publish."""
        from urllib.parse import unquote, urlsplit

        printer = self.printer_target or (self.printer.target if self.printer else "")
        where: tuple[str, ...] = ("sim", "demo-site", "t01")
        mqtt = [f'url = "{broker}"']
        if broker:
            parts = urlsplit(broker)
            netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            mqtt = [f'url = "{parts.scheme}://{netloc}"']
            if parts.username:
                user = unquote(parts.username)
                mqtt.append(f'username = "{user}"')
                if user.count("/") == 2:
                    where = tuple(user.split("/"))
            if parts.password is not None:
                secret = self.dir / "mqtt-password"
                secret.write_text(unquote(parts.password))
                secret.chmod(0o600)
                mqtt.append(f'password_file = "{secret}"')
        self.where = where  # the card signatures are bound to district/site
        sections = [
            "[station]",
            f'device_id = "sim-{where[2]}"',
            f'district = "{where[0]}"',
            f'site = "{where[1]}"',
            f'table = "{where[2]}"',
            'site_name = "模拟采样点 1号台"',
            "",
            "[sampling]",
            f'mode = "{mode}"',
            'tubes_source = "print"',
            'tube_prefix = "SIM1"',
            "box_capacity = 50",
            "",
            "[authority]",
            f'sampling_code_keys = ["{self.authority.personal_public_b64}"]',
            f'operator_keys = ["{self.authority.operator_public_b64}"]',
            "max_code_age_hours = 72",
            "",
            "[volunteers]",
            f'list_file = "{self.dir / "volunteers.json"}"',
            "",
        ]
        if self.reader is not None:
            sections += ["[devices.idcard]", f'port = "{self.reader.path}"', "baud = 115200",
                         f"poll_ms = {poll_ms}", ""]
        if self.scanner is not None:
            sections += ["[devices.scanner]", f'port = "{self.scanner.path}"', "baud = 9600",
                         'terminator = "CR"', ""]
        camera = f"dir:{self.frames_dir}" if "camera" in self.devices else "none"
        sections += ["[devices.camera]", f'source = "{camera}"', 'decoder = "zxing"', f"fps = {camera_fps}", ""]
        if printer:
            sections += ["[devices.printer]", f'target = "{printer}"', ""]
        sections += ["[store]", f'data_dir = "{data_dir}"', "", "[mqtt]", *mqtt, "",
                     "[ui]", f"port = {ui_port}", "sound = false", ""]
        return "\n".join(sections)

    # ---------------------------------------------------------- what happens
    def sign_in(self) -> str:
        cert = self.authority.operator_cert(*OPERATOR, issued_at=time.time() - 60)
        self.scan(cert)
        return cert

    def code_for(self, person: Person) -> str:
        return self.authority.sampling_code(person, issued_at=time.time() - 600)

    def present(self, person: Person) -> None:
        """The person shows their card or code, the way ``person.via`` says."""
        if person.via == "card":
            self._device(self.reader, "idcard").place(person.id_card())
        elif person.via == "camera":
            self._show_frame(self.code_for(person))
        else:
            self.scan(self.code_for(person))

    def take_away(self, person: Person) -> None:
        if person.via == "card":
            self._device(self.reader, "idcard").lift()
        elif person.via == "camera":
            self._show_frame(None)

    def scan(self, text: str) -> None:
        self._device(self.scanner, "scanner").scan(text)

    @staticmethod
    def _device(device: T | None, name: str) -> T:
        if device is None:
            raise RuntimeError(f"this table has no {name} (devices={name!r} not started)")
        return device

    def card_code(self, text: str) -> str:
        """A command card's text signed for this table's site with the mock authority's operator key."""
        from firmware_app import commands

        district, site, _ = getattr(self, "where", ("sim", "demo-site", "t01"))
        return commands.sign_card(self.authority.operator_key, text, district, site)

    def command(self, name: str, arg: str | None = None) -> None:
        self.scan(self.card_code(f"SWABCMD:{name}" + (f":{arg}" if arg is not None else "")))

    def _show_frame(self, payload: str | None) -> None:
        """What the camera sees now: a phone with the code, or the empty table.

        One file, replaced atomically: the driver replays the directory in a loop and so
        always reads the current scene, never half a file. Binary PGM: the empty table
        needs no numpy (a fast start), and it reads back in about a millisecond."""
        if payload is None:
            pixels = bytes([150]) * (FRAME_W * FRAME_H)  # a plain grey table top
        else:
            from hw_mocks.camera import render_frame

            pixels = render_frame(payload, seed=self._frame_no, noise=0.0).tobytes()
        self._frame_no += 1
        tmp = self.dir / "frame.pgm.new"
        tmp.write_bytes(b"P5\n%d %d\n255\n" % (FRAME_W, FRAME_H) + pixels)
        os.replace(tmp, self.frames_dir / "frame.pgm")
