"""``cmd/resend``: the district asks for a seq range again (a broker crash loses what it had
acknowledged). The range is republished from the archive, whatever its ack state (same
``record_id``, same bytes), into the room the outbox leaves in the window, at most
``resend_rate`` records per second, and answered with what was sent, what the archive no
longer holds, what was never stored and what is set aside (docs/records.md, "Delivery contract").

A part of ``Uplink`` (firmware_app/uplink.py): it runs on the uplink's own thread, with its state.
"""

from __future__ import annotations

import queue
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

from paho.mqtt.enums import MQTTErrorCode

from firmware_app.catalogue import both
from firmware_app.model import RECORD_KINDS, Command, CommandResult
from firmware_app.store import Store
from firmware_app.uplink_connection import Connection
from firmware_app.uplink_settings import UplinkSettings

RESEND_MAX = 10_000  # seqs per cmd/resend
RESEND_QUEUE = 4  # resends waiting at once; more are answered ok:false "busy"


class Resends(ABC):
    """The resend half of the uplink (a mixin of ``Uplink``, which sets these attributes)."""

    store: Store
    settings: UplinkSettings
    _resends: deque[dict]
    _tokens: float
    _tokens_at: float
    _probe: int | None
    _set_aside: dict[int, dict]
    _state: dict[str, Any]
    _control: queue.Queue[tuple[str, bytes, bool]]

    @abstractmethod
    def _refuse(self, name: str, txn: str | None, err: str, err_en: str) -> None:
        """Uplink's (uplink.py)."""

    @abstractmethod
    def respond(self, result: CommandResult) -> None:
        """Uplink's (uplink.py)."""

    @abstractmethod
    def wake(self) -> None:
        """Uplink's (uplink.py)."""

    def _resend_request(self, command: Command) -> None:
        lo, hi = command.args["from_seq"], command.args["to_seq"]
        if lo < 1 or hi < lo:
            return self._refuse("resend", command.txn, *both("uplink.resend_bad_range"))
        if hi - lo + 1 > RESEND_MAX:
            return self._refuse("resend", command.txn, *both("uplink.resend_too_many", limit=RESEND_MAX))
        if len(self._resends) >= RESEND_QUEUE:
            return self._refuse("resend", command.txn, *both("uplink.resend_busy", limit=RESEND_QUEUE))
        last = self.store.last_seq()
        self._resends.append({"txn": command.txn, "from": lo, "to": hi, "upto": min(hi, last), "next": lo,
                              "last_seq": last, "sent": 0, "missing": [], "set_aside": []})
        self.wake()

    def _fill_resend(self, conn: Connection) -> None:
        """Republish the oldest resend job's next page (same record_id, same bytes) into the room the
        outbox leaves in the window, at most ``resend_rate`` records per second."""
        if not self._resends:
            return
        now = time.monotonic()
        rate = self.settings.resend_rate
        self._tokens = min(rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        room = min(self.settings.window - len(conn.inflight), int(self._tokens))
        if room <= 0 or self._probe is not None:
            return
        job = self._resends[0]
        page = self.store.records_between(job["next"], job["upto"], limit=room) if job["next"] <= job["upto"] else []
        root = self.settings.root
        for rec, payload in page:
            seq = rec["seq"]
            if seq > job["next"]:
                add_range(job["missing"], job["next"], seq - 1)
            if seq in self._set_aside:
                job["set_aside"].append(seq)
                job["next"] = seq + 1
                continue
            info = conn.client.publish(root + RECORD_KINDS.get(rec.get("kind", ""), "records"), payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # connection gone: the loop notices, this job goes on from here
            conn.inflight[info.mid] = (rec["record_id"], seq, job, now)
            job["next"] = seq + 1
            job["sent"] += 1
            self._tokens -= 1
            self._state["sent"] += 1
        if len(page) < room and job["next"] <= job["upto"]:
            add_range(job["missing"], job["next"], job["upto"])  # pruned (or unreadable) to the end
            job["next"] = job["upto"] + 1
        if job["next"] > job["upto"]:
            self._resends.popleft()
            first = self.store.stats().get("first_seq")
            above = [[max(job["from"], job["last_seq"] + 1), job["to"]]] if job["to"] > job["last_seq"] else []
            self.respond(CommandResult("resend", job["txn"], True,
                                       " / ".join(both("uplink.resent", count=job["sent"])), {
                                           "from_seq": job["from"], "to_seq": job["to"], "sent": job["sent"],
                                           "not_in_archive": job["missing"], "never_stored": above,
                                           "set_aside": job["set_aside"], "last_seq": job["last_seq"],
                                           "first_seq": first}))


def add_range(ranges: list[list[int]], lo: int, hi: int) -> None:
    """Append [lo, hi] to sorted ranges, merged with the last one when they touch."""
    if ranges and ranges[-1][1] + 1 >= lo:
        ranges[-1][1] = max(ranges[-1][1], hi)
    else:
        ranges.append([lo, hi])
