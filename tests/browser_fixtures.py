"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for screen tests.

Playwright's Python package brings its own driver but never downloads a browser here:
we point it at the Debian build. Each test gets a fresh context (empty storage, so a
language chosen in one test does not leak into the next); Playwright starts Chromium
with a new empty --user-data-dir of its own.

Import explicitly: ``from tests.browser_fixtures import browser, page, ...``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
import pytest

CHROMIUM = os.environ.get("SWAB_CHROMIUM", "/usr/bin/chromium")
# Needed as root in a container; the rest keeps Chromium from phoning home during tests.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",  # as on the kiosk: tones play without a tap
]
KIOSK_VIEWPORT = {"width": 800, "height": 480}  # the official 7" Pi touchscreen
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

# Records what the page asks WebAudio to play, so a test can tell the tones apart.
TONE_PROBE = """
(() => {
  window.__tones = [];
  const Ctx = window.AudioContext;
  if (!Ctx) return;
  const create = Ctx.prototype.createOscillator;
  Ctx.prototype.createOscillator = function () {
    const osc = create.call(this);
    const start = osc.start.bind(osc);
    osc.start = (when) => { window.__tones.push([osc.type, osc.frequency.value]); return start(when); };
    return osc;
  };
})();
"""


@pytest.fixture(scope="module")
def browser():
    # module scope: Playwright's sync API runs its own event loop while open, so it is
    # closed before another module (or another test file's asyncio) runs
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found: run bin/bootstrap --test (Debian packages chromium, chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=KIOSK_VIEWPORT, device_scale_factor=1, locale="zh-CN")
    context.add_init_script(TONE_PROBE)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors  # a script error on the kiosk page fails the test that caused it
    pg.set_default_timeout(10_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_screen(pg, url: str) -> None:
    """Load the kiosk page and wait until its live stream has delivered a state."""
    pg.goto(url)
    pg.wait_for_selector("#app[data-conn=open]")


def watch_text(pg, selector: str) -> None:
    """Start recording (Date.now(), text) each time ``selector``'s text changes."""
    pg.evaluate(
        """(sel) => {
          const el = document.querySelector(sel);
          window.__changes = window.__changes || {};
          const log = window.__changes[sel] = [];
          new MutationObserver(() => log.push([Date.now(), el.textContent]))
            .observe(el, {childList: true, characterData: true, subtree: true});
        }""",
        selector,
    )


def wait_change(pg, selector: str, predicate_js: str, since_ms: float, timeout_s: float = 10.0) -> float:
    """Wait until a recorded text of ``selector`` satisfies ``predicate_js`` (a JS
    expression over ``text``); return its wall-clock time in ms (same clock as Python's).

    Date.now() counts whole milliseconds, so a change within the same millisecond as
    ``since`` reads as earlier than it: compare against ``since`` rounded down."""
    handle = pg.wait_for_function(
        """([sel, since]) => (window.__changes[sel] || []).find(
             ([at, text]) => at >= Math.floor(since) && (%s))""" % predicate_js,
        arg=[selector, since_ms],
        timeout=timeout_s * 1000,
    )
    at, _ = handle.json_value()
    return at


def now_ms() -> float:
    return time.time() * 1000


def save_screenshot(pg, name: str, tmp_path: Path) -> Path:
    """Screenshot into the test's tmp dir; also into docs/screenshots when
    SWAB_UPDATE_SCREENSHOTS=1 (so a normal test run leaves the tree clean)."""
    out = tmp_path / f"{name}.png"
    pg.evaluate("() => Promise.all(document.getAnimations().map((a) => a.finished))")  # not mid-flash
    pg.screenshot(path=str(out))
    if os.environ.get("SWAB_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, SCREENSHOT_DIR / f"{name}.png")
    return out
