"""One connection attempt of the uplink: its paho client, what is in flight on it, and the
first error paho logged on it (the cause of a drop)."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt


@dataclass
class Connection:
    """One connection attempt's paho client and what is in flight on it."""

    client: mqtt.Client
    tls: bool = False
    up: bool = False  # CONNACK accepted
    up_at: float = 0.0  # monotonic time of the CONNACK
    url: str = ""
    inflight: dict[int, tuple] = field(default_factory=dict)  # mid -> (record_id, seq, resend job or None, sent at)
    ahead: deque = field(default_factory=deque)  # (record, payload) read from the outbox, not yet published
    cursor: int = 0  # seq of the last record read on this connection (a new one starts over)
    paho_log: FirstError = field(default_factory=lambda: FirstError())


class FirstError(logging.Handler):
    """paho's log for one connection, kept only for its first error (the cause of a drop).

    A logger rather than ``on_log``: paho formats every debug line for ``on_log``
    (two per record), while a logger set to ERROR drops them before formatting."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.first = ""
        self.logger = logging.Logger("paho", logging.ERROR)  # not registered: one per connection
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if not self.first:
            self.first = record.getMessage()
