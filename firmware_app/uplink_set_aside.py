"""Records the broker keeps refusing (issue: a record whose publish makes the broker drop the
connection each time would block the outbox for ever). When a connection drops with records in
flight, the oldest is suspected: the next connection sends it alone; if a connection drops
while it is alone in flight (just sent) ``refuse_strikes`` times, it is set aside (kept in the
store's meta, reported in the status and the state) and the rest of the outbox goes on.

A part of ``Uplink`` (firmware_app/uplink.py): it runs on the uplink's own thread, with its state.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any

from firmware_app.store import Store, StoreError
from firmware_app.uplink_connection import Connection
from firmware_app.uplink_settings import UplinkSettings

log = logging.getLogger("firmware_app.uplink")


def load_set_aside(store: Store) -> dict[int, dict]:
    """The records set aside before a restart (seq -> note)."""
    set_aside: dict[int, dict] = {}
    try:
        for item in store.get_meta("uplink_set_aside") or []:
            if isinstance(item, dict) and isinstance(item.get("seq"), int):
                set_aside[item["seq"]] = item
    except Exception:  # noqa: BLE001 - a damaged note only means retrying those records
        log.warning("uplink: could not read the set-aside records", exc_info=True)
    return set_aside


class SetAside(ABC):
    """The set-aside half of the uplink (a mixin of ``Uplink``, which sets these attributes)."""

    store: Store
    settings: UplinkSettings
    _probe: int | None
    _strikes: dict[int, int]
    _set_aside: dict[int, dict]
    _status_dirty: bool

    @abstractmethod
    def _set_state(self, **changes: Any) -> None:
        """Uplink's (uplink.py)."""

    def _note_drop(self, conn: Connection) -> None:
        """A connection dropped with records in flight. A resend's records go again; the oldest record
        is suspected: the next connection sends it alone, and if a connection drops while it is alone in
        flight (just sent) ``refuse_strikes`` times, it is set aside so the rest of the outbox goes on."""
        if not conn.up or not conn.inflight:
            return
        for _rid, seq, job, _at in conn.inflight.values():
            if job is not None and seq < job["next"]:
                job["next"] = seq
        outbox = [(seq, at) for _rid, seq, job, at in conn.inflight.values() if job is None]
        if not outbox:
            return
        seq, at = min(outbox)
        if len(conn.inflight) == 1 and seq == self._probe and time.monotonic() - at < 5.0:
            self._strikes[seq] = self._strikes.get(seq, 0) + 1
            if self._strikes[seq] >= self.settings.refuse_strikes:
                self._put_aside(seq, conn.inflight)
                return
        self._probe = seq

    def _put_aside(self, seq: int, inflight: dict) -> None:
        rid = next((r for r, s, _, _ in inflight.values() if s == seq), "")
        self._set_aside[seq] = {"seq": seq, "record_id": rid, "at": time.time(), "tries": self._strikes.pop(seq, 0),
                                "reason": "the broker dropped the connection each time this record was sent"}
        self._probe = None
        log.error("uplink: record %s (seq %d) is refused by the broker; set aside, the rest goes on", rid, seq)
        try:
            self.store.set_meta("uplink_set_aside", sorted(self._set_aside.values(), key=lambda x: x["seq"]))
        except StoreError as exc:
            log.error("uplink: could not record the set-aside record: %s", exc.message_en)
        self._status_dirty = True
        self._set_state(set_aside=sorted(self._set_aside))
