"""The kiosk screen end to end: the real daemon on simulated hardware, seen in Chromium.

The kiosk (``firmware_app.daemon.Kiosk``: station, store, printer shell, screen) runs
on ``hw_mocks.table.Table``: the real pyserial drivers read the ID-card reader and the
scanner on ptys, labels go as ESC/POS bytes to the TCP printer mock. The test plays the
people at the table and watches the page, as ``swabkiosk run --simulate`` does for a
newcomer. Latencies are measured from the moment the bytes go into the device mock
to the moment the page's DOM shows the person (same wall clock), and printed.
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import sys
import time

import pytest

from firmware_app import config
from firmware_app.daemon import Kiosk
from firmware_app.model import mask_id, mask_name
from firmware_app.sdnotify import Notifier
from firmware_app.simulate import LIVE_CAMERA, wait_devices
from hw_mocks.people import Authority
from hw_mocks.table import Table
from tests.browser_fixtures import (browser, now_ms, open_screen, page, save_screenshot,  # noqa: F401
                                    wait_change, watch_text)

pytestmark = pytest.mark.timeout(180)


def start_kiosk(tmp_path, *, poll_ms: int = 300):
    """A kiosk on a simulated table, its screen on a free port. poll_ms 300 is the
    example station file's card-reader polling: the latency a volunteer will see."""
    table = Table(tmp_path / "table", devices=("idcard", "scanner", "printer")).start()
    cfg = config.parse_text(table.station_file(str(tmp_path / "data"), mode="10", poll_ms=poll_ms))
    kiosk = Kiosk(cfg, ui_port=0, notifier=Notifier({}), device_overrides=LIVE_CAMERA)
    kiosk.start()
    wait_devices(kiosk, ["idcard", "scanner", "printer"])
    return kiosk, table


@pytest.fixture
def table_and_kiosk(tmp_path):
    kiosk, table = start_kiosk(tmp_path)
    yield kiosk, table
    kiosk.stop()
    table.stop()


def signed_in(page, kiosk, table):
    open_screen(page, kiosk.ui.url)
    table.sign_in()
    page.wait_for_function("() => document.querySelector('#operator').textContent !== '未签到'")
    assert page.inner_text("#operator") == mask_name("李志愿") or page.inner_text("#operator") == "李志愿"


def present_and_time(page, table, person) -> float:
    """Present ``person``; ms from the bytes entering the device mock to the page showing them."""
    t0 = now_ms()
    table.present(person)
    at = wait_change(page, "#person-id", f"text === '{mask_id(person.id_number)}'", t0)
    table.take_away(person)
    return at - t0


def test_people_appear_fast_and_the_tube_fills_and_resets(table_and_kiosk, page, tmp_path):
    kiosk, table = table_and_kiosk
    signed_in(page, kiosk, table)
    watch_text(page, "#person-id")
    by_via: dict[str, list[float]] = {"scanner": [], "card": []}
    counts, tubes = [], []
    for n in range(24):
        person = table.people.person(via="scanner" if n % 2 else "card")
        by_via[person.via].append(present_and_time(page, table, person))
        page.wait_for_function("() => document.querySelector('#app').dataset.rev && "
                               "document.querySelector('#person-name').textContent !== ''")
        counts.append(int(page.inner_text("#count")))
        tubes.append(page.inner_text("#tube-id"))
        if n == 3:
            save_screenshot(page, "ok", tmp_path)
            assert page.get_attribute("#state", "data-level") == "ok"
            assert page.inner_text("#person-name") == mask_name(person.name)
            assert person.id_number not in page.content()  # only the masked number reaches the page
    # the fill advances 1..10 per tube; the 10th person closes it and the next one opens
    # a new tube at 1 (or the page shows the closed tube's reset to 0 in between)
    assert counts[:10] == list(range(1, 11)) or counts[:10] == [*range(1, 10), 0]
    assert counts[10] == 1 and tubes[10] != tubes[0]
    assert counts[20] == 1 and tubes[20] not in (tubes[0], tubes[10])
    every = by_via["scanner"] + by_via["card"]
    report = {via: (statistics.median(v), max(v)) for via, v in by_via.items()}
    print(f"\nscan->screen ms over {len(every)} people: median {statistics.median(every):.1f} max {max(every):.1f}; "
          + "; ".join(f"{via}: median {m:.1f} max {x:.1f} (n={len(by_via[via])})" for via, (m, x) in report.items()))
    # the product requirement is 500 ms; a generous margin for a CI machine shared by 7 jobs
    assert statistics.median(every) < 500


