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
import re
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from firmware_app import __version__
from firmware_app import commands
from firmware_app.model import RECORD_KINDS, Command, CommandResult
from firmware_app.store import Store, StoreError

log = logging.getLogger(__name__)

# Which commands the district may send (cmd/<name>) and their arguments: the one command table,
# firmware_app/commands.py (its "mqtt" source). The station validates the meaning.
MAX_COMMAND_BYTES = 256 * 1024
MAX_COMMAND_DEPTH = 32  # JSON nesting, checked on the raw bytes before json.loads (no RecursionError)
RESEND_MAX = 10_000  # seqs per cmd/resend
RESEND_QUEUE = 4  # resends waiting at once; more are answered ok:false "busy"
ACK_BATCH = 256  # PUBACKs written to the store in one go ...
ACK_DELAY_S = 0.1  # ... or after this long
_TXN = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # fullmatch: "abc\n" is not a txn


@dataclass
class UplinkSettings:
    """What the uplink needs; the daemon builds it from the station config's [station]/[mqtt]."""

    # mqtt://host[:1883] or mqtts://host[:8883]; "" = offline, records wait in the store. Several
    # (a list, or comma-separated: the nodes of a clustered broker) are tried in turn.
    url: str | list[str]
    device_id: str  # MQTT client id (fixed: the broker keeps our session)
    district: str
    site: str
    table: str
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    keepalive: int = 30
    window: int = 128  # records in flight (paho has no limit of its own, so control messages always get through)
    backoff_min_s: float = 0.5
    backoff_max_s: float = 60.0
    status_every_s: float = 60.0
    stable_after_s: float = 10.0  # the backoff resets only once a connection has stayed up this long
    refuse_strikes: int = 3  # drops with a record alone in flight before it is set aside
    resend_rate: float = 2000.0  # records per second republished for cmd/resend (a token bucket)

    @property
    def root(self) -> str:
        return f"swab/v1/{self.district}/{self.site}/{self.table}/"

    @property
    def urls(self) -> list[str]:
        raw = self.url if isinstance(self.url, (list, tuple)) else str(self.url or "").split(",")
        return [u.strip() for u in raw if isinstance(u, str) and u.strip()]


