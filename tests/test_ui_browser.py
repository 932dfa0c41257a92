"""The kiosk page in headless Chromium, fed snapshots directly (no daemon).

What a volunteer sees and touches: colours, words, fill, buttons, language, sounds,
the disconnected overlay and reconnect. The end-to-end run against the real daemon
is in test_ui_e2e.py.
"""

from __future__ import annotations

import json
import statistics

import pytest

from firmware_app.model import Command
from firmware_app.ui import UiServer
from tests.browser_fixtures import (browser, now_ms, open_screen, page, save_screenshot,  # noqa: F401
                                    wait_change, watch_text)
from tests.ui_fixtures import serving_ui

pytestmark = pytest.mark.timeout(120)

SNAPSHOT = {
    "operator": {"name": "李*华", "cert_id": "V0001"},
    "mode": "10",
    "tube": {"id": "DG032611230007", "count": 7, "capacity": 10, "single_reason": None},
    "pending": None,
    "last": {"name": "张*丰", "id": "440106********1234", "colour": "green", "source": "idcard"},
    "level": "ok",
    "message": "第7人 已加入",
    "message_en": "Person 7 added",
    "today": {"people": 67, "tubes": 7},
    "box": None,
    "devices": {"idcard": {"ok": True, "reason": ""}, "scanner": {"ok": True, "reason": ""},
                "printer": {"ok": False, "reason": "缺纸"}},
    "broker": {"connected": False, "url": "mqtt://127.0.0.1:1", "error": "连接被拒绝", "error_en": "refused"},
    "backlog": 12,
}


@pytest.fixture
def ui(tmp_path):
    with serving_ui(tmp_path) as server:
        server.update(SNAPSHOT)
        yield server


def test_the_page_shows_who_what_and_how_full(ui, page):
    open_screen(page, ui.url)
    assert page.inner_text("#operator") == "李*华"
    assert page.inner_text("#mode") == "10混1"
    assert page.inner_text("#tube-id") == "DG032611230007"
    assert page.inner_text("#count") == "7" and page.inner_text("#capacity").strip() == "/ 10"
    assert page.locator("#dots i.on").count() == 7 and page.locator("#dots i").count() == 10
    assert page.get_attribute("#state", "data-level") == "ok"
    assert page.inner_text("#message") == "第7人 已加入"
    assert page.inner_text("#person-name") == "张*丰"
    assert page.inner_text("#person-id") == "440106********1234"
    assert page.inner_text("#code") == "绿码"
    # status lights: the printer is down with its reason, the broker too, 12 records wait
    lights = page.inner_text("#lights")
    assert "打印机" in lights and "缺纸" in lights and "连接被拒绝" in lights and "待传 12" in lights
    assert page.locator(".light.bad").count() == 2
    green = page.eval_on_selector("#state", "el => getComputedStyle(el).backgroundColor")
    assert green == "rgb(11, 122, 42)"
    # the daemon's own broker shape, and offline-only (no broker configured)
    ui.update({"broker": {"ok": True, "reason": ""}, "backlog": 0})
    page.wait_for_function("() => document.querySelectorAll('.light.bad').length === 1")
    assert "待传 0" in page.inner_text("#lights")
    ui.update({"broker": None, "backlog": 5})
    page.wait_for_function("() => document.querySelector('#lights').textContent.includes('仅离线')")
    assert page.locator(".light.warn").count() == 1  # 5 records wait with no broker


def test_every_push_reaches_the_page_quickly(ui, page):
    """Measured (reported, not asserted tightly): update() -> DOM text changed."""
    open_screen(page, ui.url)
    watch_text(page, "#count")
    latencies = []
    for n in range(1, 21):
        t0 = now_ms()
        ui.update({"tube": {"id": "DG032611230008", "count": n % 10, "capacity": 10, "single_reason": None},
                   "today": {"people": 100 + n, "tubes": 9}})
        at = wait_change(page, "#count", f"text === '{n % 10}'", t0)
        latencies.append(at - t0)
    print(f"\nupdate->DOM ms over {len(latencies)}: median {statistics.median(latencies):.1f} "
          f"max {max(latencies):.1f}")
    assert len(latencies) == 20


def test_red_error_shows_the_reason_in_plain_words_and_buzzes(ui, page):
    open_screen(page, ui.url)
    ui.notify("error", "二维码签名无效（疑似伪造），请出示身份证", "QR code signature invalid (forged?): show your ID card")
    page.wait_for_selector("#state[data-level=error]")
    assert "疑似伪造" in page.inner_text("#message")
    assert "forged" in page.inner_text("#message-alt")
    assert page.eval_on_selector("#state", "el => getComputedStyle(el).backgroundColor") == "rgb(196, 18, 47)"
    ui.update({"today": {"people": 67, "tubes": 7}})  # as the daemon does after each step
    page.wait_for_function("() => document.querySelector('#app').dataset.tone === 'error'")
    error_tones = page.evaluate("window.__tones")
    ui.notify("ok", "第8人 已加入", "Person 8 added")
    page.wait_for_function("() => document.querySelector('#app').dataset.tone === 'ok'")
    ok_tones = page.evaluate("window.__tones")[len(error_tones):]
    # distinct sounds: a low square buzz for errors, a high rising sine chirp for OK
    assert error_tones and ok_tones
    assert {t[0] for t in error_tones} == {"square"} and max(f for _, f in error_tones) <= 300
    assert {t[0] for t in ok_tones} == {"sine"} and ok_tones[-1][1] > ok_tones[0][1] >= 800


