"""deploy/constraints.txt pins every runtime dependency the image installs (issue 13, finding 11)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_is_pinned_and_install_sh_uses_the_file():
    pins = {}
    for line in (ROOT / "deploy" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), line
            pins[norm(name)] = version
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = norm(re.match(r"[A-Za-z0-9_.-]+", dep).group(0))
        assert name in pins, f"{name} is not pinned in deploy/constraints.txt"
    assert '-c "$src/deploy/constraints.txt"' in (ROOT / "deploy" / "install.sh").read_text()