def explain_connect_error(exc: BaseException, where: str) -> tuple[str, str]:
    """A connection failure in plain words (zh, en); paho's text is kept at the end."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"无法验证服务器证书（CA 文件不对、证书过期或主机名不符）：{where}（{text}）",
            f"Cannot verify the broker's certificate (wrong CA file, expired certificate or "
            f"host name mismatch): {where} ({text})",
        )
    if isinstance(exc, ssl.SSLError):
        low = text.lower()
        if any(w in low for w in ("certificate required", "unknown ca", "bad certificate", "certificate unknown")):
            return (
                f"服务器拒绝了本机的客户端证书：{where}（{text}）",
                f"The broker rejected this station's client certificate: {where} ({text})",
            )
        if "key values mismatch" in low or "pem" in low:
            return (f"客户端证书或私钥文件无效：{text}", f"Client certificate or key file is invalid: {text}")
        return (f"TLS 连接失败：{where}（{text}）", f"TLS connection failed: {where} ({text})")
    if isinstance(exc, FileNotFoundError):
        return (f"证书文件不存在：{exc.filename}", f"Certificate file not found: {exc.filename}")
    if isinstance(exc, ConnectionRefusedError):
        return (f"服务器拒绝连接（未运行或端口不对）：{where}", f"Broker refused the connection (not running or wrong port): {where}")
    if isinstance(exc, (TimeoutError, OSError)):
        return (f"无法连接服务器：{where}（{text}）", f"Cannot reach the broker: {where} ({text})")
    return (f"连接失败：{where}（{text}）", f"Connection failed: {where} ({text})")


def _explain_connack(reason: Any) -> tuple[str, str]:
    text = str(reason)
    if "not authori" in text.lower() or "password" in text.lower():
        return (f"服务器拒绝登录（用户名/密码或证书身份无权限）：{text}", f"Broker refused the login (username/password or certificate identity not allowed): {text}")
    return (f"服务器拒绝连接：{text}", f"Broker refused the connection: {text}")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = bytes.maketrans(b"", b"")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(payload: bytes, limit: int = MAX_COMMAND_DEPTH) -> int:
    """The nesting depth of a JSON text, from its bytes (strings skipped), without parsing it;
    stops counting past ``limit`` (returns limit + 1). Malformed text gets a depth too: json.loads
    refuses it afterwards."""
    depth = top = 0
    for b in _STRING.sub(b'""', payload).translate(_BRACKETS, _NOT_BRACKETS):
        if b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > top:
                top = depth
                if top > limit:
                    return top
        elif depth:
            depth -= 1
    return top


def validate_command(name: str, payload: bytes) -> tuple[Command | None, str | None, tuple[str, str]]:
    """Check a cmd/<name> message. Returns (command, txn, ("", "")) or (None, txn, (zh, en)).
    Size and nesting depth are bounded before anything is parsed."""
    txn = None
    if not isinstance(payload, (bytes, bytearray)):
        return None, None, ("命令格式无效", "command payload is not bytes")
    if len(payload) > MAX_COMMAND_BYTES:
        return None, None, ("命令过大", f"command larger than {MAX_COMMAND_BYTES} bytes")
    if json_depth(bytes(payload)) > MAX_COMMAND_DEPTH:
        return None, None, ("命令嵌套过深", f"command nested deeper than {MAX_COMMAND_DEPTH} levels")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None, ("命令不是有效的 JSON", "command payload is not valid JSON")
    if not isinstance(body, dict):
        return None, None, ("命令必须是 JSON 对象", "command payload must be a JSON object")
    raw_txn = body.get("txn")
    if isinstance(raw_txn, str) and _TXN.fullmatch(raw_txn):
        txn = raw_txn
    else:
        return None, None, ("缺少或无效的事务号 txn", "missing or invalid txn (1-64 of A-Z a-z 0-9 . _ : -)")
    args = body.get("args", {})
    try:
        spec = commands.check(name, args, "mqtt")
    except commands.CommandError as exc:
        return None, txn, (exc.message, exc.message_en)
    # integers come as JSON numbers over MQTT (a card's text digits are the scanner's form)
    args = {k: int(v) if spec.args_by_name[k].kind == "int" else v for k, v in args.items()}
    return Command(name=name, args=args, source="mqtt", txn=txn), txn, ("", "")


@dataclass
class _Conn:
    """One connection attempt's paho client and what is in flight on it."""

    client: mqtt.Client
    tls: bool = False
    up: bool = False  # CONNACK accepted
    up_at: float = 0.0  # monotonic time of the CONNACK
    url: str = ""
    inflight: dict[int, tuple] = field(default_factory=dict)  # mid -> (record_id, seq, resend job or None, sent at)
    ahead: deque = field(default_factory=deque)  # (record, payload) read from the outbox, not yet published
    cursor: int = 0  # seq of the last record read on this connection (a new one starts over)
    paho_log: _FirstError = field(default_factory=lambda: _FirstError())


class _FirstError(logging.Handler):
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


