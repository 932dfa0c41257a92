"""`swabkiosk doctor`: the technician's self-test, one line per check with the fix to try.

Each device is tried through its real driver shell (the same code the daemon runs):
the ID-card reader must answer a SAM status command, the scanner's port must open,
the printer must answer its status query with paper in, the camera must deliver
frames. Then the broker (TCP, TLS and the login), the store (disk space, damage,
backlog), the clock and the station file itself. Exit 1 when any check fails.

The district broker makes the login the client id, so a test login IS the station's: beside
a running kiosk (a writer holds the store's lock) doctor reports the kiosk's own connection
from its store, read-only, and logs in only when the kiosk is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from firmware_app.catalogue import Lang, both, en, text, zh
from firmware_app.model import DeviceStatus

DEFAULT_CONFIG = "/etc/swabkiosk/swabkiosk.toml"
DEVICE_WAIT_S = {"idcard": 3.0, "scanner": 2.0, "printer": 8.0, "camera": 6.0}
MIN_FREE_BYTES = 200 * 1024 * 1024  # below this the store refuses new people soon: fail
LOW_FREE_BYTES = 1024 * 1024 * 1024
BROKER_TIMEOUT_S = 8.0
FIXES = {name: f"doctor.fix_{name}" for name in ("idcard", "scanner", "printer", "camera")}  # catalogue keys


@dataclass
class Check:
    """One verdict: ``detail`` and ``fix`` in English, ``detail_zh`` and ``fix_zh`` in zh-CN (doctor.*)."""

    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""
    detail_zh: str = ""
    fix_zh: str = ""
    facts: dict[str, Any] = field(default_factory=dict)  # what the verdict rests on, for scripts (--json)


def _check(name: str, status: str, key: str, fix: str = "", /, facts: dict[str, Any] | None = None,
           **values: Any) -> Check:
    """A check whose verdict is catalogue ``key`` and whose fix is catalogue ``fix``, both with ``values``."""
    detail_zh, detail = both(key, **values)
    fix_zh, fix_en = both(fix, **values) if fix else ("", "")
    return Check(name, status, detail, fix_en, detail_zh, fix_zh, facts or {})


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
        return _check(name, "fail", "doctor.port_missing", FIXES[name], port=port)
    status, _ = _shell_status(lambda on_event: cls(settings, on_event), DEVICE_WAIT_S[name])
    if status is None:
        return _check(name, "fail", "doctor.port_no_answer", FIXES[name], port=port)
    if status.ok:
        if status.reason:
            return _check(name, "ok", "doctor.reason", reason=status.reason)
        return _check(name, "ok", "doctor.port_answers", port=port)
    if _in_use(status.reason):
        return _check(name, "warn", "doctor.port_in_use", "doctor.fix_stop_service", port=port)
    return _check(name, "fail", "doctor.reason", FIXES[name], reason=status.reason)


def check_printer(settings: Any) -> Check:
    from drivers.printer import Printer

    target = settings.get("target", "")
    try:
        status, _ = _shell_status(lambda on_event: Printer(settings, on_event), DEVICE_WAIT_S["printer"])
    except ValueError as exc:
        return _check("printer", "fail", "doctor.printer_bad_target", FIXES["printer"], target=repr(target), reason=exc)
    if status is None:
        return _check("printer", "fail", "doctor.printer_no_answer", FIXES["printer"], target=target)
    if status.ok:
        low_paper = "paper" in status.reason.lower()
        return _check("printer", "warn" if low_paper else "ok",
                      "doctor.printer_ready_note" if status.reason else "doctor.printer_ready",
                      "doctor.fix_paper_low" if low_paper else "", target=target, reason=status.reason)
    return _check("printer", "fail", "doctor.where_reason", FIXES["printer"], where=target, reason=status.reason)


def check_camera(settings: Any) -> Check:
    from drivers.camera import open_source

    source = settings.get("source", "picamera2")
    if source == "none":
        return _check("camera", "skip", "doctor.camera_off")
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
        return _check("camera", "fail", "doctor.camera_slow", FIXES["camera"], source=source,
                      seconds=f"{DEVICE_WAIT_S['camera']:.0f}")
    if "error" in result:
        return _check("camera", "fail", "doctor.where_reason", FIXES["camera"], where=source, reason=result["error"])
    frames = result["frames"]
    if not frames:
        return _check("camera", "fail", "doctor.camera_no_frames", FIXES["camera"], source=source)
    h, w = frames[0].shape[:2]
    key = "doctor.camera_ok_rate" if source == "picamera2" else "doctor.camera_ok"  # a directory reads at disk speed
    return _check("camera", "ok", key, source=source, n=len(frames), w=w, h=h, fps=f"{result.get('fps', 0):.0f}")


# ------------------------------------------------------------------ broker


def check_broker(cfg: Any, data_dir: str | None = None) -> Check:
    """The broker. With ``data_dir``: a running kiosk's own connection, read from its store (no
    login: it would throw the kiosk off the broker), or a stopped kiosk's test login. Without:
    the test login."""
    from firmware_app.compose import uplink_settings

    settings = uplink_settings(cfg)
    if not settings.url:
        return _check("broker", "skip", "doctor.broker_off")
    if data_dir is None:
        return login_check(settings)
    from firmware_app.store_files import writer_running

    try:
        running = writer_running(data_dir)
    except OSError as exc:  # the lock file cannot be opened (not root?): do not risk a login
        return _check("broker", "warn", "doctor.kiosk_unknown", "doctor.fix_as_root", where=data_dir,
                      reason=exc.strerror or exc, facts={"kiosk": "unknown"})
    if running:
        return running_kiosk_broker(data_dir)
    check = login_check(settings)  # said as the stopped kiosk's test login
    check.detail_zh, check.detail = (zh("doctor.kiosk_stopped", verdict=check.detail_zh),
                                     en("doctor.kiosk_stopped", verdict=check.detail))
    check.facts = {"kiosk": "stopped"}
    return check


def running_kiosk_broker(data_dir: str) -> Check:
    """The running kiosk's broker state as its uplink recorded it (store meta), read-only."""
    from firmware_app.store import Store, StoreError
    from firmware_app.store_cli_base import broker_state, when

    try:
        with Store(data_dir, read_only=True) as store:
            state, stats = broker_state(store), store.stats()
    except StoreError as exc:
        return _check("broker", "warn", "doctor.kiosk_unread", "doctor.fix_rerun", reason=exc.message_en,
                      facts={"kiosk": "running"})
    waiting = stats.get("backlog", 0) + stats.get("backlog_events", 0)
    url = ",".join(state["url"]) if isinstance(state["url"], list) else state["url"]  # a list: a cluster's nodes
    facts = {"kiosk": "running", "waiting": waiting, **state, "url": url}
    if not state["daemon_running"]:  # the lock is held, but this run's uplink has not written its state yet
        return _check("broker", "warn", "doctor.kiosk_not_reported", "doctor.fix_rerun", facts=facts)
    values = {"where": url, "since": when(state["since"]), "waiting": waiting}
    if state["connected"]:
        return _check("broker", "ok", "doctor.kiosk_connected", facts=facts, **values)
    raw = state["error_raw"]
    words_zh = zh("broker.with_raw", words=state["error"], raw=raw) if raw else state["error"]
    words_en = en("broker.with_raw", words=state["error_en"], raw=raw) if raw else state["error_en"]
    fix_zh, fix_en = both("doctor.fix_broker")
    return Check("broker", "fail", en("doctor.kiosk_disconnected", error=words_en, **values), fix_en,
                 zh("doctor.kiosk_disconnected", error=words_zh, **values), fix_zh, facts)


