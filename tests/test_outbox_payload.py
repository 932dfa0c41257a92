"""The uplink publishes each record's canonical JSON, the same bytes before and after a restart."""

from __future__ import annotations

import json

from firmware_app.store import Store
from tests.store_fixtures import sample


def test_a_resent_record_is_byte_for_byte_the_same_message(tmp_path):
    with Store(tmp_path) as s:
        for n in range(1, 30):
            s.append([sample(n, person=n % 3)])
        live = s.outbox_messages(100)  # the stored bodies, as written
    with Store(tmp_path) as s:
        again = s.outbox_messages(100)  # after a restart
        assert [p for _, p in again] == [p for _, p in live]
        assert [json.loads(p) for _, p in again] == s.outbox(100)
        assert [r for r, _ in s.outbox_messages(5, after_seq=10)] == s.outbox(5, after_seq=10)
        assert again[0][0]["name"].encode() in again[0][1]  # readable UTF-8, not \\u escapes
