"""The station core stays sans-I/O and in small modules (issue: one place for each thing)."""

from __future__ import annotations

import ast
import pathlib

STATION = pathlib.Path(__file__).resolve().parents[1] / "firmware_app" / "station"
IO = {"sqlite3", "serial", "paho", "socket", "threading", "escpos", "subprocess", "os", "time", "select",
      "http", "urllib", "asyncio", "logging"}


def _imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_the_station_modules_import_no_io_library():
    modules = sorted(STATION.glob("*.py"))
    assert len(modules) >= 5
    for path in modules:
        assert not _imports(path) & IO, (path.name, _imports(path) & IO)


def test_the_station_modules_import_only_the_core_of_the_app():
    # the rules may use the model, the pure checks (ID numbers, codes, volunteers, config) and
    # each other: never the store, the uplink, the runtime, drivers or the screen
    allowed = {"firmware_app.model", "firmware_app.idnumber", "firmware_app.phone", "firmware_app.qr",
               "firmware_app.volunteers", "firmware_app.labels", "firmware_app.commands", "firmware_app.privacy",  # pure
               "firmware_app.config", "firmware_app.station"}
    for path in STATION.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("firmware_app"):
                names = [node.module] if node.module != "firmware_app" else [f"firmware_app.{a.name}" for a in node.names]
                for name in names:
                    assert any(name == a or name.startswith(a + ".") for a in allowed), (path.name, name)


def test_no_station_module_outgrows_one_sitting():
    for path in STATION.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name
