"""The screen server without a browser: what it serves, what it refuses, what it pushes."""

from __future__ import annotations

import http.client
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app import catalogue
from firmware_app.model import Command, mask_id
from firmware_app.ui import UiServer
from firmware_app.ui.server import STATIC_DIR, read_provision_errors, scrub
from tests.ui_fixtures import serving_ui


@pytest.fixture
def ui(tmp_path):
    with serving_ui(tmp_path) as server:
        yield server


def request(ui, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=5)
    hdrs = {"Host": f"127.0.0.1:{ui.port}"}
    hdrs.update(headers or {})
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp, payload


def post_command(ui, body, **headers):
    base = {"Origin": f"http://127.0.0.1:{ui.port}", "Content-Type": "application/json"}
    base.update(headers)
    return request(ui, "POST", "/api/command", body, {k: v for k, v in base.items() if v is not None})


def test_refuses_to_listen_beyond_loopback():
    for host in ("0.0.0.0", "192.168.1.20", "::", "kiosk.local"):
        with pytest.raises(ValueError, match="loopback"):
            UiServer(host, 0, lambda c: None)


def test_serves_the_page_with_a_strict_content_policy(ui):
    resp, body = request(ui, "GET", "/")
    assert resp.status == 200
    assert "采样台" in body.decode()
    assert "script-src 'self'" in resp.getheader("Content-Security-Policy")
    for path in ("/app.js", "/style.css"):
        resp, _ = request(ui, "GET", path)
        assert resp.status == 200
    resp, _ = request(ui, "GET", "/../server.py")
    assert resp.status == 404


def test_foreign_host_header_is_refused(ui):
    # DNS rebinding: a web page whose name resolves to 127.0.0.1 must not read the screen
    resp, _ = request(ui, "GET", "/api/state", headers={"Host": f"evil.example:{ui.port}"})
    assert resp.status == 421


def test_a_tap_becomes_the_same_station_command_as_a_scanned_card(ui):
    resp, body = post_command(ui, {"name": "close_tube"})
    assert resp.status == 202, body
    resp, body = post_command(ui, {"name": "switch_mode", "args": {"mode": "20"}})
    assert resp.status == 202, body
    assert ui.recorder.commands == [
        Command("close_tube", {}, source="ui"),
        Command("switch_mode", {"mode": "20"}, source="ui"),
    ]


@pytest.mark.parametrize(
    "body, headers, status",
    [
        ({"name": "close_tube"}, {"Origin": "http://evil.example"}, 403),  # cross-site
        ({"name": "close_tube"}, {"Origin": None}, 403),  # no Origin at all
        ({"name": "close_tube"}, {"Content-Type": "text/plain"}, 415),  # a plain <form> post
        ({"name": "push_volunteers"}, {}, 400),  # not a screen action
        ({"name": "switch_mode", "args": {"mode": "30"}}, {}, 400),
        ({"name": "void_last", "args": {"record": "x"}}, {}, 400),
        ({"name": "close_tube", "args": []}, {}, 400),
        (["close_tube"], {}, 400),
        (b"{not json", {}, 400),
    ],
)
def test_refused_posts_never_reach_the_station(ui, body, headers, status):
    resp, payload = post_command(ui, body, **headers)
    assert resp.status == status, payload
    assert json.loads(payload)["ok"] is False
    assert ui.recorder.commands == []


def test_a_daemon_that_cannot_take_a_command_is_reported_to_the_page(tmp_path):
    def refuse(command):
        raise RuntimeError("station loop not running")

    server = UiServer("127.0.0.1", 0, refuse, provision_errors=None)
    server.start()
    try:
        resp, payload = post_command(server, {"name": "close_tube"})
    finally:
        server.stop()
    assert resp.status == 503
    assert "station loop not running" in json.loads(payload)["error"]


def read_event(resp) -> tuple[str, str]:
    """Next SSE event (name, data) from an open /events response."""
    name, data = "message", []
    while True:
        line = resp.fp.readline().decode()
        if line == "":
            raise EOFError("stream closed")
        line = line.rstrip("\n")
        if line == "":
            if data:
                return name, "\n".join(data)
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)


