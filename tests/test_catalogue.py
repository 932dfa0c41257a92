"""The message catalogue: one place for every text (issue 14, item 3)."""

import re
from pathlib import Path

import pytest

from firmware_app import catalogue

ROOT = Path(__file__).resolve().parents[1]



def test_every_key_has_zh_and_en_with_the_same_fields():
    assert catalogue.keys()
    for key in catalogue.keys():
        zh, en = catalogue.both(key, **{f: "X" for f in catalogue.fields(key)})
        assert zh and en, key
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", key), key


def test_an_unknown_key_is_a_loud_error():
    with pytest.raises(KeyError):
        catalogue.zh("no.such.key")


def test_no_chinese_outside_the_catalogue():
    """Issue 14: grep for Chinese characters outside the catalogue finds nothing in firmware_app/
    and drivers/ (code, docstrings, comments, the page's own files)."""
    han = re.compile(r"[\u3400-\u9fff]")
    found = []
    for top in ("firmware_app", "drivers"):
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or path.suffix not in {".py", ".js", ".html", ".css", ".json", ".toml"}:
                continue
            if (ROOT / "firmware_app" / "catalogue") in path.parents:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if han.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:60]}")
    assert found == []
