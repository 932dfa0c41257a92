"""MQTT uplink: sends the store's outbox to the district broker, QoS 1, at least once.

The store is the queue. paho keeps unacknowledged QoS 1 messages only in memory,
so each connection gets a fresh paho client and starts again from the oldest
record still in the outbox; a record leaves the outbox only when the PUBACK of
the message that carried it arrives (mid -> record_id). A duplicate is therefore
always the same record (same ``record_id``) and the consumer de-duplicates on it.

One thread owns the paho client (connect, loop, publish, acks), so no paho call
races another (a second thread would only fight it for the GIL). It keeps the
broker busy while it does the store work: each step publishes what it read in
the step before, then reads the next records and writes the acks while the
broker works through the window in flight. Records go out strictly in seq
order (per-table order, hence per-tube order), ``window`` in flight; command
responses, status and availability never queue behind a backlog: they are
published as soon as they come (paho itself has no in-flight limit: the window
is ours and counts records only).

A PUBACK is not the end of the road (a broker crash loses what it acknowledged):
the retained status carries a watermark (last seq, first seq still archived, counts
per day) and ``cmd/resend`` republishes a seq range from the archive, whatever its
ack state, so the district receiver can close every gap (docs/records.md, "Delivery
contract"). A record the broker keeps refusing (the connection drops each time it
is in flight, alone) is set aside after ``refuse_strikes`` tries, reported in the
status and the state, and the rest goes on.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import ssl
import threading
import time
from collections import deque
from typing import Any, Callable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from firmware_app.broker_failures import (BrokerFailure, connack_failure, connect_failure, drop_failure,
                                          explain_connect_error)
from firmware_app.catalogue import both, en, zh
from firmware_app.model import RECORD_KINDS, Command, CommandResult
from firmware_app.store import Store, StoreError
from firmware_app.uplink_commands import MAX_COMMAND_BYTES, MAX_COMMAND_DEPTH, json_depth, validate_command
from firmware_app.uplink_connection import Connection
from firmware_app.uplink_resend import RESEND_MAX, RESEND_QUEUE, Resends
from firmware_app.uplink_set_aside import SetAside, load_set_aside
from firmware_app.uplink_settings import UplinkSettings
from firmware_app.uplink_status import status_body

log = logging.getLogger(__name__)

__all__ = ["ACK_BATCH", "ACK_DELAY_S", "MAX_COMMAND_BYTES", "MAX_COMMAND_DEPTH", "RESEND_MAX", "RESEND_QUEUE",
           "BrokerFailure", "Connection", "Uplink", "UplinkSettings", "explain_connect_error", "json_depth",
           "validate_command"]

# Which commands the district may send (cmd/<name>) and their arguments: the one command table,
# firmware_app/commands.py (its "mqtt" source), checked in firmware_app/uplink_commands.py.
ACK_BATCH = 256  # PUBACKs written to the store in one go ...
ACK_DELAY_S = 0.1  # ... or after this long
_Conn = Connection  # the name the tests know


class Uplink(SetAside, Resends):
    def __init__(self, store: Store, settings: UplinkSettings, on_command: Callable[[Command], None]):
        self.store = store
        self.settings = settings
        self.on_command = on_command
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._control: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self._status: dict[str, Any] = {}
        self._status_dirty = True
        self._status_sent_at = 0.0
        self._status_backlog = 0  # backlog in the last status published: a drain's end republishes it
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._acked: list[str] = []  # PUBACKed, not yet written to the store
        self._acked_since = 0.0
        self._ack_error = ""
        self._failures = 0
        self._next_attempt = 0.0
        self._url_index = 0
        self._resends: deque[dict] = deque()  # cmd/resend jobs, oldest first
        self._tokens = settings.resend_rate
        self._tokens_at = time.monotonic()
        self._probe: int | None = None  # seq sent alone: it was in flight when a connection dropped
        self._strikes: dict[int, int] = {}  # seq -> drops while it was alone in flight
        self._set_aside = load_set_aside(store)
        self._state_lock = threading.Lock()
        self._state: dict[str, Any] = {
            "connected": False,
            "commands": False,  # the broker granted our subscription to district commands
            "url": settings.url,
            "error": "",
            "error_en": "",
            "error_raw": "",  # the raw reason behind error/error_en, for the technician
            "since": None,
            "sent": 0,
            "acked": 0,
            "last_ack_at": None,
            "inflight": 0,
            "set_aside": sorted(self._set_aside),
        }

    # ---------------------------------------------------------------- public

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish availability offline, write pending acks, close."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def wake(self) -> None:
        """New records were appended: send them now."""
        self._wake.set()

    def respond(self, result: CommandResult) -> None:
        body = {"txn": result.txn, "ok": result.ok, "message": result.message, "data": result.data,
                "device_id": self.settings.device_id, "at": time.time()}
        self._control.put((f"cmd/{result.name}/response", json.dumps(body, ensure_ascii=False).encode(), False))
        self._wake.set()

    def set_status(self, status: dict) -> None:
        """Retained status (devices, ...); backlog and versions are added by the uplink."""
        self._status = dict(status)
        self._status_dirty = True
        self._wake.set()

    def state(self) -> dict:
        with self._state_lock:
            return dict(self._state)

    # ---------------------------------------------------------------- thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                if not self.settings.urls:
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                conn = self._conn
                if conn is None:
                    delay = self._next_attempt - time.monotonic()
                    if delay > 0:
                        self._wake.wait(min(delay, 1.0))
                        self._wake.clear()
                        continue
                    self._connect()
                    continue
                try:
                    self._step(conn)
                except Exception as exc:  # noqa: BLE001 - e.g. a store read error: report, reconnect later
                    log.exception("uplink: unexpected error")
                    self._conn = None
                    conn.client.disconnect()
                    self._failed(BrokerFailure("broker.uplink_error", str(exc)))
        finally:
            self._shutdown()

    def _step(self, conn: Connection) -> None:
        rc = conn.client.loop(timeout=0.01 if conn.inflight else 0.05)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._conn is conn:
            self._lost(conn, rc)
            return
        if conn.up:
            if self._failures and time.monotonic() - conn.up_at >= self.settings.stable_after_s:
                self._failures = 0  # stayed up: the next drop starts the backoff from the bottom
            self._send_control(conn)
            self._fill_window(conn)
            self._fill_resend(conn)
        self._flush_acks(idle=not conn.inflight)

    def _connect(self) -> None:
        s = self.settings
        urls = s.urls
        url = urls[self._url_index % len(urls)]
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        host, port = parts.hostname or "localhost", parts.port or (8883 if tls else 1883)
        where = f"{parts.scheme}://{host}:{port}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.device_id, clean_session=False,
                             protocol=mqtt.MQTTv311)
        conn = Connection(client, tls=tls, url=url)
        # no paho limit (it would scan every message in flight on each PUBACK): records are
        # held to our window, and responses/status are never stuck behind them
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.will_set(s.root + "availability", b"offline", qos=1, retain=True)
        if s.username:
            client.username_pw_set(s.username, s.password or None)
        client.on_connect = lambda c, u, f, reason, p: self._on_connect(conn, reason)
        client.on_publish = lambda c, u, mid, reason, p: self._on_publish(conn, mid)
        client.on_message = lambda c, u, msg: self._on_message(msg)
        client.on_subscribe = lambda c, u, mid, reasons, p: self._on_subscribe(reasons)
        client.enable_logger(conn.paho_log.logger)
        try:
            if tls:
                client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None,
                               keyfile=s.key_file or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            client.connect(host, port, keepalive=s.keepalive)
        except Exception as exc:  # noqa: BLE001 - every failure is reported and retried
            self._failed(connect_failure(exc, where))
            return
        self._conn = conn

    def _on_connect(self, conn: Connection, reason) -> None:
        if reason.is_failure:
            self._failed(connack_failure(reason))
            conn.client.disconnect()
            self._conn = None
            return
        conn.up = True
        conn.up_at = time.monotonic()  # the backoff resets once it has stayed up (stable_after_s)
        root = self.settings.root
        conn.client.subscribe(root + "cmd/+", qos=1)
        conn.client.publish(root + "availability", b"online", qos=1, retain=True)
        self._status_dirty = True
        self._set_state(connected=True, error="", error_en="", error_raw="", since=time.time(), next_attempt_s=None,
                        url=conn.url)
        log.info("uplink connected to %s", conn.url)

    def _on_subscribe(self, reasons) -> None:
        granted = bool(reasons) and not any(r.is_failure for r in reasons)
        self._set_state(commands=granted)
        if not granted:  # Mosquitto grants and filters; other brokers refuse here
            log.error("uplink: the broker refused the subscription to %scmd/+: district commands will not "
                      "arrive (check the broker ACL for this station)", self.settings.root)

    def _lost(self, conn: Connection, rc) -> None:
        """The connection dropped; anything in flight stays in the outbox and is sent again."""
        self._conn = None
        try:
            conn.client.disconnect()
        except Exception:  # noqa: BLE001 - the socket is already gone
            pass
        detail = conn.paho_log.first or mqtt.error_string(rc)
        self._note_drop(conn)
        self._failed(drop_failure(detail, was_up=conn.up, tls=conn.tls))

    def _failed(self, failure: BrokerFailure) -> None:
        """The link is down: the words for the screen and `status` (error, error_en), the raw
        reason for the technician (error_raw); the next attempt after a jittered backoff."""
        self._failures += 1
        urls = self.settings.urls
        if len(urls) > 1:
            self._url_index += 1  # the next node; the backoff grows per round of the list
        rounds = (self._failures - 1) // max(1, len(urls))
        base = min(self.settings.backoff_max_s, self.settings.backoff_min_s * 2 ** min(rounds, 16))
        delay = random.uniform(base / 2, base)  # jitter: 20,000 tables must not reconnect in step
        self._next_attempt = time.monotonic() + delay
        message, message_en = failure.zh, failure.en
        first = (self._state["connected"] or self._state["error_en"] != message_en
                 or self._state.get("error_raw") != failure.raw)
        self._set_state(connected=False, commands=False, error=message, error_en=message_en,
                        error_raw=failure.raw, since=time.time(), next_attempt_s=round(delay, 2))
        if first:
            log.warning("uplink: %s (retry in %.1f s)", failure.technician()[1], delay)

    def _on_publish(self, conn: Connection, mid: int) -> None:
        entry = conn.inflight.pop(mid, None)
        if entry is not None:
            record_id, seq = entry[0], entry[1]
            if seq == self._probe:
                self._probe = None
                self._strikes.pop(seq, None)
            if not self._acked:
                self._acked_since = time.monotonic()
            self._acked.append(record_id)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        """Every command is answered and acknowledged: nothing raised here may reach paho (it would
        skip the PUBACK, and the broker would redeliver the message on every reconnect)."""
        name, txn = "unknown", None
        try:
            root = self.settings.root
            topic = msg.topic if isinstance(msg.topic, str) else ""
            name = topic[len(root + "cmd/"):] if topic.startswith(root + "cmd/") else ""
            command, txn, (err, err_en) = validate_command(name, msg.payload)
            if command is not None and getattr(msg, "retain", False):  # replayed at every reconnect
                command, (err, err_en) = None, both("uplink.cmd_retained")
            if command is None:
                self._refuse(name, txn, err, err_en)
                return
            if command.name == "resend":
                self._resend_request(command)
                return
            self.on_command(command)
        except Exception as exc:  # noqa: BLE001 - a handler bug (or a RecursionError) must not wedge the uplink
            log.exception("uplink: command handler failed for %r", name)
            try:
                self._refuse(name, txn, *both("uplink.cmd_failed", error=type(exc).__name__))
            except Exception:  # noqa: BLE001
                log.exception("uplink: could not answer command %r", name)

    def _refuse(self, name: str, txn: str | None, err: str, err_en: str) -> None:
        body = {"txn": txn, "ok": False, "message": err, "message_en": err_en,
                "device_id": self.settings.device_id, "at": time.time()}
        self._control.put((f"cmd/{name or 'unknown'}/response", json.dumps(body, ensure_ascii=False).encode(), False))
        self._wake.set()
        log.warning("uplink: refused command %r: %s", name, err_en)

    def _send_control(self, conn: Connection) -> None:
        root = self.settings.root
        while True:
            try:
                leaf, payload, retain = self._control.get_nowait()
            except queue.Empty:
                break
            conn.client.publish(root + leaf, payload, qos=1, retain=retain)
        now = time.monotonic()
        if self._status_dirty or now - self._status_sent_at > self.settings.status_every_s:
            stats = self.store.stats()
            body = status_body(self.settings, self._status, stats, self._set_aside)
            conn.client.publish(root + "status", json.dumps(body, ensure_ascii=False).encode(), qos=1, retain=True)
            self._status_backlog = max(0, stats["backlog"] + stats["backlog_events"] - len(self._set_aside))
            self._status_dirty = False
            self._status_sent_at = now

    def _fill_window(self, conn: Connection) -> None:
        """Publish what was read ahead, then read the next records while the broker works."""
        window = self.settings.window if self._probe is None else 1  # a suspect goes alone
        exhausted = not conn.ahead and self._read_ahead(conn)
        room = window - len(conn.inflight)
        # every free slot at once, as raw paho does: waiting for a quarter window of PUBACKs
        # first left the link quiet, and no PUBACK came for 10+ ms ~40 times in a 10,000-record
        # drain (most likely the broker's small writes held by Nagle until our delayed TCP ACK)
        if conn.ahead and room > 0:
            root = self.settings.root
            publish, inflight, ahead = conn.client.publish, conn.inflight, conn.ahead
            while room > 0 and ahead:
                rec, payload = ahead.popleft()
                info = publish(root + RECORD_KINDS.get(rec.get("kind", ""), "records"), payload, qos=1)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    ahead.appendleft((rec, payload))  # next in line still, on this connection or the next
                    break  # connection gone: the loop notices
                inflight[info.mid] = (rec["record_id"], rec["seq"], None, time.monotonic())
                room -= 1
                self._state["sent"] += 1
            self._state["inflight"] = len(inflight)
        if not exhausted and len(conn.ahead) < window:
            self._read_ahead(conn)
        elif exhausted and self._status_backlog and not conn.inflight and not conn.ahead and not self._acked:
            self._status_dirty = True  # drained: the district should not wait for the newest seqs any more

    def _read_ahead(self, conn: Connection) -> bool:
        """Read the next records after the cursor; True if the outbox has no more for now."""
        want = self.settings.window - len(conn.ahead)
        fresh = conn.cursor == 0
        messages = self.store.outbox_messages(want, after_seq=conn.cursor)
        if fresh and self._probe is not None and (not messages or messages[0][0]["seq"] > self._probe):
            self._probe = None  # the suspect was acknowledged after all (an ack written late): nothing to probe
        if messages:
            conn.cursor = messages[-1][0]["seq"]
            conn.ahead += [m for m in messages if m[0]["seq"] not in self._set_aside] if self._set_aside else messages
        return len(messages) < want

    def _flush_acks(self, force: bool = False, idle: bool = False) -> None:
        if not self._acked:
            return
        # acks go to the store in batches (it fsyncs them once a second); a lost ack only means a resend.
        # Nothing left in flight (a drain's end, one live record): no more PUBACKs to batch with, write now.
        full = (len(self._acked) >= ACK_BATCH or idle) and not self._ack_error
        due = force or full or time.monotonic() - self._acked_since > ACK_DELAY_S
        if not due:
            return
        try:
            self.store.ack(self._acked)
        except StoreError as exc:  # not written: kept here and retried; at worst sent again
            if not self._ack_error:
                log.error("uplink: could not record acknowledgements: %s", exc.message_en)
            self._ack_error = exc.message_en
            self._acked_since = time.monotonic()  # retry after ACK_DELAY_S, not in a tight loop
            return
        if self._ack_error:
            log.info("uplink: acknowledgements recorded again")
            self._ack_error = ""
        now = time.time()
        with self._state_lock:
            self._state["acked"] += len(self._acked)
            self._state["last_ack_at"] = now
        self._acked = []

    def _set_state(self, **changes) -> None:
        with self._state_lock:
            self._state.update(changes)
            snapshot = dict(self._state)
        try:  # so `swabkiosk status` (another process) can show the broker state; no flush of its own:
            # it is information, and a flush here under the store lock made a registration wait for it
            self.store.set_meta("uplink", {**snapshot, "pid": os.getpid(), "updated_at": time.time()}, flush=False)
        except StoreError as exc:
            log.error("uplink: could not record state: %s", exc.message_en)

    def _shutdown(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            if conn.up:
                conn.client.publish(self.settings.root + "availability", b"offline", qos=1, retain=True)
                deadline = time.monotonic() + 2.0
                while conn.inflight and time.monotonic() < deadline:
                    if conn.client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        break
                conn.client.loop(timeout=0.05)
            conn.client.disconnect()
        self._flush_acks(force=True)
        self._set_state(connected=False, commands=False, error=zh("broker.stopped"), error_en=en("broker.stopped"),
                        error_raw="", since=time.time())