def test_a_duplicate_waits_amber_and_the_confirm_tap_is_a_command(ui, page):
    open_screen(page, ui.url)
    assert not page.is_visible("#pending-actions")
    ui.update({"pending": {"kind": "person", "name": "王*", "id": "440106********5678", "colour": "green",
                           "single_reason": None, "duplicate_of": {"tube_id": "DG032611230003", "at": "09:12"}}})
    ui.notify("confirm", "今日已在本台采样（09:12），确认再次加入？", "Already sampled here today at 09:12: add again?")
    page.wait_for_selector("#state[data-level=confirm]")
    assert page.inner_text("#person-name") == "王*"
    # the two answers take the action buttons' place; the tube and its fill stay in view
    assert page.is_visible("#pending-actions") and page.is_visible("#tube") and not page.is_visible("#actions")
    page.click("#pending-actions [data-cmd=confirm_duplicate]")
    assert ui.recorder.wait(1) == [Command("confirm_duplicate", {}, source="ui")]
    page.click("#pending-actions [data-cmd=reject_duplicate]")
    assert ui.recorder.wait(2)[1] == Command("reject_duplicate", {}, source="ui")


def test_a_yellow_code_single_tube_is_confirmed_with_its_own_words(ui, page):
    open_screen(page, ui.url)
    ui.update({"pending": {"kind": "person", "name": "赵*", "id": "440106********0012", "colour": "yellow",
                           "single_reason": "yellow_code", "duplicate_of": None},
               "level": "confirm", "message": "黄码：需单独一管", "message_en": "yellow code: single tube"})
    page.wait_for_selector("#state[data-level=confirm]")
    assert page.inner_text("#code") == "黄码"
    assert page.inner_text("#pending-actions [data-cmd=confirm_duplicate]") == "确认单管"
    page.click("#pending-actions [data-cmd=confirm_duplicate]")
    assert ui.recorder.wait(1) == [Command("confirm", {}, source="ui")]


def test_void_last_needs_a_second_tap_to_confirm(ui, page):
    open_screen(page, ui.url)
    page.click("#actions [data-cmd=people]")  # 作废上一人 is on the tube's people sheet
    page.click("#people [data-cmd=void_last]")
    assert page.is_visible("#dialog")
    assert "张*丰" in page.inner_text("#dialog-title")
    page.click("#dialog-buttons button:has-text('取消')")
    assert not page.is_visible("#dialog")
    page.click("#people [data-close]")
    page.click("[data-cmd=close_tube]")  # a later command proves nothing was sent before it
    assert ui.recorder.wait(1) == [Command("close_tube", {}, source="ui")]
    page.click("#actions [data-cmd=people]")
    page.click("#people [data-cmd=void_last]")
    page.click("#dialog-buttons button:has-text('确定')")
    assert ui.recorder.wait(2)[1] == Command("void_last", {}, source="ui")
    ui.update({"last": {**SNAPSHOT["last"], "voided": True}})  # the station voided it
    page.wait_for_function("() => document.querySelector('#person-label').textContent.includes('已作废')")
    assert page.is_disabled("#people [data-cmd=void_last]")  # nothing left to void


def test_switch_mode_offers_the_four_modes(ui, page):
    open_screen(page, ui.url)
    page.click("[data-cmd=switch_mode]")
    labels = page.locator("#dialog-buttons button").all_inner_texts()
    assert labels == ["单采单检", "10混1", "20混1", "一户一管", "取消"]
    assert "current" in page.get_attribute("#dialog-buttons button:has-text('10混1')", "class")
    page.click("#dialog-buttons button:has-text('20混1')")
    assert ui.recorder.wait(1) == [Command("switch_mode", {"mode": "20"}, source="ui")]


def test_buttons_that_cannot_mean_anything_are_disabled(ui, page):
    open_screen(page, ui.url)
    ui.update({"operator": None, "tube": None, "last": None, "level": "info",
               "message": "请扫描志愿者证签到", "message_en": "Scan your volunteer certificate to sign in"})
    page.wait_for_function("() => document.querySelector('#operator').textContent === '未签到'")
    for name in ("manual_entry", "people", "close_tube", "replace_tube", "switch_mode", "sign_out"):
        assert page.is_disabled(f"#actions [data-cmd={name}]"), name


