"""Drain rate: the uplink emptying a backlog of N records, beside raw paho QoS 1.

    python -m bench.drain_bench [N]

Both runs publish the same N record payloads, QoS 1, every PUBACK awaited, to
the same local Mosquitto (started here, no persistence, anonymous loopback,
unless ``port`` is given). The uplink run also reads the records from the
store and writes every acknowledgement durably (ack journal, fsync).
``live_record_latency_s``: one record appended when half the backlog is left,
until its PUBACK is recorded (records keep seq order, so it waits its turn).
``*_cpu_s``: this process's CPU time (user + system, all threads) over each run:
steadier than wall time on a shared machine, and it shows what the GIL serialises.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

from bench.store_bench import make_record
from firmware_app.store import Store
from firmware_app.uplink import Uplink, UplinkSettings

MOSQUITTO = "/usr/sbin/mosquitto"


def _start_broker(directory: str) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = os.path.join(directory, "bench.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 200\n"
                f"max_queued_messages 0\nuser {os.environ.get('USER') or 'root'}\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.01)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def raw_paho(port: int, payloads: list[tuple[str, bytes]], inflight: int = 64,
             username: str = "", password: str = "", cpu: list | None = None) -> float:
    """Seconds to publish all payloads QoS 1 with raw paho and get every PUBACK
    (the process's CPU seconds over the same span appended to ``cpu`` if given)."""
    done = threading.Event()
    left = [len(payloads)]

    def on_publish(c, u, mid, rc, p):
        left[0] -= 1
        if left[0] == 0:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-raw", clean_session=True)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    if username:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0, c0 = time.perf_counter(), _cpu()
    for topic, payload in payloads:
        client.publish(topic, payload, qos=1)
    done.wait(600)
    elapsed = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(_cpu() - c0)
    client.loop_stop()
    client.disconnect()
    return elapsed


def measure(n: int = 10_000, window: int = 128, port: int | None = None, username: str = "",
            password: str = "") -> dict:
    """Drain n stored records through the Uplink; raw paho on the same messages, same broker.

    ``username`` (a station topic path district/site/table, as the district ACL wants)
    and ``password`` log both runs in to a broker started elsewhere on ``port``."""
    with tempfile.TemporaryDirectory() as d:
        proc = None
        if port is None:
            proc, port = _start_broker(d)
        try:
            district, site, table = username.split("/") if username else ("bench", "site", "t01")
            settings = UplinkSettings(url=f"mqtt://127.0.0.1:{port}", device_id="bench-uplink",
                                      district=district, site=site, table=table, window=window,
                                      username=username, password=password)
            records = [make_record(s) for s in range(1, n + 1)]
            payloads = [(settings.root + "records", json.dumps(r, ensure_ascii=False).encode()) for r in records]
            raw_cpu: list[float] = []
            raw_s = raw_paho(port, payloads, inflight=window, username=username, password=password, cpu=raw_cpu)

            store = Store(os.path.join(d, "data"))
            for i in range(0, n, 40):
                store.append(records[i:i + 40])
            uplink = Uplink(store, settings, on_command=lambda c: None)
            t0, c0 = time.perf_counter(), _cpu()
            uplink.start()
            deadline = time.monotonic() + 600
            live = live_at = live_s = None
            while time.monotonic() < deadline:
                left = store.stats()["backlog"]
                if live is not None and live_s is None and store.is_sent(live["record_id"]):
                    live_s = time.perf_counter() - live_at
                if not left:
                    break
                if live is None and left <= n // 2:
                    # a person registered while half the backlog is still queued
                    live = make_record(n + 1)
                    store.append([live])
                    uplink.wake()
                    live_at = time.perf_counter()
                time.sleep(0.005)
            uplink_s = time.perf_counter() - t0
            uplink_cpu = _cpu() - c0
            uplink.stop()
            store.close()
            return {
                "records": n,
                "payload_bytes": sum(len(p) for _, p in payloads) // n,
                "window": window,
                "uplink_s": round(uplink_s, 3),
                "uplink_msgs_per_s": round(n / uplink_s),
                "live_record_latency_s": round(live_s, 3) if live_s is not None else None,
                "uplink_cpu_s": round(uplink_cpu, 3),
                "raw_paho_s": round(raw_s, 3),
                "raw_paho_cpu_s": round(raw_cpu[0], 3),
                "raw_paho_msgs_per_s": round(n / raw_s),
            }
        finally:
            if proc:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000), indent=1))