def login_check(settings: Any) -> Check:
    """One login as the station (a stopped kiosk's): TCP, TLS, the credentials."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from urllib.parse import urlsplit

    from firmware_app.uplink import explain_connect_error

    parts = urlsplit(settings.urls[0])  # the first node of a list
    tls = parts.scheme == "mqtts"
    host, port = parts.hostname or "localhost", parts.port or (8883 if tls else 1883)
    where = f"{parts.scheme}://{host}:{port}"
    fix = "doctor.fix_broker"
    # The district broker makes the login the client id (config/mosquitto/district.conf), so this
    # IS the station's session: keep it (clean_session=False) and acknowledge nothing (manual_ack),
    # so commands queued for a stopped kiosk stay queued for it. Never beside a running kiosk
    # (check_broker): it would be dropped once.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{settings.device_id}-doctor", clean_session=False,
                         manual_ack=True)
    answer: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        answer["reason"] = reason
        done.set()

    def on_disconnect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:  # e.g. a refused certificate
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
        words_zh, words_en = explain_connect_error(exc, where)
        return Check("broker", "fail", words_en, both(fix)[1], words_zh, both(fix)[0])
    client.loop_start()
    try:
        if not done.wait(BROKER_TIMEOUT_S):
            return _check("broker", "fail", "doctor.broker_slow", fix, where=where, seconds=f"{BROKER_TIMEOUT_S:.0f}")
    finally:
        client.disconnect()
        client.loop_stop()
    if "reason" not in answer:
        return _check("broker", "fail", "doctor.broker_closed", fix, where=where, reason=answer["lost"])
    reason = answer["reason"]
    if reason.is_failure:
        return _check("broker", "fail", "doctor.broker_refused", "doctor.fix_login", where=where, reason=reason)
    return _check("broker", "ok", "doctor.broker_ok_tls" if tls else "doctor.broker_ok", where=where)


# ------------------------------------------------------------------ store, clock


def check_store(data_dir: str) -> list[Check]:
    checks: list[Check] = []
    probe_dir = data_dir if os.path.isdir(data_dir) else os.path.dirname(data_dir.rstrip("/")) or "/"
    try:
        free = shutil.disk_usage(probe_dir).free
    except OSError as exc:
        checks.append(_check("disk", "fail", "doctor.where_reason", "doctor.fix_mounted", where=probe_dir,
                             reason=exc.strerror))
        free = None
    if free is not None:
        mb = free // (1024 * 1024)
        if free < MIN_FREE_BYTES:
            checks.append(_check("disk", "fail", "doctor.disk_free", "doctor.fix_disk_full", mb=mb, where=probe_dir))
        elif free < LOW_FREE_BYTES:
            checks.append(_check("disk", "warn", "doctor.disk_low", "doctor.fix_disk_low", mb=mb, where=probe_dir))
        else:
            checks.append(_check("disk", "ok", "doctor.disk_free", mb=mb, where=probe_dir))
    if not any(os.path.exists(os.path.join(data_dir, n)) for n in ("kiosk.db", "segments")):
        checks.append(_check("store", "ok", "doctor.store_empty", where=data_dir))
        return checks
    from firmware_app.store_schema import StoreError, StoreNotReady
    from firmware_app.store import Store

    try:
        with Store(data_dir, read_only=True) as store:
            stats = store.stats()
    except StoreNotReady as exc:  # being made, or empty: not damage, nothing to repair
        fix_zh, fix_en = both("doctor.fix_store_not_ready")
        return checks + [Check("store", "warn", exc.message_en, fix_en, exc.message, fix_zh)]
    except StoreError as exc:
        fix_zh, fix_en = both("doctor.fix_repair")
        return checks + [Check("store", "fail", exc.message_en, fix_en, exc.message, fix_zh)]
    waiting = stats.get("backlog", 0) + stats.get("backlog_events", 0)
    parts = [both("doctor.store_counts", written=stats.get("last_seq", 0), waiting=waiting)]
    parts += [both("doctor.store_lost", what=r["what"], kept=r["kept"], lost=r["lost"], moved=r["moved_to"])
              for r in stats.get("reports", []) if r.get("lost")]
    oldest = both("doctor.store_oldest", hours=f"{stats['oldest_unsent_age_s'] / 3600:.1f}") \
        if stats.get("oldest_unsent_age_s") else None
    if stats.get("damage"):
        parts.append(both("doctor.store_damage", damage=stats["damage"]))

    def joined(lang: int) -> str:  # "a; b; c (oldest 2.0 h)": the parts, then the age
        return "; ".join(p[lang] for p in parts) + (" " + oldest[lang] if oldest else "")

    if stats.get("damage"):
        fix_zh, fix_en = both("doctor.fix_repair")
        return checks + [Check("store", "fail", joined(1), fix_en, joined(0), fix_zh)]
    return checks + [Check("store", "ok", joined(1), "", joined(0))]


def check_volunteers(cfg: Any, data_dir: str) -> Check:
    """The provisioned certified-volunteer list, read as the kiosk reads it (nothing is moved)."""
    from firmware_app import pushed, volunteers

    path = str(cfg.volunteers.get("list_file", ""))
    has_push = os.path.exists(pushed.path(data_dir, pushed.VOLUNTEERS))
    try:
        people = volunteers.load(path) if path else {}
    except volunteers.VolunteerListError as exc:
        fix_zh, fix_en = both("doctor.fix_volunteers")
        return Check("volunteers", "warn" if has_push else "fail",
                     en("doctor.volunteers_bad", path=path, reason=exc.reason_en), fix_en,
                     zh("doctor.volunteers_bad", path=path, reason=exc.reason), fix_zh)
    except OSError as exc:
        return _check("volunteers", "warn" if has_push else "fail", "doctor.volunteers_bad", "doctor.fix_volunteers",
                      path=path, reason=exc.strerror or str(exc))
    if not people and not has_push:
        return _check("volunteers", "fail", "doctor.volunteers_none", "doctor.fix_volunteers", path=path)
    return Check("volunteers", "ok",
                 en("doctor.volunteers_ok", path=path, n=len(people), pushed=en("doctor.volunteers_pushed") if has_push else ""),
                 "", zh("doctor.volunteers_ok", path=path, n=len(people), pushed=zh("doctor.volunteers_pushed") if has_push else ""))


def check_clock() -> Check:
    from firmware_app import clock

    synced, how = clock.sync_state()
    if synced is None:
        return _check("clock", "warn", "doctor.clock_unknown", "doctor.fix_ntp_enable", how=how)
    if not synced:
        return _check("clock", "fail", "doctor.clock_unsynced", "doctor.fix_ntp_check", how=how)
    return _check("clock", "ok", "doctor.clock_ok", how=how)


# ------------------------------------------------------------------ all


def run_checks(config_path: str, data_dir: str | None = None) -> list[Check]:
    from firmware_app import config

    checks: list[Check] = []
    cfg: config.Config | None = None
    try:
        loaded = config.load(config_path)
    except config.ConfigError as exc:
        def listed(lang: Lang) -> str:  # the first three problems, and how many more
            first = "; ".join(p.text(lang) for p in exc.problems[:3])
            more = len(exc.problems) - 3
            return text("doctor.config_bad", lang, path=config_path, n=len(exc.problems), first=first) + \
                (" " + text("doctor.config_more", lang, n=more) if more > 0 else "")

        fix_zh, fix_en = both("doctor.fix_config", path=config_path)
        checks.append(Check("config", "fail", listed("en"), fix_en, listed("zh-CN"), fix_zh))
    else:
        from firmware_app import pushed

        cfg, used = pushed.effective_config(loaded, config_path, data_dir or loaded.store.data_dir, apply=False)
        key = "doctor.config_ok" if used == config_path else "doctor.config_ok_pushed"
        checks.append(_check("config", "ok", key, path=config_path, used=used))
    if cfg is not None:
        for name in ("idcard", "scanner"):
            checks.append(check_serial(name, cfg.devices[name]))
        checks.append(check_printer(cfg.devices["printer"]))
        checks.append(check_camera(cfg.devices["camera"]))
        checks.append(check_broker(cfg, data_dir or cfg.store.data_dir))
        checks.append(check_volunteers(cfg, data_dir or cfg.store.data_dir))
    else:
        checks += [_check(n, "skip", "doctor.config_invalid") for n in ("idcard", "scanner", "printer", "camera",
                                                                         "broker")]
    checks += check_store(data_dir or (cfg.store.data_dir if cfg is not None else "/var/lib/swabkiosk"))
    checks.append(check_clock())
    return checks


MARK = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL", "skip": "--  "}


def main(argv: list[str]) -> int:
    def words(key: str, **values: Any) -> str:  # zh-CN / English on one line
        return " / ".join(both(key, **values))

    ap = argparse.ArgumentParser(prog="swabkiosk doctor", description=words("doctor.description"))
    ap.add_argument("--config", default=DEFAULT_CONFIG, help=words("doctor.help_config", default=DEFAULT_CONFIG))
    ap.add_argument("--data-dir", help=words("doctor.help_data_dir"))
    ap.add_argument("--json", action="store_true", help=words("doctor.help_json"))
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # drivers' own logs would garble the one-line-per-check output
    checks = run_checks(args.config, args.data_dir)
    failed = [c for c in checks if c.status == "fail"]
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, ensure_ascii=False))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:  # one line per check, zh-CN first; a failure or warning adds its fix below it
            verdict = " / ".join(dict.fromkeys(filter(None, (c.detail_zh, c.detail))))
            fix = " / ".join(dict.fromkeys(filter(None, (c.fix_zh, c.fix))))
            print(f"{MARK[c.status]}  {c.name:<{width}}  {verdict}" + (f"\n{'':{width + 8}}fix: {fix}" if fix and
                                                                       c.status in ("fail", "warn") else ""))
        print("\n" + (words("doctor.summary_failed", n=len(failed)) if failed else words("doctor.summary_ok")))
    return 1 if failed else 0
