"""Untrusted bytes into the parsers: MQTT command payloads and damaged store files."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_app.model import Command
from firmware_app.segments import SegmentStorage, StoreCorrupt, salvage_records
from firmware_app.uplink import MQTT_COMMANDS, validate_command

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


def _segment(path, n: int) -> bytes:
    SegmentStorage(str(path)).write({"records": {str(s): {"seq": s, "record_id": f"d-{s:010d}", "kind": "sample",
                                                         "id_number": "11010519491231002X"}
                                                 for s in range(1, n + 1)}})
    return path.read_bytes()


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), st.data())
def test_damaged_segment_is_either_whole_or_reported(tmp_path_factory, n, data):
    path = tmp_path_factory.mktemp("seg") / "0000000001.json"
    raw = _segment(path, n)
    cut = data.draw(st.integers(0, len(raw)))
    junk = data.draw(st.binary(max_size=40))
    damaged = raw[:cut] + junk + raw[cut + len(junk):] if data.draw(st.booleans()) else raw[:cut]
    path.write_bytes(damaged)
    original = {int(k): e["r"] for k, e in json.loads(raw)["records"].items()}
    try:
        loaded = SegmentStorage(str(path)).read()
    except StoreCorrupt as exc:
        assert exc.path == str(path)
        assert 0 <= exc.salvageable <= n
    else:  # only an unchanged file (or one whose change is outside every record) loads
        assert loaded is None or {int(k): r for k, r in loaded["records"].items()} == original
    salvaged = salvage_records(damaged)
    assert all(original[s] == rec for s, rec in salvaged.items())  # salvage never returns a changed record