def open_stream(ui):
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=5)
    conn.request("GET", "/events", headers={"Host": f"127.0.0.1:{ui.port}"})
    resp = conn.getresponse()
    assert resp.getheader("Content-Type").startswith("text/event-stream")
    return conn, resp


def test_updates_are_pushed_live_and_masked(ui):
    conn, resp = open_stream(ui)
    try:
        name, data = read_event(resp)
        assert name == "state"
        first = json.loads(data)
        ui.update({"operator": {"name": "李*华", "cert_id": "V1"}, "mode": "10",
                   "tube": {"id": "T1", "count": 3, "capacity": 10, "single_reason": None},
                   "level": "ok", "message": "第3人 440106199001011234", "message_en": "person 3"})
        name, data = read_event(resp)
        state = json.loads(data)
        assert state["rev"] > first["rev"]
        assert state["snapshot"]["tube"]["count"] == 3
        # a full ID number slipped into a message never reaches the screen
        assert "440106199001011234" not in data
        assert "440106********1234" in state["snapshot"]["message"]
        assert state["flash"]["level"] == "ok"
    finally:
        conn.close()


def test_an_update_that_changes_nothing_sends_nothing(ui):
    ui.update({"mode": "10", "today": {"people": 1, "tubes": 1}})
    rev = ui.state()["rev"]
    ui.update({"mode": "10"})
    ui.update({"today": {"people": 1, "tubes": 1}})
    assert ui.state()["rev"] == rev
    ui.update({"backlog": 3})  # a status key merges in beside the station's snapshot
    state = ui.state()
    assert state["rev"] == rev + 1
    assert state["snapshot"]["mode"] == "10" and state["snapshot"]["backlog"] == 3


def test_every_show_flashes_even_the_same_error_twice(ui):
    ui.notify("error", "二维码签名无效", "QR signature invalid")
    first = ui.state()["flash"]
    ui.notify("error", "二维码签名无效", "QR signature invalid")
    second = ui.state()["flash"]
    assert second["n"] == first["n"] + 1 and second["level"] == "error"
    # the snapshot that follows the Show carries the same message: no second tone
    ui.update({"level": "error", "message": "二维码签名无效", "message_en": "QR signature invalid"})
    assert ui.state()["flash"] == second
    assert ui.state()["snapshot"]["message"] == "二维码签名无效"


def test_ok_then_info_in_one_step_keeps_the_ok_tone(ui):
    # the daemon: notify() for each Show of a step, then update() with the snapshot
    ui.notify("ok", "第10人", "person 10")
    ui.notify("info", "本管已满，请贴标签", "tube full: label it")
    state = ui.state()
    assert state["flash"]["level"] == "ok"
    assert state["snapshot"]["message"] == "本管已满，请贴标签"
    ui.update({"today": {"people": 10}})
    ui.notify("info", "打印机正常", "printer ready")  # the next step starts afresh
    assert ui.state()["flash"]["level"] == "info"


def test_stop_ends_open_streams_so_browsers_reconnect(tmp_path):
    server = UiServer("127.0.0.1", 0, lambda c: None, provision_errors=None)
    server.start()
    conn, resp = open_stream(server)
    read_event(resp)
    server.stop()
    with pytest.raises(EOFError):
        read_event(resp)
    conn.close()


def test_config_problems_from_the_daemon_are_listed(ui):
    ui.update({"config_problems": ["mqtt.url (line 40): not a URL"],
               "problems": [{"key": "devices.printer", "line": None, "message": "打印机未找到",
                             "message_en": "printer not found"}]})
    problems = ui.state()["problems"]
    assert [p["message"] for p in problems] == ["mqtt.url (line 40): not a URL", "打印机未找到"]
    assert problems[1]["key"] == "devices.printer"


