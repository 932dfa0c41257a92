"""The message catalogue: every text a person sees or hears, under one key, zh-CN first.

Each area of the kiosk keeps its texts in one module of this package (``station``,
``screen``, ``devices``, ``store``, ``uplink``, ``tools`` …); each module holds one dict::

    MESSAGES = {
        "tube.opened": ("已开管 {tube_id}（{mode}），请出示身份证或采样码", "tube {tube_id} opened ({mode})"),
    }

Keys are ``<area>.<what>``; the two texts take the same ``{placeholders}``
(``str.format`` fields). Rule code never builds a sentence inline: it names a key and
gives the values (``zh("tube.opened", tube_id=..., mode=...)``), so a text is changed in
one place and a volunteer never sees English on the zh-CN screen.

A key that is not in the catalogue raises ``KeyError`` (a bug, found by the tests), not a
blank screen. Nothing here does I/O: the station's rule modules may import it.
"""

from __future__ import annotations

import importlib
import pkgutil
from string import Formatter
from typing import Any, Literal

Lang = Literal["zh-CN", "en"]

_CATALOGUE: dict[str, tuple[str, str]] = {}
_AREA_OF: dict[str, str] = {}


def _fields(template: str) -> set[str]:
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in Formatter().parse(template) if name}


def _load() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for key, pair in getattr(module, "MESSAGES", {}).items():
            if key in _CATALOGUE:
                raise RuntimeError(f"catalogue key {key!r} is in both {_AREA_OF[key]} and {info.name}")
            zh_text, en_text = pair
            if _fields(zh_text) != _fields(en_text):
                raise RuntimeError(f"catalogue key {key!r}: zh and en take different fields")
            _CATALOGUE[key] = (zh_text, en_text)
            _AREA_OF[key] = info.name


def keys() -> list[str]:
    return sorted(_CATALOGUE)


def fields(key: str) -> set[str]:
    return _fields(_CATALOGUE[key][0])


def text(key: str, lang: Lang = "zh-CN", /, **values: Any) -> str:
    zh_text, en_text = _CATALOGUE[key]
    return (zh_text if lang == "zh-CN" else en_text).format(**values)


def zh(key: str, /, **values: Any) -> str:
    """The zh-CN text of ``key`` with ``values`` filled in."""
    return _CATALOGUE[key][0].format(**values)


def en(key: str, /, **values: Any) -> str:
    """The English text of ``key`` with ``values`` filled in."""
    return _CATALOGUE[key][1].format(**values)


def both(key: str, /, **values: Any) -> tuple[str, str]:
    """``(zh, en)`` for ``key``: what a Show or a refusal carries."""
    zh_text, en_text = _CATALOGUE[key]
    return zh_text.format(**values), en_text.format(**values)


def area(prefix: str) -> dict[str, tuple[str, str]]:
    """Every entry whose key starts with ``prefix`` (e.g. ``"ui."`` for the page's own texts)."""
    return {k: v for k, v in _CATALOGUE.items() if k.startswith(prefix)}


_load()
