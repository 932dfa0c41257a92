"""The one command table: the station, the screen, the printed card and the docs read it."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request

import pytest

from drivers.command_card import command_labels
from firmware_app import commands
from firmware_app.commands import Arg, Spec
from firmware_app.model import Command
from firmware_app.ui.server import UiServer
from tests.broker import password_broker  # noqa: F401 (fixture)
from tests.qr_fixtures import person_code
from tests.station_fixtures import Table

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "commands.md"


def test_docs_commands_md_is_generated_from_the_table():
    assert DOCS.read_text() == commands.markdown(), "run: python -m firmware_app.commands > docs/commands.md"


@pytest.fixture
def toy(monkeypatch):
    """A command added to the table only: nothing else is touched (the table is a module-level
    tuple and its index: the test adds the entry to both, as an edit of commands.py would)."""
    spec = Spec("toy_ring", "响铃", "ring the bell", (Arg("times", "int", required=True),), card_arg="times",
                sources=("scanner", "ui", "mqtt"), cards=(("响铃三次", "ring thrice", "3"),))
    table = (*commands._TABLE, spec)
    monkeypatch.setattr(commands, "_TABLE", table)
    monkeypatch.setattr(commands, "COMMANDS", {s.name: s for s in table})
    return spec


def test_a_command_added_to_the_table_is_on_the_screen_the_card_mqtt_and_the_docs(toy):
    from firmware_app.uplink import validate_command

    # the screen: listed with its argument by the real server, and a tap on it handed on as a command
    got: list[Command] = []
    ui = UiServer(port=0, on_command=got.append, provision_errors=None)
    ui.start()
    try:
        with urllib.request.urlopen(f"{ui.url}api/commands", timeout=5) as r:
            listed = {c["name"]: c for c in json.load(r)["commands"]}
        assert "toy_ring" in listed and "times" in json.dumps(listed["toy_ring"], ensure_ascii=False)
        assert _post(ui, {"name": "toy_ring", "args": {"times": 3}}) == 202
        assert _post(ui, {"name": "toy_ring", "args": {}}) == 400  # its required argument, from the table
        assert got == [Command("toy_ring", {"times": 3}, "ui")]
    finally:
        ui.stop()
    # the printed card
    [card] = [label for label in command_labels() if label.qr == "SWABCMD:toy_ring:3"]
    assert any("响铃三次" in line for line in card.lines)
    # MQTT: the uplink's validator takes it, with its argument checked by the table
    command, txn, refusal = validate_command("toy_ring", b'{"txn": "t-1", "args": {"times": 3}}')
    assert command == Command("toy_ring", {"times": 3}, "mqtt", "t-1") and txn == "t-1" and refusal == ("", "")
    command, _, refusal = validate_command("toy_ring", b'{"txn": "t-2", "args": {"times": "x"}}')
    assert command is None and "times" in refusal[1]
    # the docs
    assert "`toy_ring`" in commands.markdown() and "响铃" in commands.markdown()
    # the station reads the scanned card as the new command (not "card not recognised"); what it
    # does is a rule, and rules live in firmware_app/station/: the table only names it
    t = Table()
    t.sign_in()
    t.card("SWABCMD:toy_ring:3")
    assert "响铃" in t.show.message and t.show.message != "操作卡无法识别"


def _post(ui: UiServer, body: dict) -> int:
    req = urllib.request.Request(f"{ui.url}api/command", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Origin": ui.url.rstrip("/")})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_screen_serves_the_table_and_refuses_what_it_does_not_allow():
    got: list[Command] = []
    ui = UiServer(port=0, on_command=got.append, provision_errors=None)
    ui.start()
    try:
        with urllib.request.urlopen(f"{ui.url}api/commands", timeout=5) as r:
            names = [c["name"] for c in json.load(r)["commands"]]
        assert "close_tube" in names and "push_config" not in names and "push_volunteers" not in names
        assert _post(ui, {"name": "switch_mode", "args": {"mode": "20"}}) == 202
        for body in ({"name": "push_config", "args": {"config": "x"}},  # the district's, not the screen's
                     {"name": "switch_mode", "args": {"mode": []}},  # unhashable: refused, not a crash
                     {"name": "switch_mode", "args": {"mode": "7"}}, {"name": "nope"}):
            assert _post(ui, body) == 400, body
        assert got == [Command("switch_mode", {"mode": "20"}, "ui")]
    finally:
        ui.stop()


@pytest.mark.parametrize("card", ["SWABCMD:void_last", "SWABCMD:sign_out", "SWABCMD:switch_mode:1",
                                  "SWABCMD:handover_box:张师傅", "SWABCMD:confirm_duplicate"])
def test_a_command_card_shown_to_the_camera_does_nothing(card):
    # the camera faces the public: anyone can hold up a printed code
    t = Table(mode="1")
    t.sign_in()
    t.scan(card, "camera")
    assert t.show.level == "error" and "扫码枪" in t.show.message and t.new_records == []


@pytest.mark.parametrize("name,args,source", [
    ("void_last", {}, "mqtt"),  # a district login cannot void at a table by "last"
    ("manual_entry", {"name": "张三", "id_type": "none", "phone": "13800000000"}, "mqtt"),  # nobody registered from afar
    ("box_count", {"count": "٣"}, "ui"),  # Arabic-Indic digits are not a count
    ("box_count", {"count": True}, "ui"),
    ("close_tube", {"reason": "x" * 500}, "mqtt"),
    ("void", {}, "ui"),
])
def test_the_table_refuses_what_a_source_may_not_do(name, args, source):
    with pytest.raises(commands.CommandError):
        commands.check(name, args, source)


# ------------------------------------------------------------- issue 13, finding 4
@pytest.mark.parametrize("card", ["SWABCMD:void_last", "SWABCMD:sign_out", "SWABCMD:switch_mode:1",
                                  "SWABCMD:handover_box:张师傅", "SWABCMD:close_tube"])
def test_a_command_card_signed_by_nobody_or_for_another_site_does_nothing(card):
    from tests.qr_fixtures import SAMPLING_KEY, STRANGER_KEY
    from tests.station_fixtures import signed_card

    t = Table(mode="1")
    t.sign_in()
    t.scan(person_code(issued_at=t.now.at - 60), "camera")
    before = t.station.snapshot()
    for text in (card,  # unsigned, as cards were printed before
                 signed_card(card, key=STRANGER_KEY),  # an attacker's key
                 signed_card(card, key=SAMPLING_KEY),  # the sampling-code authority signs people, not commands
                 signed_card(card, site="nancheng"),  # a real card of another site
                 signed_card(card)[:-2] + "AA"):  # altered
        t.scan(text)
        assert t.show.level == "error" and "签" in t.show.message, text
        assert t.new_records == [] and t.station.snapshot()["pending"] is None
    assert t.station.snapshot()["operator"] == before["operator"] and t.station.snapshot()["tube"] == before["tube"]
    t.card(card)  # the kiosk still takes its own site's cards
    assert "command card" not in t.show.message_en


def test_destructive_cards_wait_for_a_confirm_and_reject_drops_them():
    from tests.station_fixtures import signed_card

    t = Table(mode="10")
    t.sign_in()
    t.scan(person_code(issued_at=t.now.at - 60), "camera")
    t.scan(signed_card("SWABCMD:void_last"))
    assert t.new_records == [] and t.show.level == "confirm"
    assert t.station.snapshot()["pending"]["kind"] == "command" and t.station.snapshot()["pending"]["command"] == "void_last"
    t.scan(signed_card("SWABCMD:reject"))
    assert t.new_records == [] and t.station.snapshot()["pending"] is None
    t.scan(signed_card("SWABCMD:void_last"))
    t.scan(signed_card("SWABCMD:confirm"))
    assert [r["kind"] for r in t.new_records] == ["void"]
    t.scan(signed_card("SWABCMD:sign_out"))
    assert t.station.snapshot()["operator"] is not None  # held
    t.cmd("confirm")  # the screen's confirm button does it too
    assert t.station.snapshot()["operator"] is None


def test_a_command_added_to_the_table_is_answered_over_mqtt(monkeypatch, password_broker, tmp_path):
    """The real kiosk on a real broker: cmd/<name> of a command added to the table only is
    validated by the table and answered on cmd/<name>/response by its handler (a shell one,
    registered as the composition root registers push_config); a bad argument is refused by
    the table's own check, before any handler."""
    from urllib.parse import quote

    from firmware_app import config
    from firmware_app.daemon import Kiosk
    from firmware_app.model import Show
    from firmware_app.sdnotify import Notifier
    from hw_mocks.table import Table as SimTable
    from tests.broker import PASSWORDS, STATION_A, Collector
    from tests.test_daemon_commands import ROOT, response

    spec = Spec("toy_ring", "响铃", "ring the bell", (Arg("times", "int", required=True),), sources=("ui", "mqtt"),
                handler="shell")
    table = (*commands._TABLE, spec)
    monkeypatch.setattr(commands, "_TABLE", table)
    monkeypatch.setattr(commands, "COMMANDS", {s.name: s for s in table})
    url = f"mqtt://{quote(STATION_A, safe='')}:{PASSWORDS[STATION_A]}@127.0.0.1:{password_broker.port}"
    sim = SimTable(tmp_path / "table", devices=()).start()
    station_file = tmp_path / "station.toml"
    station_file.write_text(sim.station_file(str(tmp_path / "data"), broker=url))
    kiosk = Kiosk(config.load(str(station_file)), use_ui=False, notifier=Notifier({}))
    kiosk.start()
    rang: list[Command] = []

    def ring(command: Command) -> list:
        rang.append(command)
        return [Show("ok", "叮", f"ring {command.args['times']}")]

    kiosk.runtime.shell_commands["toy_ring"] = ring
    collector = Collector(password_broker.port)
    try:
        assert collector.wait_for(lambda c: any(t == ROOT + "availability" and p == b"online"
                                                for t, p, _ in c.messages), 15)
        collector.client.publish(ROOT + "cmd/toy_ring", json.dumps({"txn": "toy-1", "args": {"times": 3}}), qos=1)
        answer = response(collector, "toy_ring", "toy-1")
        assert answer["ok"] is True and answer["message"] == "叮"
        assert rang == [Command("toy_ring", {"times": 3}, "mqtt", "toy-1")]
        collector.client.publish(ROOT + "cmd/toy_ring", json.dumps({"txn": "toy-2", "args": {"times": "x"}}), qos=1)
        refused = response(collector, "toy_ring", "toy-2")
        assert refused["ok"] is False and "times" in refused["message_en"] and len(rang) == 1
    finally:
        collector.close()
        kiosk.stop()
        sim.stop()