def test_touch_targets_are_big_enough_for_gloves(ui, page):
    open_screen(page, ui.url)
    page.click("[data-cmd=switch_mode]")
    boxes = page.evaluate(
        """() => [...document.querySelectorAll('button')].filter(b => b.offsetParent !== null)
              .map(b => { const r = b.getBoundingClientRect();
                          return {text: b.textContent, x: r.x, y: r.y, w: r.width, h: r.height}; })""")
    assert len(boxes) >= 10
    for b in boxes:  # 15 mm on the 7" 800x480 panel is ~78 px; never below 60 CSS px
        assert b["w"] >= 60 and b["h"] >= 60, b
    grid = [b for b in boxes if b["y"] < 480 and b["x"] > 480][:6]
    for a in grid:  # neighbours at least 8 px apart: a gloved thumb hits one button
        for b in grid:
            if a is not b:
                gap_x = max(b["x"] - (a["x"] + a["w"]), a["x"] - (b["x"] + b["w"]))
                gap_y = max(b["y"] - (a["y"] + a["h"]), a["y"] - (b["y"] + b["h"]))
                assert max(gap_x, gap_y) >= 8, (a, b)
    page.click("#dialog-buttons button:has-text('取消')")
    ui.update({"pending": {"name": "王*"}})
    page.wait_for_selector("#pending-actions:not([hidden])")
    for box in page.locator("#pending-actions button").all():
        r = box.bounding_box()
        assert r["width"] >= 100 and r["height"] >= 100, r  # the two answers are the biggest targets


def test_english_is_one_tap_away_and_stays_chosen(ui, page):
    open_screen(page, ui.url)
    assert page.inner_text("[data-cmd=close_tube]") == "封管"
    page.click("#lang")
    assert page.inner_text("#actions [data-cmd=close_tube]") == "Close tube"
    assert page.inner_text("#message") == "Person 7 added"
    assert page.inner_text("#message-alt") == "第7人 已加入"  # the other language stays alongside
    assert page.get_attribute("html", "lang") == "en"
    page.reload()
    page.wait_for_selector("#app[data-conn=open]")
    assert page.inner_text("#actions [data-cmd=close_tube]") == "Close tube"


def test_configured_language_english(tmp_path, page):
    server = UiServer("127.0.0.1", 0, lambda c: None, language="en", provision_errors=None)
    server.start()
    try:
        server.update(SNAPSHOT)
        open_screen(page, server.url)
        assert page.inner_text("#mode") == "10 in 1"
    finally:
        server.stop()


def test_technician_sees_provisioning_and_config_problems(ui, page, tmp_path):
    open_screen(page, ui.url)
    assert not page.is_visible("#problems")
    (tmp_path / "provision-errors.json").write_text(json.dumps(
        {"problems": [{"key": "mqtt.url", "line": 41, "message": "服务器地址无效", "message_en": "bad broker URL"}]}),
        encoding="utf-8")
    page.wait_for_selector("#problems:not([hidden])")
    text = page.inner_text("#problems")
    assert "需要技术员处理" in text and "mqtt.url · 第41行" in text and "服务器地址无效" in text
    ui.update({"problems": [{"key": "selftest", "message": "摄像头无画面", "message_en": "camera: no frames"}]})
    page.wait_for_function("() => document.querySelector('#problem-list').children.length === 2")
    save_screenshot(page, "problems", tmp_path)


def test_disconnected_is_obvious_and_the_page_reconnects(tmp_path, page):
    server = UiServer("127.0.0.1", 0, lambda c: None, provision_errors=None)
    server.start()
    port = server.port
    server.update(SNAPSHOT)
    open_screen(page, server.url)
    assert not page.is_visible("#offline")
    server.stop()  # the daemon restarts
    page.wait_for_selector("#offline:not([hidden])")
    assert "连接已断开" in page.inner_text("#offline")
    save_screenshot(page, "disconnected", tmp_path)
    restarted = UiServer("127.0.0.1", port, lambda c: None, provision_errors=None)
    restarted.start()
    try:
        restarted.update({**SNAPSHOT, "tube": {**SNAPSHOT["tube"], "count": 8}})
        page.wait_for_selector("#app[data-conn=open]", timeout=15_000)
        assert not page.is_visible("#offline")
        assert page.inner_text("#count") == "8"
    finally:
        restarted.stop()


def test_a_refused_tap_is_shown_not_swallowed(tmp_path, page):
    def refuse(command):
        raise RuntimeError("队列已满")

    server = UiServer("127.0.0.1", 0, refuse, provision_errors=None)
    server.start()
    try:
        server.update(SNAPSHOT)
        open_screen(page, server.url)
        page.click("[data-cmd=close_tube]")
        page.wait_for_selector("#local-error:not([hidden])")
        assert "操作未送达" in page.inner_text("#local-error") and "队列已满" in page.inner_text("#local-error")
    finally:
        server.stop()
