"""`swabkiosk doctor`: the technician's self-test, one line per check with the fix to try.

Each device is tried through its real driver shell (the same code the daemon runs):
the ID-card reader must answer a SAM status command, the scanner's port must open,
the printer must answer its status query with paper in, the camera must deliver
frames. Then the broker (TCP, TLS and the login), the store (disk space, damage,
backlog), the clock and the station file itself. Exit 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from firmware_app.model import DeviceStatus

DEFAULT_CONFIG = "/etc/swabkiosk/swabkiosk.toml"
DEVICE_WAIT_S = {"idcard": 3.0, "scanner": 2.0, "printer": 8.0, "camera": 6.0}
MIN_FREE_BYTES = 200 * 1024 * 1024  # below this the store refuses new people soon: fail
LOW_FREE_BYTES = 1024 * 1024 * 1024
BROKER_TIMEOUT_S = 8.0
FIXES = {
    "idcard": "check the reader's USB cable and /dev/swabkiosk-idcard (udev rule); baud rate in [devices.idcard]",
    "scanner": "check the scanner's USB cable and /dev/swabkiosk-scanner (udev rule); set the scanner to USB-CDC "
               "serial mode",
    "printer": "check power, cable and paper; [devices.printer] target; `swabkiosk probe printer TARGET --test-label`",
    "camera": "check the camera ribbon cable and `libcamera-hello`; [devices.camera] source",
}


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


# ------------------------------------------------------------------ devices


def _shell_status(make: Callable[[Callable], Any], wait_s: float) -> tuple[DeviceStatus | None, Any]:
    """Start a driver shell, wait for its first up/down report, stop it."""
    events: queue.Queue = queue.Queue()
    shell = make(events.put)
    shell.start()
    deadline = time.monotonic() + wait_s
    last: DeviceStatus | None = None
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = events.get(timeout=left)
            except queue.Empty:
                break
            if isinstance(event, DeviceStatus):
                last = event  # the shell's first word on itself is the answer
                break
    finally:
        shell.stop()
    return last, shell


def _in_use(reason: str) -> bool:
    low = reason.lower()
    return "lock" in low or "busy" in low or "in use" in low


def check_serial(name: str, settings: Any) -> Check:
    from drivers.idcard_reader import IdCardReader
    from drivers.scanner import Scanner

    cls = IdCardReader if name == "idcard" else Scanner
    port = settings.get("port", "")
    if not os.path.exists(port):
        return Check(name, "fail", f"{port} not found: the device is not plugged in or not recognised", FIXES[name])
    status, _ = _shell_status(lambda on_event: cls(settings, on_event), DEVICE_WAIT_S[name])
    if status is None:
        return Check(name, "fail", f"no answer on {port}", FIXES[name])
    if status.ok:
        return Check(name, "ok", status.reason or f"answers on {port}")
    if _in_use(status.reason):
        return Check(name, "warn", f"{port} is held by the running kiosk (its screen shows the device's state)",
                     "stop the service to test the device here: systemctl stop swabkiosk")
    return Check(name, "fail", status.reason, FIXES[name])


def check_printer(settings: Any) -> Check:
    from drivers.printer import Printer

    target = settings.get("target", "")
    try:
        status, _ = _shell_status(lambda on_event: Printer(settings, on_event), DEVICE_WAIT_S["printer"])
    except ValueError as exc:
        return Check("printer", "fail", f"target {target!r}: {exc}", FIXES["printer"])
    if status is None:
        return Check("printer", "fail", f"{target}: no answer", FIXES["printer"])
    if status.ok:
        low_paper = "paper" in status.reason.lower()
        return Check("printer", "warn" if low_paper else "ok",
                     f"{target}: ready, paper in" + (f" ({status.reason})" if status.reason else ""),
                     "put a new roll ready" if low_paper else "")
    return Check("printer", "fail", f"{target}: {status.reason}", FIXES["printer"])


def check_camera(settings: Any) -> Check:
    from drivers.camera import open_source

    source = settings.get("source", "picamera2")
    if source == "none":
        return Check("camera", "skip", "not configured ([devices.camera] source = \"none\")")
    result: dict[str, Any] = {}

    def grab() -> None:
        try:
            src = open_source(source, float(settings.get("fps", 10)), loop=True)
            try:
                t0 = time.monotonic()
                frames = [src.read() for _ in range(5)]
                result["fps"] = 5 / max(time.monotonic() - t0, 1e-6)
                result["frames"] = [f for f in frames if f is not None]
            finally:
                src.close()
        except Exception as exc:  # no camera, no libcamera, no frames
            result["error"] = str(exc) or type(exc).__name__

    t = threading.Thread(target=grab, daemon=True)
    t.start()
    t.join(DEVICE_WAIT_S["camera"])
    if t.is_alive():
        return Check("camera", "fail", f"{source}: no frame within {DEVICE_WAIT_S['camera']:.0f} s", FIXES["camera"])
    if "error" in result:
        return Check("camera", "fail", f"{source}: {result['error']}", FIXES["camera"])
    frames = result["frames"]
    if not frames:
        return Check("camera", "fail", f"{source}: delivers no frames", FIXES["camera"])
    h, w = frames[0].shape[:2]
    rate = f", {result['fps']:.0f} frames/s" if source == "picamera2" else ""  # a directory reads at disk speed
    return Check("camera", "ok", f"{source}: {len(frames)} frames {w}x{h}{rate}")


# ------------------------------------------------------------------ broker


def check_broker(cfg: Any) -> Check:
    from firmware_app.daemon import uplink_settings

    settings = uplink_settings(cfg)
    if not settings.url:
        return Check("broker", "skip", "no broker configured ([mqtt] url = \"\"): records wait in the store")
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from urllib.parse import urlsplit

    from firmware_app.uplink import explain_connect_error

    parts = urlsplit(settings.urls[0])  # the first node of a list
    tls = parts.scheme == "mqtts"
    host, port = parts.hostname or "localhost", parts.port or (8883 if tls else 1883)
    where = f"{parts.scheme}://{host}:{port}"
    fix = "check [mqtt] url, network and firewall; certificates (ca_file, cert_file, key_file) and password_file"
    # The district broker makes the login the client id (config/mosquitto/district.conf), so this
    # IS the station's session: keep it (clean_session=False) and acknowledge nothing (manual_ack),
    # so commands queued for a stopped kiosk stay queued for it. A running kiosk is dropped once.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{settings.device_id}-doctor", clean_session=False,
                         manual_ack=True)
    answer: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(c, u, flags, reason, props):
        answer["reason"] = reason
        done.set()

    def on_disconnect(c, u, flags, reason, props):  # e.g. the broker dropped a certificate it refused
        answer.setdefault("lost", reason)
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    if settings.username:
        client.username_pw_set(settings.username, settings.password or None)
    try:
        if tls:
            import ssl

            client.tls_set(ca_certs=settings.ca_file or None, certfile=settings.cert_file or None,
                           keyfile=settings.key_file or None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.connect(host, port, keepalive=10)
    except Exception as exc:
        return Check("broker", "fail", explain_connect_error(exc, where)[1], fix)
    client.loop_start()
    try:
        if not done.wait(BROKER_TIMEOUT_S):
            return Check("broker", "fail", f"{where}: no answer to the login within {BROKER_TIMEOUT_S:.0f} s", fix)
    finally:
        client.disconnect()
        client.loop_stop()
    if "reason" not in answer:
        return Check("broker", "fail", f"{where}: the broker closed the connection during the login "
                                       f"({answer['lost']}): certificate or credentials not accepted", fix)
    reason = answer["reason"]
    if reason.is_failure:
        return Check("broker", "fail", f"{where}: login refused ({reason})",
                     "check [mqtt] username and password_file (or the client certificate) with the district")
    return Check("broker", "ok", f"{where}: reachable, {'TLS verified, ' if tls else ''}login accepted")


# ------------------------------------------------------------------ store, clock


def check_store(data_dir: str) -> list[Check]:
    checks = []
    probe_dir = data_dir if os.path.isdir(data_dir) else os.path.dirname(data_dir.rstrip("/")) or "/"
    try:
        free = shutil.disk_usage(probe_dir).free
    except OSError as exc:
        checks.append(Check("disk", "fail", f"{probe_dir}: {exc.strerror}", "is the data partition mounted?"))
        free = None
    if free is not None:
        mb = free // (1024 * 1024)
        if free < MIN_FREE_BYTES:
            checks.append(Check("disk", "fail", f"{mb} MB free on {probe_dir}",
                                "free space: export and archive old days (swabkiosk export), or a bigger card"))
        elif free < LOW_FREE_BYTES:
            checks.append(Check("disk", "warn", f"only {mb} MB free on {probe_dir}", "plan a bigger card"))
        else:
            checks.append(Check("disk", "ok", f"{mb} MB free on {probe_dir}"))
    if not any(os.path.exists(os.path.join(data_dir, n)) for n in ("kiosk.db", "segments")):
        checks.append(Check("store", "ok", f"no records yet in {data_dir} (created at the first start)"))
        return checks
    from firmware_app.store_schema import StoreError
    from firmware_app.store import Store

    try:
        with Store(data_dir, read_only=True) as store:
            stats = store.stats()
    except StoreError as exc:
        return checks + [Check("store", "fail", exc.message_en,
                               "swabkiosk status --repair (damaged files are set aside, never deleted)")]
    waiting = stats.get("backlog", 0) + stats.get("backlog_events", 0)
    detail = f"{stats.get('last_seq', 0)} records written, {waiting} waiting for the broker"
    lost = [r for r in stats.get("reports", []) if r.get("lost")]
    if lost:
        detail += "; " + "; ".join(f"{r['what']}: {r['kept']} kept, {r['lost']} lost ({r['moved_to']})" for r in lost)
    if stats.get("oldest_unsent_age_s"):
        detail += f" (oldest {stats['oldest_unsent_age_s'] / 3600:.1f} h)"
    if stats.get("damage"):
        return checks + [Check("store", "fail", f"{detail}; damage: {stats['damage']}",
                               "swabkiosk status --repair (damaged files are set aside, never deleted)")]
    return checks + [Check("store", "ok", detail)]


def check_clock() -> Check:
    from firmware_app import clock

    synced, how = clock.sync_state()
    if synced is None:
        return Check("clock", "warn", f"unknown: {how}; records are marked clock_synced=false",
                     "enable systemd-timesyncd or chrony with a reachable NTP server")
    if not synced:
        return Check("clock", "fail", f"not synchronised ({how}); records are marked clock_synced=false",
                     "check the network and the NTP server (timedatectl timesync-status)")
    return Check("clock", "ok", f"synchronised ({how})")


# ------------------------------------------------------------------ all


def run_checks(config_path: str, data_dir: str | None = None) -> list[Check]:
    from firmware_app import config

    checks: list[Check] = []
    try:
        cfg = config.load(config_path)
    except config.ConfigError as exc:
        first = "; ".join(str(p) for p in exc.problems[:3])
        more = f" (+{len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
        checks.append(Check("config", "fail", f"{config_path}: {len(exc.problems)} problem(s): {first}{more}",
                            f"swabkiosk config check {config_path}"))
        cfg = None
    else:
        from firmware_app import pushed

        cfg, used = pushed.effective_config(cfg, config_path, data_dir or cfg.store.data_dir, apply=False)
        runs = "" if used == config_path else f"; the kiosk runs the district's pushed file {used} (valid)"
        checks.append(Check("config", "ok", f"{config_path}: valid{runs}"))
    if cfg is not None:
        for name in ("idcard", "scanner"):
            checks.append(check_serial(name, cfg.devices[name]))
        checks.append(check_printer(cfg.devices["printer"]))
        checks.append(check_camera(cfg.devices["camera"]))
        checks.append(check_broker(cfg))
    else:
        checks += [Check(n, "skip", "station file invalid") for n in ("idcard", "scanner", "printer", "camera",
                                                                       "broker")]
    checks += check_store(data_dir or (cfg.store.data_dir if cfg is not None else "/var/lib/swabkiosk"))
    checks.append(check_clock())
    return checks


MARK = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL", "skip": "--  "}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="swabkiosk doctor", description="Self-test: devices, broker, disk, clock, config.")
    ap.add_argument("--config", default=DEFAULT_CONFIG, help=f"station file (default {DEFAULT_CONFIG})")
    ap.add_argument("--data-dir", help="store to check (default: [store] data_dir)")
    ap.add_argument("--json", action="store_true", help="the checks as JSON")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # drivers' own logs would garble the one-line-per-check output
    checks = run_checks(args.config, args.data_dir)
    failed = [c for c in checks if c.status == "fail"]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, ensure_ascii=False))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{MARK[c.status]}  {c.name:<{width}}  {c.detail}" + (f"\n{'':{width + 8}}fix: {c.fix}" if c.fix and
                                                                        c.status in ("fail", "warn") else ""))
        print(f"\n{len(failed)} check(s) failed" if failed else "\nall checks passed")
    return 1 if failed else 0
