"""The udev rules parse, give each device its stable name and only the service's groups.

`udevadm verify` exists from systemd 254; Debian bookworm ships 252, so the rule syntax is
checked here by a parser of udev's grammar (KEY[{attr}] OP "value", comma separated),
and by `udevadm verify` as well where it exists.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[1] / "config" / "udev" / "70-swabkiosk.rules"

MATCH_KEYS = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER", "DRIVERS", "ATTR", "ATTRS", "ENV", "TAG", "TEST"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "OWNER", "ENV", "TAG", "GOTO", "LABEL", "RUN", "IMPORT", "ATTR", "OPTIONS", "NAME"}
WITH_ATTR = {"ATTR", "ATTRS", "ENV", "IMPORT", "RUN", "TEST"}
TOKEN = re.compile(r'\s*([A-Z]+)(?:\{([^}]+)\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')
NAMES = {"swabkiosk-idcard", "swabkiosk-scanner", "swabkiosk-printer"}
SERVICE_GROUPS = {"dialout", "video", "lp"}


def parse(text: str) -> list[tuple[int, list[tuple[str, str | None, str, str]]]]:
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pos, tokens = 0, []
        while pos < len(line):
            m = TOKEN.match(line, pos)
            assert m, f"line {number}: cannot parse from {line[pos:]!r}"
            tokens.append(m.groups())
            pos = m.end()
        rules.append((number, tokens))
    return rules


def check(text: str) -> list:
    """Parse and check rules; AssertionError names the first bad line."""
    rules = parse(text)
    labels = {value for _, tokens in rules for key, _, op, value in tokens if key == "LABEL"}
    for number, tokens in rules:
        for key, attr, op, value in tokens:
            where = f"line {number}: {key}"
            if op in ("==", "!="):
                assert key in MATCH_KEYS, f"{where} is not a match key"
            else:
                assert key in ASSIGN_KEYS, f"{where} cannot be assigned"
            assert (attr is not None) == (key in WITH_ATTR), f"{where}: {{attr}} misuse"
            if key == "GOTO":
                assert value in labels, f"{where}: no LABEL {value!r}"
            if key in ("ATTR", "ATTRS") and attr in ("idVendor", "idProduct"):
                for alternative in value.split("|"):
                    assert re.fullmatch(r"[0-9a-f]{4}", alternative), f"{where}: {value!r} is not lower-case 4-digit hex"
            if key == "MODE":
                assert value == "0660", f"{where}: devices are for owner root and the group only"
            if key == "GROUP":
                assert value in SERVICE_GROUPS, f"{where}: {value} is not a group of the service user"
            if key == "SYMLINK":
                assert op == "+=" and value in NAMES, f"{where}: use SYMLINK+= with one of {NAMES}"
    return rules


def test_every_rule_line_is_valid_udev_syntax():
    assert len(check(RULES.read_text())) > 10


def test_each_stable_name_has_rules_and_every_naming_rule_sets_group_and_mode():
    rules = parse(RULES.read_text())
    named = {}
    for number, tokens in rules:
        keys = {key: value for key, _, _, value in tokens}
        if "SYMLINK" in keys:
            named.setdefault(keys["SYMLINK"], []).append(number)
            assert "GROUP" in keys and "MODE" in keys, f"line {number}: a named device needs GROUP and MODE"
    assert set(named) == NAMES
    # The examples the README promises: the common Chinese bridge chips and 58 mm printers.
    text = RULES.read_text()
    for vid_pid in ['"1a86", ATTRS{idProduct}=="7523"', '"067b", ATTRS{idProduct}=="2303"', '"10c4", ATTRS{idProduct}=="ea60"', '"0416", ATTRS{idProduct}=="5011"']:
        assert vid_pid in text


@pytest.mark.parametrize(
    "bad",
    [
        'SUBSYSTEM="tty", SYMLINK+="swabkiosk-idcard"',  # assignment to a match-only key
        'SUBSYSTEM=="tty" SYMLINK+="swabkiosk-idcard"',  # missing comma
        'ATTRS{idVendor=="1a86"',  # unclosed attribute
        'ATTRS{idVendor}=="1A86", SYMLINK+="swabkiosk-idcard"',  # upper-case hex never matches sysfs
        'KERNEL=="ttyUSB0", GOTO="nowhere"',  # jump to a missing label
        'KERNEL=="ttyUSB0", GROUP="plugdev"',  # a group the service is not in
    ],
)
def test_checker_rejects_broken_rules(bad):
    with pytest.raises(AssertionError):
        check(bad)


@pytest.mark.skipif(shutil.which("udevadm") is None, reason="udevadm is not installed")
def test_udevadm_verify_where_available():
    version = int(subprocess.run(["udevadm", "--version"], capture_output=True, text=True).stdout.split()[0])
    if version < 254:
        pytest.skip(f"udevadm {version} has no `verify` (systemd >= 254); the parser above checks the syntax")
    out = subprocess.run(["udevadm", "verify", "--resolve-names=never", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
