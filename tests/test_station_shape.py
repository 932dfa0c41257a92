"""The station core stays sans-I/O and in small modules (issue: one place for each thing)."""

from __future__ import annotations

import ast
import pathlib
import re

from firmware_app import catalogue

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
               "firmware_app.config", "firmware_app.station",
               "firmware_app.catalogue"}  # the message catalogue: dicts of texts, no I/O
    for path in STATION.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("firmware_app"):
                names = [node.module] if node.module != "firmware_app" else [f"firmware_app.{a.name}" for a in node.names]
                for name in names:
                    assert any(name == a or name.startswith(a + ".") for a in allowed), (path.name, name)


def test_no_station_module_outgrows_one_sitting():
    for path in STATION.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


ROOT = STATION.parents[1]
OWN = [*sorted(STATION.glob("*.py")), *(ROOT / "firmware_app" / name for name in ("commands.py", "labels.py", "model.py",
                                                                                  "privacy.py"))]
HAN = re.compile(r"[\u3400-\u9fff]")


def test_no_chinese_text_outside_the_catalogue():
    # every text a person sees or hears is a catalogue key (issue 14, item 3): docstrings and
    # comments name the key or say it in English
    for path in OWN:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not HAN.search(line), f"{path.name}:{n}: {line.strip()}"


def test_every_key_the_rules_name_is_in_the_catalogue():
    # a key is looked up only when its branch runs: a typo in a rare refusal would be a
    # KeyError at the table, so every literal key (and every prefix of an f-string key) is checked here
    keys = catalogue.keys()
    named = 0
    for path in OWN:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if func not in ("words", "zh", "en", "both", "_zh", "_line", "_spec", "_card", "_speak"):
                continue
            first = node.args[0]
            prefix = {"_spec": "command.", "_card": "command.card."}.get(func, "")
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                assert prefix + first.value in keys, (path.name, node.lineno, first.value)
                named += 1
            elif isinstance(first, ast.JoinedStr) and isinstance(first.values[0], ast.Constant):
                stem = prefix + str(first.values[0].value)
                assert any(k.startswith(stem) for k in keys), (path.name, node.lineno, stem)
                named += 1
    assert named > 150


def test_every_value_a_key_is_built_from_has_its_text():
    # keys built from a value (f"tube.mode.{mode}"): each value of the closed set has its text
    from firmware_app import commands
    from firmware_app.model import POOL_CAPACITY

    keys = set(catalogue.keys())
    wanted = ({f"tube.mode.{m}" for m in (*commands.MODES, *POOL_CAPACITY)}
              | {f"person.id_type.{t}" for t in commands.ID_TYPES}
              | {f"person.colour.{c}" for c in (*commands.COLOURS, "none")}
              | {f"person.single.{r}" for r in ("red_code", "yellow_code", "key_person")}
              | {f"tube.state.{s}" for s in ("open", "closed", "replaced")}
              | {f"tube.close_why.{w}" for w in ("manual", "household", "end_of_queue")}
              | {f"station.view.{v}" for v in commands.COMMANDS["open_view"].args_by_name["view"].choices}
              | {f"command.source.{s}" for s in commands.SOURCES}
              | {f"device.{d}" for d in ("idcard", "scanner", "camera", "printer", "broker", "store")})
    assert wanted - keys == set()
