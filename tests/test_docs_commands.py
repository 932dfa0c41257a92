"""The docs' shell commands run as written. Every fenced block in README.md and docs/*.md
that runs openssl is run here, as a technician would paste it, in an empty directory
(OpenSSL 3 refused the station certificate's unescaped `-subj "/CN=dongguan/..."`)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing: bin/bootstrap --test installs it")


CONTINUES = "# (continues the block above"  # a block run after the one before it, in the same directory


def openssl_blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        blocks = FENCE.findall(doc.read_text(encoding="utf-8"))
        for i, block in enumerate(blocks):
            if re.search(r"^openssl ", block, re.M):
                while block.startswith(CONTINUES) and i > 0:  # e.g. revoking what the block above issued
                    i -= 1
                    block = blocks[i] + block
                found.append((doc.name, block))
    return found


def test_there_are_openssl_blocks_to_check():
    assert any(name == "mqtt.md" for name, _ in openssl_blocks())


@pytest.mark.parametrize("name,block", openssl_blocks(), ids=lambda v: v if v.endswith(".md") else "")
def test_openssl_blocks_run_as_written(name, block, tmp_path):
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, f"{name}: {out.stderr}"


def test_the_station_certificate_has_the_table_path_as_its_cn(tmp_path):
    block = next(block for name, block in openssl_blocks() if name == "mqtt.md" and "client.crt" in block)
    subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    subject = subprocess.run(["openssl", "x509", "-in", "client.crt", "-noout", "-subject", "-nameopt", "RFC2253"],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert subject == "subject=CN=dongguan/guancheng-stadium/t03"  # one CN, the slashes inside it
    verify = subprocess.run(["openssl", "verify", "-CAfile", "ca.crt", "client.crt"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert verify.returncode == 0 and "OK" in verify.stdout
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_pem_x509_certificate((tmp_path / "client.crt").read_bytes())
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["dongguan/guancheng-stadium/t03"]
