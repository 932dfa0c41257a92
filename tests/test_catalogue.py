"""The message catalogue: one place for every text (issue 14, item 3)."""

import re
from pathlib import Path

import pytest

from firmware_app import catalogue

ROOT = Path(__file__).resolve().parents[1]
HAN = re.compile(r"[\u3400-\u9fff\uff01-\uff5e\u3000-\u303f]")


def test_every_key_has_zh_and_en_with_the_same_fields():
    assert catalogue.keys()
    for key in catalogue.keys():
        zh, en = catalogue.both(key, **{f: "X" for f in catalogue.fields(key)})
        assert zh and en, key
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", key), key


def test_an_unknown_key_is_a_loud_error():
    with pytest.raises(KeyError):
        catalogue.zh("no.such.key")
