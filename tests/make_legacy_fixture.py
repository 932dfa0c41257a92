"""Build tests/fixtures/legacy_store.tar.gz with the OLD TinyDB segment store (git 485c4d2).

    mkdir -p /tmp/old/firmware_app && for f in store segments model; do
      git show 485c4d2:firmware_app/$f.py > /tmp/old/firmware_app/$f.py; done
    touch /tmp/old/firmware_app/__init__.py
    PYTHONPATH=/tmp/old:. python tests/make_legacy_fixture.py

130 records over several segments, 100 acked (one torn ack line at the end of a journal),
meta via set_meta and append(meta=), and one segment damaged (a byte of its last
record flipped): the import keeps 129, reports 1 lost.
"""
import os
import sys
import tarfile
import tempfile

from firmware_app.store import Store  # the OLD store (PYTHONPATH=/tmp/old first)
from tests.store_fixtures import sample, event

out = os.path.join(os.path.dirname(__file__), "fixtures", "legacy_store.tar.gz")
with tempfile.TemporaryDirectory() as d:
    data = os.path.join(d, "data")
    s = Store(data)
    for seq in range(1, 131):
        rec = sample(seq, tube=f"T{(seq - 1) // 10:04d}", person=seq, at=1764000000 + seq) if seq % 10 else \
            event(seq, "tube_close", tube=f"T{(seq - 1) // 10:04d}", at=1764000000 + seq, reason="full")
        s.append([rec], meta={"pending_labels": [{"tube": rec["tube_id"], "n": seq}]} if seq % 7 == 0 else None)
    s.set_meta("uplink", {"connected": False, "updated_at": 1764000200})
    s.ack([sample(n)["record_id"] for n in range(1, 101)])
    s.sync_acks()
    s.close()
    seg_dir = os.path.join(data, "segments")
    names = sorted(n for n in os.listdir(seg_dir) if n.endswith(".json"))
    acks = sorted(n for n in os.listdir(seg_dir) if n.endswith(".acks") and os.path.getsize(os.path.join(seg_dir, n)))
    with open(os.path.join(seg_dir, acks[-1]), "ab") as f:
        f.write(b'{"at": 1764000300, "seqs": [1')  # torn: a power cut mid-ack
    victim = os.path.join(seg_dir, names[1])
    raw = bytearray(open(victim, "rb").read())
    i = raw.rindex(b"13800138000")  # a digit of the last record's phone: parses, fails its CRC
    raw[i + 3] = ord("9") if raw[i + 3] != ord("9") else ord("8")
    open(victim, "wb").write(bytes(raw))
    print(len(names), "segments;", acks[-1], "torn;", victim, "damaged", file=sys.stderr)
    with tarfile.open(out, "w:gz") as tar:
        tar.add(data, arcname="data")
