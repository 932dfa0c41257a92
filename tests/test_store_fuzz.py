"""Untrusted bytes into the parsers: MQTT command payloads, a damaged kiosk.db, damaged legacy segment files."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.model import Command
from firmware_app.store import Store, StoreError
from firmware_app.commands import for_source
from firmware_app.uplink import validate_command

MQTT_COMMANDS = [c["name"] for c in for_source("mqtt")]  # the command table's district commands

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
names = st.sampled_from([*MQTT_COMMANDS, "self_destruct", "", "reprint_label/../x"])


@settings(max_examples=300, deadline=None)
@given(names, st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_command_payload_gives_a_command_or_a_reason(name, payload):
    command, txn, (err, err_en) = validate_command(name, payload)
    if command is None:
        assert err and err_en
    else:
        assert isinstance(command, Command) and command.name in MQTT_COMMANDS and command.txn == txn
        assert command.source == "mqtt" and not err


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["txn", "args"]), json_values), names)
def test_structured_command_payloads(body, name):
    command, _, (err, _) = validate_command(name, json.dumps(body).encode())
    assert (command is None) == bool(err)


def _good_db(d) -> bytes:
    with Store(d) as s:
        s.append([{"seq": n, "record_id": f"d-{n:010d}", "kind": "sample", "tube_id": "T", "id_number": "11010519491231002X"}
                  for n in range(1, 30)])
    return (Path(d) / "kiosk.db").read_bytes()


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_random_bytes_as_kiosk_db_open_and_repair_raise_only_store_errors(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("db")
    raw = bytearray(_good_db(d))
    how = data.draw(st.sampled_from(["random", "flip", "cut"]))
    if how == "random":
        raw = bytearray(data.draw(st.binary(max_size=9000)))
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 40))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    else:
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    (d / "kiosk.db").write_bytes(bytes(raw))
    try:
        with Store(d) as s:
            list(s.iter_records())
            s.stats()
    except StoreError:
        pass
    try:
        Store.repair(d)
    except StoreError:
        pass
    with Store(d) as s:  # after a repair the store always opens again
        kept = list(s.iter_records())
        assert all(r["id_number"] == "11010519491231002X" for r in kept)  # never a changed ID number


FIXTURE = Path(__file__).parent / "fixtures" / "legacy_store.tar.gz"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_bytes_as_legacy_segments_import_or_refuse_cleanly(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("legacy")
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(d)
    seg_dir = d / "data" / "segments"
    names = sorted(os.listdir(seg_dir))
    for name in data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        raw = (seg_dir / name).read_bytes()
        if data.draw(st.booleans()):
            raw = data.draw(st.binary(max_size=2000))
        else:
            raw = raw[: data.draw(st.integers(0, len(raw)))]
        (seg_dir / name).write_bytes(raw)
    try:
        with Store(d / "data") as s:
            (report,) = s.reports()
            assert report["kept"] == len(list(s.iter_records()))
    except StoreError:
        pass
