"""The district receiver: subscribes to every station of the district, writes each record once,
and closes every gap by asking the station to resend from its archive.

* Records (``records``/``tubes``/``boxes``/``shifts``) come over a shared subscription
  (``$share/<group>/swab/v1/+/+/+/<leaf>``) so several receivers split the load (``share=""``
  for a broker without shared subscriptions). They are acknowledged to the broker (manual
  PUBACK) only once the database committed them.
* ``status`` (retained, the station's watermark), ``availability`` and ``cmd/resend/response``
  come over plain subscriptions: every receiver sees them. A broker that does not deliver
  retained messages to wildcard subscriptions (RabbitMQ 3.10) still delivers the status each
  station republishes on every connection and every minute.
* Every ``check_every_s`` the receiver reads each station's gaps (from the coverage runs, by
  index) and, for a gap open longer than ``grace_s``, publishes ``cmd/resend`` (at most
  RESEND_MAX seqs, one request per station in flight, ``max_requests_per_s`` in all), retried
  with a growing delay until the gap closes or the station answers that the seqs are gone.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from district.db import DistrictDB, parse_record

log = logging.getLogger("district")
RESEND_MAX = 10_000
LEAVES = ("records", "tubes", "boxes", "shifts", "alerts")  # every record kind's leaf (model.RECORD_KINDS)


@dataclass
class ReceiverSettings:
    broker: str  # mqtt[s]://[user[:password]@]host[:port]; several comma-separated, tried in turn
    db: str
    username: str = ""
    password: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    client_id: str = ""  # "" = the login (username, or the certificate's CN): our broker binds them anyway
    share: str = "swab-district"  # shared-subscription group; "" = plain subscriptions
    batch: int = 500
    batch_wait_s: float = 0.05
    check_every_s: float = 1.0
    grace_s: float = 3.0  # a gap younger than this is records still on their way
    retry_s: float = 5.0  # first retry of an unanswered / unfilled resend; doubles up to 60 s
    max_requests_per_s: float = 20.0
    keepalive: int = 30


def login_name(username: str, cert_file: str) -> str:
    """The receiver's client id: its login, as district.conf makes it (use_username_as_clientid),
    so its session is the same on a broker that does not bind them. Each receiver has a login of
    its own (district-receiver, district-receiver-2, ...): two on one login throw each other off."""
    if username:
        return username
    if cert_file:
        try:
            from cryptography import x509
            from cryptography.x509.oid import NameOID

            with open(cert_file, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if cn and isinstance(cn[0].value, str):
                return cn[0].value
        except (OSError, ValueError):
            pass  # paho reports the unreadable certificate when it loads it
    return "swab-district"


@dataclass
class _Ask:
    lo: int
    hi: int
    at: float
    tries: int = 1


@dataclass
class Receiver:
    settings: ReceiverSettings
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.inbox: queue.Queue = queue.Queue()
        self.connected = threading.Event()
        self._asks: dict[tuple[str, int], _Ask] = {}  # (device, gap start) -> the last request for it
        self._txns: dict[str, tuple[str, int]] = {}  # resend txn -> (device, gap start)
        self._gap_seen: dict[tuple[str, int], float] = {}
        self._txn = 0
        self._probe: list[str] | None = None  # stations to ask for their watermark after a (re)connect
        self._client: mqtt.Client | None = None
        self._node = 0  # index of the broker URL in use
        self.counts = {"messages": 0, "new": 0, "duplicates": 0, "invalid": 0, "resend_requests": 0}

    # ------------------------------------------------------------ mqtt
    def _urls(self) -> list:
        return [urlsplit(u.strip()) for u in self.settings.broker.split(",") if u.strip()]

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        urls = self._urls()
        first = urls[0]
        user = s.username or unquote(first.username or "")
        pw = s.password or unquote(first.password or "")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=s.client_id or login_name(user, s.cert_file),
                             clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        if user:
            client.username_pw_set(user, pw or None)
        if first.scheme == "mqtts":
            client.tls_set(ca_certs=s.ca_file or None, certfile=s.cert_file or None, keyfile=s.key_file or None,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.reconnect_delay_set(0.2, 5)
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda c, u, msg: self.inbox.put(msg)
        return client

    def _on_connect(self, client, userdata, flags, reason, props) -> None:
        if reason.is_failure:
            log.error("district: broker refused the login: %s", reason)
            return
        try:  # PUBACKs go one by one after each commit: Nagle + delayed ACK held them ~40 ms a batch
            sock = client.socket()
            if sock is not None and hasattr(sock, "setsockopt"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        share = self.settings.share
        subs = [(f"$share/{share}/swab/v1/+/+/+/{leaf}" if share else f"swab/v1/+/+/+/{leaf}", 1) for leaf in LEAVES]
        subs += [("swab/v1/+/+/+/status", 1), ("swab/v1/+/+/+/availability", 1),
                 ("swab/v1/+/+/+/cmd/resend/response", 1)]
        client.subscribe(subs)
        self._probe = None  # set by the main thread: every known station is asked for its watermark
        self.connected.set()
        log.info("district: connected, subscribed (%s)", "shared group " + share if share else "no sharing")

    def _on_disconnect(self, client, userdata, flags, reason, props) -> None:
        """Lost: paho reconnects by itself; with several nodes, to the next one in the list."""
        self.connected.clear()
        urls = self._urls()
        if len(urls) > 1:
            self._node = (self._node + 1) % len(urls)
            u = urls[self._node]
            try:
                client.host = u.hostname or "localhost"
                client.port = u.port or (8883 if u.scheme == "mqtts" else 1883)
            except (RuntimeError, ValueError):
                pass

    def _connect_loop(self) -> None:
        """Connect to the first node that answers (a list is tried in turn), then paho reconnects."""
        urls = self._urls()
        i = 0
        while not self.stop.is_set():
            u = urls[i % len(urls)]
            try:
                self._client.connect(u.hostname or "localhost", u.port or (8883 if u.scheme == "mqtts" else 1883),
                                     keepalive=self.settings.keepalive)
                self._node = i % len(urls)
                return
            except OSError as exc:
                log.warning("district: cannot reach %s:%s (%s); retrying", u.hostname, u.port, exc)
                i += 1
                self.stop.wait(min(5.0, 0.2 * 2 ** min(i, 5)))

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        db = DistrictDB(self.settings.db)
        self._client = self._make_client()
        self._connect_loop()
        self._client.loop_start()
        next_check = time.monotonic() + self.settings.check_every_s
        try:
            while not self.stop.is_set():
                batch = self._take(self.settings.batch, self.settings.batch_wait_s)
                while batch and not self.stop.is_set():
                    try:
                        self._handle(db, batch)
                        break
                    except Exception:  # noqa: BLE001 - the database is away: keep the batch (unacknowledged)
                        log.exception("district: could not write %d messages; retrying", len(batch))
                        db = self._reopen(db)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.settings.check_every_s
                    try:
                        self._reconcile(db)
                    except Exception:  # noqa: BLE001 - a failed check is tried again next time
                        log.exception("district: gap check failed")
                        db.rollback()
        finally:
            rest = self._take(10 ** 6, 0)
            if rest:
                try:
                    self._handle(db, rest)
                except Exception:  # noqa: BLE001 - unacknowledged: the broker delivers them again
                    log.exception("district: could not write the last %d messages", len(rest))
            self._client.loop_stop()
            self._client.disconnect()
            db.close()

    def _reopen(self, db: DistrictDB) -> DistrictDB:
        db.rollback()
        self.stop.wait(1.0)
        try:
            db.close()
        except Exception:  # noqa: BLE001
            pass
        while not self.stop.is_set():
            try:
                return DistrictDB(self.settings.db)
            except Exception as exc:  # noqa: BLE001
                log.error("district: database unreachable (%s); retrying", exc)
                self.stop.wait(2.0)
        return db

    def _take(self, n: int, wait: float) -> list:
        out = []
        try:
            out.append(self.inbox.get(timeout=wait) if wait else self.inbox.get_nowait())
            while len(out) < n:
                out.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        return out

    def _handle(self, db: DistrictDB, msgs: list) -> None:
        records, roots = [], {}
        for msg in msgs:
            self.counts["messages"] += 1
            parts = msg.topic.split("/")
            root = "/".join(parts[2:5])
            try:
                if len(parts) == 6 and parts[5] in LEAVES:
                    rec = parse_record(msg.topic, msg.payload)
                    if rec is None:
                        self.counts["invalid"] += 1
                        log.warning("district: not a record on %s (dropped)", msg.topic)
                    else:
                        records.append(rec)
                        roots[rec.device_id] = root
                elif len(parts) == 6 and parts[5] == "status":
                    status = json.loads(msg.payload)
                    if isinstance(status, dict) and isinstance(status.get("device_id"), str):
                        db.set_status(status["device_id"], root, status)
                elif len(parts) == 6 and parts[5] == "availability":
                    db.set_online(root, msg.payload == b"online")
                elif parts[5:] == ["cmd", "resend", "response"]:
                    self._on_resend_answer(db, msg.payload)
            except Exception:  # noqa: BLE001 - one bad message must not stop the receiver
                db.rollback()
                log.exception("district: could not handle a message on %s", msg.topic)
        if records:
            new = db.insert(records, roots)  # raises: nothing acknowledged, the broker delivers again
            self.counts["new"] += new
            self.counts["duplicates"] += len(records) - new
        for msg in msgs:  # PUBACK only now that the database holds them
            try:
                self._client.ack(msg.mid, msg.qos)
            except Exception:  # noqa: BLE001 - the connection dropped: the broker delivers again
                pass

    def _on_resend_answer(self, db: DistrictDB, payload: bytes) -> None:
        body = json.loads(payload)
        if not isinstance(body, dict) or not isinstance(body.get("device_id"), str):
            return
        dev, data = body["device_id"], body.get("data") if isinstance(body.get("data"), dict) else {}
        if body.get("ok") and data.get("not_in_archive"):
            db.add_unrecoverable(dev, data["not_in_archive"], "not in the station's archive (pruned or damaged)")
            log.error("district: %s no longer has seqs %s", dev, data["not_in_archive"])
        last, first = data.get("last_seq"), data.get("first_seq")
        if body.get("ok") and isinstance(last, int) and not isinstance(last, bool):
            db.raise_watermark(dev, last, first if isinstance(first, int) and not isinstance(first, bool) else None)
        if body.get("ok") and data.get("set_aside"):
            aside = [[q, q] for q in data["set_aside"] if isinstance(q, int) and not isinstance(q, bool)]
            db.add_unrecoverable(dev, aside, "set aside by the station: the broker refuses it")
            log.error("district: %s has set aside seqs %s (the broker refuses them)", dev, data["set_aside"])
        key = self._txns.pop(body.get("txn"), None) if isinstance(body.get("txn"), str) else None
        ask = self._asks.get(key) if key else None
        if ask and body.get("ok"):
            ask.at = time.monotonic()  # answered: records are on their way; check again after the retry delay

    # ------------------------------------------------------------ reconciliation
    def _reconcile(self, db: DistrictDB) -> None:
        if not self.connected.is_set():
            return
        now = time.monotonic()
        budget = max(1, int(self.settings.max_requests_per_s * self.settings.check_every_s))
        stations = db.stations()
        if self._probe is None:
            # Retained status may be gone (a broker crash) or never delivered to a wildcard (RabbitMQ):
            # after each connection ask every known station for the seq after what we hold; the answer
            # carries its watermark (last_seq), the gap logic does the rest.
            self._probe = [dev for dev, info in stations.items() if info["root"]]
        while self._probe and budget > 0:
            dev = self._probe.pop()
            info = stations.get(dev)
            if info and not info["open_gaps"]:
                top = info["last_seq"] or 0  # no open gap: everything up to last_seq is here
                self._ask(info["root"], top + 1, top + 1)
                budget -= 1
        open_now = set()
        for dev, info in stations.items():
            if not info["root"]:
                continue
            fresh = info["status_at"] and time.time() - info["status_at"] < 15.0
            for lo, hi in info["open_gaps"]:  # one request per station per check: the first gap not waiting
                if info["watermark"] and hi == info["last_seq"] and info["backlog"] and fresh:
                    hi -= info["backlog"]  # the newest records are still in the station's outbox: on their way
                    # (a drain's end republishes the status; an old one is not trusted to say so)
                    if hi < lo:
                        continue
                key = (dev, lo)
                open_now.add(key)
                first_seen = self._gap_seen.setdefault(key, now)
                if now - first_seen < self.settings.grace_s:
                    continue
                ask = self._asks.get(key)
                if ask and now - ask.at < min(60.0, self.settings.retry_s * 2 ** (ask.tries - 1)):
                    continue  # asked, not yet due again: a later gap may go meanwhile
                if budget <= 0:
                    break
                budget -= 1
                hi = min(hi, lo + RESEND_MAX - 1)
                txn = self._ask(info["root"], lo, hi)
                self._txns[txn] = key
                tries = ask.tries + 1 if ask else 1
                self._asks[key] = _Ask(lo, hi, now, tries)
                log.info("district: asked %s to resend %d-%d (try %d)", dev, lo, hi, tries)
                break
        for key in [k for k in self._gap_seen if k not in open_now]:
            del self._gap_seen[key]
        for key in [k for k in self._asks if k not in open_now]:
            del self._asks[key]
        if len(self._txns) > 10_000:  # answers that never came
            self._txns.clear()

    def _ask(self, root: str, lo: int, hi: int) -> str:
        self._txn += 1
        txn = f"rs.{int(time.time())}.{self._txn}"
        self._client.publish(f"swab/v1/{root}/cmd/resend",
                             json.dumps({"txn": txn, "args": {"from_seq": lo, "to_seq": hi}}), qos=1)
        self.counts["resend_requests"] += 1
        return txn