def test_provisioning_errors_file_is_read_and_watched(tmp_path):
    path = tmp_path / "provision-errors.json"
    path.write_text(json.dumps([{"key": "station.device_id", "line": 3, "message": "缺少设备编号",
                                 "message_en": "device_id missing"}]), encoding="utf-8")
    server = UiServer("127.0.0.1", 0, lambda c: None, provision_errors=path)
    server.start()
    try:
        problems = server.state()["problems"]
        assert problems == [{"key": "station.device_id", "line": 3, "message": "缺少设备编号",
                             "message_en": "device_id missing"}]
        conn, resp = open_stream(server)
        read_event(resp)
        path.unlink()  # fixed by the technician: the list clears without a restart
        _, data = read_event(resp)
        assert json.loads(data)["problems"] == []
        conn.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"problems": ["no network"]}', ["no network"]),
        ('["a", {"message": "b", "line": "x"}]', ["a", "b"]),
        ("{broken", ["开机配置错误文件"]),
        ('{"problems": 7}', ["开机配置错误文件"]),
    ],
)
def test_provisioning_errors_formats_and_corruption(tmp_path, content, expected):
    path = tmp_path / "p.json"
    path.write_text(content, encoding="utf-8")
    problems = read_provision_errors(path)
    assert len(problems) == len(expected)
    for problem, text in zip(problems, expected):
        assert text in problem["message"]
        assert problem["line"] is None  # only an int is a line number


def test_missing_provisioning_file_means_no_problems(tmp_path):
    assert read_provision_errors(tmp_path / "absent.json") == []


id_numbers = st.from_regex(r"[1-6][0-9]{16}[0-9X]", fullmatch=True)
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
    lambda s: not (s[-1:].isdigit() or s[-1:] in "Xx"))


@settings(max_examples=200, deadline=None)
@given(prefix=text, number=id_numbers, suffix=st.text(max_size=20))
def test_scrub_masks_any_full_id_number(prefix, number, suffix):
    suffix = suffix if not suffix[:1].isdigit() and suffix[:1] not in "Xx" else " " + suffix
    out = scrub({"a": [f"{prefix}{number}{suffix}"]})["a"][0]
    assert number not in out
    assert mask_id(number) in out


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
                    max_leaves=20))
def test_scrub_keeps_the_shape_and_text_without_id_numbers(value):
    out = scrub(value)
    assert json.dumps(out) == json.dumps(scrub(out))  # idempotent
    if not any(ch.isdigit() for ch in json.dumps(value)):
        assert json.loads(json.dumps(out)) == json.loads(json.dumps(value))


# ------------------------------------------------------------- the page's words

HAN = re.compile(r"[\u3400-\u9fff]")


def test_the_page_keeps_no_words_of_its_own_it_reads_the_catalogues(ui):
    """issue 14 item 3: every word on the page is a catalogue key (ui., devices.), served as /texts.js."""
    for path in STATIC_DIR.iterdir():
        assert not HAN.search(path.read_text(encoding="utf-8")), path.name
    resp, body = request(ui, "GET", "/texts.js")
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/javascript")
    assert "script-src 'self'" in resp.getheader("Content-Security-Policy")
    assigned = dict(line.removesuffix(";").split(" = ", 1) for line in body.decode().splitlines() if " = " in line)
    texts, pinyin = json.loads(assigned["window.SWAB_TEXTS"]), json.loads(assigned["window.SWAB_PINYIN"])
    assert set(texts) == set(catalogue.area("ui.")) | set(catalogue.area("devices."))
    assert texts["ui.close_tube"] == ["封管", "Close tube"] and texts["devices.paper"] == ["缺纸", "paper"]
    assert "张" in pinyin["zhang"]
    _, page = request(ui, "GET", "/")
    assert "{{" not in page.decode() and f"<title>{catalogue.zh('ui.title')}</title>" in page.decode()


@pytest.mark.parametrize("body, zh_words", [
    ({"name": "no_such_command"}, None),  # the command table's own zh-CN refusal
    ({"name": "close_tube", "args": {"a": [[[[1]]]]}}, "嵌套超过 4 层"),  # refused before it is parsed
    ([1, 2], "操作无效，未执行"),  # not an object: plain words
])
def test_a_refused_tap_says_why_in_zh_cn_and_in_english(ui, body, zh_words):
    resp, payload = post_command(ui, body)
    answer = json.loads(payload)
    assert resp.status == 400 and answer["ok"] is False
    assert HAN.search(answer["error_zh"]) and answer["error"] and not HAN.search(answer["error"])
    if zh_words:
        assert zh_words in answer["error_zh"]
    assert ui.recorder.commands == []
