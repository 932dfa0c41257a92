"""The page's words from the catalogue: ``/texts.js`` and the page's ``{{key}}`` slots.

The page keeps no text of its own: ``/texts.js`` (a script, so the strict content policy
``script-src 'self'`` holds) sets ``SWAB_TEXTS`` to the ``ui.`` and ``devices.`` areas as
``{key: [zh, en]}`` and ``SWAB_PINYIN`` to the pinyin input's table; ``index.html``'s
``{{ui.title}}`` slots are filled with the zh-CN text before any script runs.
"""

from __future__ import annotations

import functools
import html
import json
import re

from firmware_app import catalogue
from firmware_app.catalogue import screen

AREAS = ("ui.", "devices.")
_SLOT = re.compile(r"\{\{([a-z0-9_.]+)\}\}")


@functools.lru_cache(maxsize=1)
def script() -> bytes:
    """``/texts.js``: every text the page shows, zh-CN first, and the pinyin table."""
    texts = {key: list(pair) for prefix in AREAS for key, pair in sorted(catalogue.area(prefix).items())}
    dump = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return (f'"use strict";\nwindow.SWAB_TEXTS = {dump(texts)};\n'
            f"window.SWAB_PINYIN = {dump(screen.PINYIN)};\n").encode()


def fill(page: bytes) -> bytes:
    """``page`` with each ``{{key}}`` replaced by the key's zh-CN text (HTML-escaped)."""
    return _SLOT.sub(lambda m: html.escape(catalogue.zh(m.group(1))), page.decode()).encode()