def altered(code: str) -> str:
    """A genuine code with its payload edited (another name), signature kept: a forgery."""
    prefix, rest = code.split(":", 1)
    payload, signature = rest.split(".", 1)
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body[4] = "王伪造"
    edited = base64.urlsafe_b64encode(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
    return f"{prefix}:{edited.decode().rstrip('=')}.{signature}"


def test_a_forged_code_turns_the_screen_red_with_its_reason(table_and_kiosk, page, tmp_path):
    kiosk, table = table_and_kiosk
    signed_in(page, kiosk, table)
    person = table.people.person(via="scanner")
    table.scan(altered(table.code_for(person)))
    page.wait_for_selector("#state[data-level=error]")
    assert "签名无效" in page.inner_text("#message")
    assert "forged" in page.inner_text("#message-alt")
    assert page.eval_on_selector("#state", "el => getComputedStyle(el).backgroundColor") == "rgb(196, 18, 47)"
    save_screenshot(page, "error", tmp_path)
    # a code from an issuer this kiosk does not trust is refused just as plainly
    table.scan(Authority().sampling_code(person, issued_at=time.time() - 60))
    page.wait_for_function("() => document.querySelector('#message').textContent.includes('签发机构')")
    assert page.get_attribute("#state", "data-level") == "error"
    assert kiosk.runtime.snapshot["today"]["people"] == 0  # nobody registered


def test_close_tube_button_closes_it_and_the_printer_prints_labels(table_and_kiosk, page):
    """Labels print when a tube opens (it is stuck on before the first swab goes in):
    the closed tube had its label, the next person opens a new tube whose label prints,
    and the reprint button prints the current one again."""
    kiosk, table = table_and_kiosk
    signed_in(page, kiosk, table)
    watch_text(page, "#person-id")
    for _ in range(3):
        present_and_time(page, table, table.people.person(via="scanner"))
    page.wait_for_function("() => document.querySelector('#count').textContent === '3'")
    tube_id = page.inner_text("#tube-id")
    assert [label.barcode for label in table.printer.wait_for(1)] == [tube_id]
    page.click("#actions [data-cmd=close_tube]")
    page.wait_for_function("(id) => document.querySelector('#tube-id').textContent !== id", arg=tube_id)
    assert page.inner_text("#count") == "0"
    closes = [r for r in kiosk.store.iter_records() if r.get("kind") == "tube_close"]
    assert [(r["tube_id"], r.get("reason")) for r in closes] == [(tube_id, "manual")]

    present_and_time(page, table, table.people.person(via="scanner"))
    page.wait_for_function("() => document.querySelector('#count').textContent === '1'")
    new_tube = page.inner_text("#tube-id")
    assert new_tube != tube_id
    assert [label.barcode for label in table.printer.wait_for(2)] == [tube_id, new_tube]
    page.click("#actions [data-cmd=reprint_label]")
    assert [label.barcode for label in table.printer.wait_for(3)] == [tube_id, new_tube, new_tube]


def test_a_duplicate_waits_amber_until_confirmed_on_the_screen(table_and_kiosk, page, tmp_path):
    kiosk, table = table_and_kiosk
    signed_in(page, kiosk, table)
    watch_text(page, "#person-id")
    person = table.people.person(via="scanner")
    present_and_time(page, table, person)
    page.wait_for_function("() => document.querySelector('#count').textContent === '1'")
    table.present(person)  # the same person again today
    page.wait_for_selector("#state[data-level=confirm]")
    table.take_away(person)
    assert page.is_visible("#pending-actions")
    assert "今日已" in page.inner_text("#message")
    save_screenshot(page, "confirm", tmp_path)
    page.click("#pending-actions [data-cmd=confirm_duplicate]")
    page.wait_for_function("() => document.querySelector('#count').textContent === '2'")
    assert page.get_attribute("#state", "data-level") == "ok"


def test_a_yellow_code_is_confirmed_into_a_single_tube(table_and_kiosk, page):
    kiosk, table = table_and_kiosk
    signed_in(page, kiosk, table)
    person = table.people.person(via="scanner", colour="yellow")
    table.present(person)
    page.wait_for_selector("#state[data-level=confirm]")
    assert page.inner_text("#code") == "黄码"
    assert page.inner_text("#pending-actions [data-cmd=confirm_duplicate]") == "确认单管"
    printed_before = len(table.printer.labels)
    page.click("#pending-actions [data-cmd=confirm_duplicate]")
    page.wait_for_function("() => !document.querySelector('#single').hidden || "
                           "document.querySelector('#state').dataset.level === 'ok'")
    assert table.printer.wait_for(printed_before + 1, timeout=15)[printed_before:]
    singles = [r for r in kiosk.store.iter_records() if r.get("kind") == "sample" and r.get("single_reason")]
    assert [r["single_reason"] for r in singles] == ["yellow_code"]


def test_void_last_from_the_screen_is_a_void_record_not_a_deletion(table_and_kiosk, page):
    kiosk, table = table_and_kiosk
    signed_in(page, kiosk, table)
    watch_text(page, "#person-id")
    present_and_time(page, table, table.people.person(via="scanner"))
    page.wait_for_function("() => document.querySelector('#count').textContent === '1'")
    page.click("#actions [data-cmd=people]")  # 作废上一人 is on the tube's people sheet
    page.click("#people [data-cmd=void_last]")
    page.click("#dialog-buttons button:has-text('确定')")
    page.wait_for_function("() => document.querySelector('#person-label').textContent.includes('已作废')")
    kinds = [r["kind"] for r in kiosk.store.iter_records() if r["kind"] in ("sample", "void")]
    assert kinds == ["sample", "void"]  # the sample stays stored; the void points at it
    assert page.is_disabled("#people [data-cmd=void_last]")


def test_switch_mode_from_the_screen_is_the_same_as_the_card(table_and_kiosk, page):
    kiosk, table = table_and_kiosk
    signed_in(page, kiosk, table)
    page.click("[data-cmd=switch_mode]")
    page.click("#dialog-buttons button:has-text('20混1')")
    page.wait_for_function("() => document.querySelector('#mode').textContent === '20混1'")
    assert [r["mode"] for r in kiosk.store.iter_records() if r.get("kind") == "mode"] == ["20"]


def test_run_simulate_serves_the_screen(tmp_path, page):
    """The real `swabkiosk run --simulate` process: its screen comes up and fills."""
    import queue
    import re
    import threading

    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_app", "run", "--simulate", "--ui-port", "0",
         "--data-dir", str(tmp_path / "data"), "--pace", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url, seen = None, []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            match = re.search(r"screen: (http://127\.0\.0\.1:\d+/)", line)
            url = match.group(1) if match else None
        assert url, f"run --simulate printed no screen URL: {''.join(seen)[-2000:]}"
        open_screen(page, url)
        page.wait_for_function("() => document.querySelector('#operator').textContent !== '未签到'",
                               timeout=60_000)
        page.wait_for_function("() => Number(document.querySelector('#count').textContent) >= 2", timeout=60_000)
        assert page.inner_text("#person-id").count("*") >= 8  # masked on screen
        with open(f"/proc/{proc.pid}/status") as f:
            rss_kb = int(f.read().split("VmRSS:")[1].split()[0])
        print(f"\nrun --simulate RSS: {rss_kb / 1024:.1f} MiB (whole daemon incl. simulated devices and screen)")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