class Uplink:
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
        self._conn: _Conn | None = None
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
        self._set_aside: dict[int, dict] = {}
        try:
            for item in store.get_meta("uplink_set_aside") or []:
                if isinstance(item, dict) and isinstance(item.get("seq"), int):
                    self._set_aside[item["seq"]] = item
        except Exception:  # noqa: BLE001 - a damaged note only means retrying those records
            log.warning("uplink: could not read the set-aside records", exc_info=True)
        self._state_lock = threading.Lock()
        self._state: dict[str, Any] = {
            "connected": False,
            "commands": False,  # the broker granted our subscription to district commands
            "url": settings.url,
            "error": "",
            "error_en": "",
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
                    self._failed(f"上传程序出错：{exc}", f"Uplink error: {exc}")
        finally:
            self._shutdown()

    def _step(self, conn: _Conn) -> None:
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
        conn = _Conn(client, tls=tls, url=url)
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
            self._failed(*explain_connect_error(exc, where))
            return
        self._conn = conn

    def _on_connect(self, conn: _Conn, reason) -> None:
        if reason.is_failure:
            self._failed(*_explain_connack(reason))
            conn.client.disconnect()
            self._conn = None
            return
        conn.up = True
        conn.up_at = time.monotonic()  # the backoff resets once it has stayed up (stable_after_s)
        root = self.settings.root
        conn.client.subscribe(root + "cmd/+", qos=1)
        conn.client.publish(root + "availability", b"online", qos=1, retain=True)
        self._status_dirty = True
        self._set_state(connected=True, error="", error_en="", since=time.time(), next_attempt_s=None,
                        url=conn.url)
        log.info("uplink connected to %s", conn.url)

    def _on_subscribe(self, reasons) -> None:
        granted = bool(reasons) and not any(r.is_failure for r in reasons)
        self._set_state(commands=granted)
        if not granted:  # Mosquitto grants and filters; other brokers refuse here
            log.error("uplink: the broker refused the subscription to %scmd/+: district commands will not "
                      "arrive (check the broker ACL for this station)", self.settings.root)

    def _lost(self, conn: _Conn, rc) -> None:
        """The connection dropped; anything in flight stays in the outbox and is sent again."""
        self._conn = None
        try:
            conn.client.disconnect()
        except Exception:  # noqa: BLE001 - the socket is already gone
            pass
        detail = conn.paho_log.first or mqtt.error_string(rc)
        self._note_drop(conn)
        if conn.up:
            self._failed(f"与服务器的连接中断：{detail}", f"Connection to the broker lost: {detail}")
        elif conn.tls:
            # TLS 1.3 checks the client certificate after the handshake: the broker just hangs up
            self._failed(
                f"服务器在登录前关闭了 TLS 连接：很可能拒绝了本机的客户端证书（不是区级 CA 签发、已过期或被吊销）（{detail}）",
                f"The broker closed the TLS connection before login: it most likely rejected this station's "
                f"client certificate (not signed by the district CA, expired or revoked) ({detail})")
        else:
            self._failed(f"服务器在登录前断开：{detail}", f"The broker closed the connection before login: {detail}")

    def _note_drop(self, conn: _Conn) -> None:
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

    def _failed(self, message: str, message_en: str) -> None:
        self._failures += 1
        urls = self.settings.urls
        if len(urls) > 1:
            self._url_index += 1  # the next node; the backoff grows per round of the list
        rounds = (self._failures - 1) // max(1, len(urls))
        base = min(self.settings.backoff_max_s, self.settings.backoff_min_s * 2 ** min(rounds, 16))
        delay = random.uniform(base / 2, base)  # jitter: 20,000 tables must not reconnect in step
        self._next_attempt = time.monotonic() + delay
        first = self._state["connected"] or self._state["error_en"] != message_en
        self._set_state(connected=False, commands=False, error=message, error_en=message_en, since=time.time(),
                        next_attempt_s=round(delay, 2))
        if first:
            log.warning("uplink: %s (retry in %.1f s)", message_en, delay)

    def _on_publish(self, conn: _Conn, mid: int) -> None:
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
                command, (err, err_en) = None, ("拒绝保留的命令", "retained command refused: it would be replayed at every reconnect")
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
                self._refuse(name, txn, "命令处理失败", f"command handler failed: {type(exc).__name__}")
            except Exception:  # noqa: BLE001
                log.exception("uplink: could not answer command %r", name)

    def _refuse(self, name: str, txn: str | None, err: str, err_en: str) -> None:
        body = {"txn": txn, "ok": False, "message": err, "message_en": err_en,
                "device_id": self.settings.device_id, "at": time.time()}
        self._control.put((f"cmd/{name or 'unknown'}/response", json.dumps(body, ensure_ascii=False).encode(), False))
        self._wake.set()
        log.warning("uplink: refused command %r: %s", name, err_en)

    # ---------------------------------------------------------------- resend

    def _resend_request(self, command: Command) -> None:
        lo, hi = command.args["from_seq"], command.args["to_seq"]
        if lo < 1 or hi < lo:
            return self._refuse("resend", command.txn, "序号范围无效", "from_seq must be >= 1 and <= to_seq")
        if hi - lo + 1 > RESEND_MAX:
            return self._refuse("resend", command.txn, f"一次最多重发 {RESEND_MAX} 条",
                                f"at most {RESEND_MAX} seqs per resend (split the range)")
        if len(self._resends) >= RESEND_QUEUE:
            return self._refuse("resend", command.txn, "重发请求过多，请稍后再试",
                                f"{RESEND_QUEUE} resends already waiting: retry later")
        last = self.store.last_seq()
        self._resends.append({"txn": command.txn, "from": lo, "to": hi, "upto": min(hi, last), "next": lo,
                              "last_seq": last, "sent": 0, "missing": [], "set_aside": []})
        self._wake.set()

    def _fill_resend(self, conn: _Conn) -> None:
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
                _add_range(job["missing"], job["next"], seq - 1)
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
            _add_range(job["missing"], job["next"], job["upto"])  # pruned (or unreadable) to the end
            job["next"] = job["upto"] + 1
        if job["next"] > job["upto"]:
            self._resends.popleft()
            first = self.store.stats().get("first_seq")
            above = [[max(job["from"], job["last_seq"] + 1), job["to"]]] if job["to"] > job["last_seq"] else []
            self.respond(CommandResult("resend", job["txn"], True,
                                       f"已重发 {job['sent']} 条 / resent {job['sent']} records", {
                                           "from_seq": job["from"], "to_seq": job["to"], "sent": job["sent"],
                                           "not_in_archive": job["missing"], "never_stored": above,
                                           "set_aside": job["set_aside"], "last_seq": job["last_seq"],
                                           "first_seq": first}))

    def _send_control(self, conn: _Conn) -> None:
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
            body = {"device_id": self.settings.device_id, "at": time.time(), **self._status,
                    "backlog": stats["backlog"], "backlog_events": stats["backlog_events"],
                    # a consumer holding every seq from first_seq (1 on a new kiosk) to last_seq has everything
                    "watermark": {"last_seq": stats["last_seq"], "first_seq": stats["first_seq"],
                                  "days": stats.get("days", {})},
                    "set_aside": sorted(self._set_aside.values(), key=lambda x: x["seq"])[:20],
                    "set_aside_count": len(self._set_aside),
                    # repairs and imports: how many records were kept and how many could not be recovered
                    "store_reports": [{k: r.get(k) for k in ("at", "what", "kept", "lost", "moved_to")}
                                      for r in stats.get("reports", [])[-5:]],
                    "store_damage": stats.get("damage", [])[:5],
                    "versions": {"swabkiosk": __version__, "paho-mqtt": paho.mqtt.__version__,
                                 **self._status.get("versions", {})}}
            conn.client.publish(root + "status", json.dumps(body, ensure_ascii=False).encode(), qos=1, retain=True)
            self._status_backlog = max(0, stats["backlog"] + stats["backlog_events"] - len(self._set_aside))
            self._status_dirty = False
            self._status_sent_at = now

    def _fill_window(self, conn: _Conn) -> None:
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

    def _read_ahead(self, conn: _Conn) -> bool:
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
        self._set_state(connected=False, commands=False, error="已停止", error_en="stopped", since=time.time())


def _add_range(ranges: list[list[int]], lo: int, hi: int) -> None:
    """Append [lo, hi] to sorted ranges, merged with the last one when they touch."""
    if ranges and ranges[-1][1] + 1 >= lo:
        ranges[-1][1] = max(ranges[-1][1], hi)
    else:
        ranges.append([lo, hi])
