"""The shell around the station core: one loop thread carries out effects in order.

Device threads, the uplink and the screen only *post* events into a queue; the loop takes one
event at a time, asks the station for its effects and carries them out in this order:

1. every ``Persist`` of the step in ONE ``store.append`` transaction (durable), and in the same
   transaction the station's state rows the step changed and the printer's queue with its labels;
2. only then the label bytes, screen and voice. If the store refuses (disk full, read-only card, any
   I/O error) nothing of the step is shown as OK: the station is rebuilt from what IS stored (before
   the next step if even that fails) and the volunteer sees red with the reason.

Labels go to the printer shell's queue, kept in the store's meta ("pending_labels"): a slow, empty
or unplugged printer never blocks the loop, and a label not yet printed comes out when the printer
is back, also after a restart. A step that stores records and prints a label costs one durable
write: the queue rides in the records' ``append`` (``meta=``), so a record and its label are never
durable one without the other.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

from firmware_app import clock
from firmware_app.catalogue import both, en, zh
from firmware_app.station import state as table_state
from firmware_app.voice import Speaker
from firmware_app.store_schema import StoreCorrupt
from firmware_app.model import (NO_FACTS, CardRead, CodeScanned, Command, CommandResult, DeviceError, DeviceStatus,
                                Effect, Event, Now, Persist, PrintLabel, Say, Show)

log = logging.getLogger("swabkiosk.runtime")

TICK_S = 1.0  # the loop wakes at least this often, so its heartbeat stays fresh while idle
STATUS_EVERY_S = 30.0
PENDING_LABELS = "pending_labels"
REPORT_SHOWN_S = 86400.0  # a store repair or import is shown at start for a day
BACKLOG_EVERY_S = 1.0  # the screen's unsent count (ui.backlog_count) is read from the store at most this often


def describe(event: Event) -> str:
    """One log line per event, never with a full ID number or a photo."""
    if isinstance(event, CardRead):
        return f"ID card read: {event.card!r}"
    if isinstance(event, CodeScanned):
        kind = event.text.split(":", 1)[0] if ":" in event.text else "code"
        return f"code scanned by {event.source}: {kind}:… ({len(event.text)} chars)"
    if isinstance(event, Command):
        return f"command {event.name} from {event.source}" + (f" txn={event.txn}" if event.txn else "")
    if isinstance(event, DeviceStatus):
        return f"device {event.device} {'up' if event.ok else 'down'} {event.reason}".rstrip()
    if isinstance(event, DeviceError):
        return f"device {event.device} error: {event.reason}"
    return type(event).__name__


# a tube, box or record id: letters then 8+ digits (DG032611230007, DG-B251123001); read as
# its last four digits in Chinese digits, one by one (runtime.id_tail, runtime.digits):
# 14 characters read out help nobody at a table
class Runtime:
    def __init__(self, store: Any, make_station: Callable[[], Any], *, uplink: Any = None,
                 get_printer: Callable[[], Any] | None = None, ui: Any = None,
                 speaker: Speaker | None = None, version: str = "",
                 clock_fn: Callable[[], float] | None = None, unsent_minutes: tuple[int, int] = (15, 60)) -> None:
        self.store = store
        self.make_station = make_station
        self.uplink = uplink
        self.ui = ui
        self.speaker = speaker or Speaker(enabled=False)
        self.version = version
        self.clock_fn = clock_fn or time.time  # a simulated clock for `simulate --days`
        self.station: Any = None
        self.devices: dict[str, dict[str, Any]] = {}
        self.heartbeat = time.monotonic()
        self.store_errors = 0  # refused writes since start, reported in the MQTT status
        self.snapshot: dict[str, Any] = {}
        self.observers: list[Callable[[Event, list[Effect]], None]] = []
        # Commands the shell answers itself (they touch files, not the station's state).
        self.shell_commands: dict[str, Callable[[Command], list[Effect]]] = {}
        self._refusal: Show | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="station-loop", daemon=True)
        self._synced: bool | None = clock.kernel_synced()
        self._synced_at = time.monotonic()
        self._status_at = 0.0
        self._after_error = ""  # the last failure after a step, logged once
        self._backlog_value: tuple[int, float | None] = (0, None)
        self._backlog_at = -1e9
        self.unsent_minutes = unsent_minutes  # [ui] unsent_warn_minutes, unsent_alarm_minutes
        self._unsent_said = "ok"  # the unsent level last spoken: each level is spoken once
        self.has_printer = get_printer is not None
        self.get_printer = get_printer or (lambda: None)

    # ---------------------------------------------------------------- setup
    def start(self) -> None:
        self._rebuild_station()
        self._announce_repairs()
        self._publish_snapshot()
        self._thread.start()

    def _announce_repairs(self) -> None:
        """Damage is loud: a repair or import of the store in the last day is on the screen
        (until the next step) with what was kept and lost; all of them go in the status."""
        recent = [r for r in self.store_reports() if time.time() - float(r.get("at") or 0) < REPORT_SHOWN_S]
        if not recent:
            return
        kept = sum(int(r.get("kept") or 0) for r in recent)
        lost = sum(int(r.get("lost") or 0) for r in recent)
        moved = ", ".join(str(r.get("moved_to")) for r in recent if r.get("moved_to"))
        key = "runtime.repaired_lost" if lost else "runtime.repaired_ok"
        show = Show("error" if lost else "info", *both(key, kept=kept, lost=lost, moved=moved), {"store_reports": recent})
        log.warning("store: %s", show.message_en)
        self._show(show)
        self._refusal = show  # the big panel says it until the next step...
        # ... and the store's light in the footer (and the MQTT status's devices) for the day
        self.devices["store"] = {"ok": not lost, "reason": " / ".join(both("runtime.store_light", kept=kept, lost=lost,
                                                                           moved=moved))}

    def store_reports(self) -> list[dict]:
        try:
            return list(self.store.reports())
        except Exception:  # noqa: BLE001 - a store that cannot list them still works
            return []

    def _rebuild_station(self) -> None:
        """The station continues from the state rows in the store: at start, and after a
        refused write. Marks: after a repair the store's high-water marks are above anything
        a lost tail may have used, so no seq, tube or box id is handed out twice."""
        station = self.make_station()
        try:
            rows = self.store.meta_items(table_state.PREFIX, strict=True)
        except StoreCorrupt as exc:  # a damaged row: all of them are rebuilt from the records
            log.error("store: %s: the station's state is rebuilt from the records", exc.message_en)
            rows = {}
        marks = self.store.high_water()
        if table_state.TABLE not in rows and self.store.last_seq() > 0:
            # records but no rows: a store upgraded from the old layout, or rows lost to damage.
            # Rebuilt once from the records by the same reducers, then kept as rows.
            skipped = station.replay(self.store.iter_records(), marks, now=self.now())
            changes = station.changes()
            gone = {key: None for key in self.store.meta_keys(table_state.PREFIX) if key not in changes}
            self.store.append([], meta={**gone, **changes})  # a damaged row does not outlive its rebuild
            log.warning("station state rebuilt from %d stored records (%d did not fit and were skipped)",
                        self.store.last_seq(), skipped)
        else:
            station.restore(rows, marks, now=self.now())
        self.station = station

    def _rebuild_or_defer(self) -> Exception | None:  # _rebuild_station, never raising: None once rebuilt
        try:
            self._rebuild_station()
        except Exception as exc:  # noqa: BLE001 - the loop lives on (issue 13, finding 5)
            log.error("station state not re-read from the store (%s); retried before the next step", exc)
            self.station = None  # no step runs on what it had assumed
            return exc
        return None

    # ------------------------------------------------------- thread-safe API
    def post(self, event: Event) -> None:
        self._queue.put(event)

    def call(self, fn: Callable[[], Any], timeout: float | None = 10.0) -> Any:
        """Run fn on the loop thread (the station is not thread-safe) and return its result."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def job() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed back to the caller
                box["error"] = exc
            finally:
                done.set()

        self._queue.put(job)
        if not done.wait(timeout):
            raise TimeoutError("station loop did not answer")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Block until predicate(snapshot) holds after some step (for simulate and tests)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.snapshot), timeout)

    # ------------------------------------------------------------- the loop
    def _run(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            try:
                item = self._queue.get(timeout=TICK_S)
            except queue.Empty:
                self._after("idle tick", self._periodic)
                if self._stopping.is_set():
                    return
                continue
            self.heartbeat = time.monotonic()
            if item is None:  # stop sentinel: everything posted before it has been handled
                return
            if callable(item):
                item()
                continue
            try:
                effects = self._step(item)
            except Exception:  # one bad step must not stop the kiosk
                log.exception("step failed for %s", describe(item))
                self._rebuild_or_defer()
                failed = Show("error", *both("runtime.internal_error"))
                effects = [failed]
                self._show(failed)
            self._after(describe(item), self._publish_snapshot)
            for observer in self.observers:  # after the snapshot: observers see the state of this step
                self._after(describe(item), lambda: observer(item, effects))
            self._after(describe(item), self._periodic)  # also when busy: a queue that never empties still reports its status

    def _after(self, what: str, fn: Callable[[], Any]) -> None:
        """Screen and status work after a step: a failure there is logged (once per kind)
        and the loop goes on, since the step's records are already stored."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - registrations must go on
            kind = f"{type(exc).__name__}: {exc}"
            if kind != self._after_error:
                self._after_error = kind
                log.exception("after %s: screen/status update failed", what)

    def now(self) -> Now:
        if time.monotonic() - self._synced_at > 60:
            self._synced, self._synced_at = clock.kernel_synced(), time.monotonic()
        return Now(at=self.clock_fn(), synced=bool(self._synced))

    def _step(self, event: Event) -> list[Effect]:
        log.info("%s", describe(event))
        self._refusal = None
        if isinstance(event, DeviceStatus):
            changed = self.devices.get(event.device, {}).get("ok") != event.ok
            self.devices[event.device] = {"ok": event.ok, "reason": event.reason}
            if changed:
                self._status_at = 0.0  # publish the change with the next idle tick
        if self.station is None and (unread := self._rebuild_or_defer()) is not None:
            return self._refused(event, unread)
        shell = self.shell_commands.get(event.name) if isinstance(event, Command) else None
        effects = shell(event) if shell is not None and isinstance(event, Command) else self._handle(event)
        records = [e.record for e in effects if isinstance(e, Persist)]
        labels = [e for e in effects if isinstance(e, PrintLabel)] if records else []
        if records:
            try:
                refused = self._commit(records, labels)
            except Exception as exc:  # StoreFull, ReadOnly, any I/O error: nothing of this step is OK
                return self._refused(event, exc)
            if self.uplink is not None:
                self.uplink.wake()
            for ref, error in refused:
                self._label_error(ref, error)
        answered = False
        for effect in effects:
            if isinstance(effect, PrintLabel) and not records:
                self._print(effect)
            elif isinstance(effect, Show):
                self._show(effect)
            elif isinstance(effect, Say):
                self.speaker.say(effect.text)
            elif isinstance(effect, CommandResult):
                answered = True
                self._respond(effect)
        if isinstance(event, Command) and event.txn and not answered:
            shown = [e for e in effects if isinstance(e, Show)]
            self._respond(CommandResult(event.name, event.txn, not any(s.level == "error" for s in shown),
                                        shown[-1].message if shown else ""))
        return effects

    def _handle(self, event: Event) -> list[Effect]:
        """The station's effects for event, with the facts it needs read from the store first."""
        now = self.now()
        lookups = self.station.lookups(event, now)
        facts = self.store.facts(lookups) if lookups else NO_FACTS
        return self.station.handle(event, now, facts)

    def _refused(self, event: Event, exc: Exception) -> list[Effect]:
        self.store_errors += 1
        reason = str(exc) or type(exc).__name__
        # the store's own words (StoreFull, ReadOnly ...), or plain ones for a raw error: the raw
        # reason stays in the English text, the detail and the log for the technician
        zh_reason, en_reason = getattr(exc, "message", "") or zh("runtime.store_failed"), getattr(exc, "message_en", reason)
        log.error("store refused the records of this step (%s); nothing of it was shown as OK", reason)
        self._rebuild_or_defer()  # forget what the station assumed: the store is the truth
        show = Show("error", zh("runtime.not_saved", reason=zh_reason), en("runtime.not_saved", reason=en_reason),
                    {"store_error": en_reason, "raw": reason})
        self._show(show)
        self._refusal = show  # the screen stays red until the next step
        self.speaker.say(zh("runtime.say_not_saved"))
        if isinstance(event, Command) and event.txn:
            self._respond(CommandResult(event.name, event.txn, False, show.message,
                                        {"message_en": show.message_en, "reason": reason}))
        return [show]

    def _show(self, show: Show) -> None:
        log.log(logging.WARNING if show.level == "error" else logging.INFO, "screen [%s] %s | %s",
                show.level, show.message, show.message_en)
        if self.ui is not None:
            try:
                self.ui.notify(show.level, show.message, show.message_en)
            except Exception:
                log.warning("screen update failed", exc_info=True)

    def _respond(self, result: CommandResult) -> None:
        log.info("command %s -> %s %s", result.name, "ok" if result.ok else "refused", result.message)
        if self.uplink is not None and result.txn:
            self.uplink.respond(result)

    # ------------------------------------------------------------- labels
    def _commit(self, records: list[dict], labels: list[PrintLabel]) -> list[tuple[str, Exception]]:
        """Store the step's records and queue its labels in ONE durable write.

        Raises what the store raises (then nothing is stored and nothing queued);
        returns (ref, error) for labels no printer could print (the records are stored)."""
        rows, marks = self.station.changes(), self.station.marks()
        if not labels or not self.has_printer:
            for job in labels:
                log.info("no printer configured; label for %s not printed", job.ref or "?")
            self.store.append(records, meta=rows, marks=marks)
            return []
        printer = self.get_printer()
        if printer is not None:
            return printer.print_labels(
                [(job.label, job.ref) for job in labels],
                lambda queue: self.store.append(records, meta={**rows, PENDING_LABELS: queue}, marks=marks))
        from drivers.printer import Pending  # the shell is being restarted: queue where it will look

        queued = list(self.store.get_meta(PENDING_LABELS, []) or [])
        added = [Pending(job.ref, job.label, time.time()).to_dict() for job in labels]
        self.store.append(records, meta={**rows, PENDING_LABELS: [*queued, *added]}, marks=marks)
        return []

    def _label_error(self, ref: str, exc: Exception) -> None:
        reason = str(exc) or type(exc).__name__
        log.error("label for %s not queued: %s", ref or "?", reason)
        words = getattr(exc, "message", "") or zh("runtime.printer_fault")  # the raw reason stays in English
        self._show(Show("error", zh("runtime.label_not_printed", reason=words), en("runtime.label_not_printed", reason=reason),
                        {"label_error": reason, "ref": ref}))

    def _print(self, job: PrintLabel) -> None:
        """Hand the label to the printer shell's durable queue (it never blocks on paper)."""
        if not self.has_printer:  # tubes come pre-labelled, or the table has no printer
            log.info("no printer configured; label for %s not printed", job.ref or "?")
            return
        printer = self.get_printer()
        try:
            if printer is not None:
                printer.print_label(job.label, job.ref)
            else:  # the printer shell is being restarted: queue the label where it will look
                from drivers.printer import Pending

                queued = list(self.store.get_meta(PENDING_LABELS, []) or [])
                self.store.set_meta(PENDING_LABELS, [*queued, Pending(job.ref, job.label, time.time()).to_dict()])
        except Exception as exc:  # a label nobody could print, or a queue that cannot be saved
            self._label_error(job.ref, exc)

    def labels_waiting(self) -> int:
        printer = self.get_printer()
        if printer is not None:
            return len(printer.pending())
        return len(self.store.get_meta(PENDING_LABELS, []) or [])

    # ------------------------------------------------------------ snapshot
    def _backlog(self) -> tuple[int, float | None]:
        """The outbox's people count and its oldest record's age for the screen, read at most once
        a second: a step must not pay for counts (a full stats() was ~8 ms a step on a month-old
        kiosk, twice a step)."""
        now = time.monotonic()
        if now - self._backlog_at >= BACKLOG_EVERY_S:
            self._backlog_value = (int(self.store.backlog()), self.store.oldest_unsent_age_s())
            self._backlog_at = now
        return self._backlog_value

    def _link_state(self) -> dict[str, Any]:
        """What the screen shows beside the station: labels and records waiting, the broker."""
        out: dict[str, Any] = {"labels_waiting": self.labels_waiting()}
        try:
            backlog, oldest = self._backlog()
            out["backlog"] = backlog
            out["unsent"] = self._unsent(oldest if backlog else None)
        except Exception:  # a store that cannot even count is reported by the next write
            pass
        if self.uplink is not None:
            link = self.uplink.state()
            out["broker"] = None if not link.get("url") else {
                "ok": bool(link.get("connected")), "reason": link.get("error_en") or link.get("error") or ""}
            aside = link.get("set_aside") or []
            if out["broker"] and out["broker"]["ok"] and aside:  # delivered around, not delivered: say so
                words, words_en = both("runtime.broker_set_aside", n=len(aside), first=aside[0])
                out["broker"] = {"ok": False, "set_aside": list(aside), "reason": words, "error_en": words_en}
        return out

    def _unsent(self, age_s: float | None) -> dict[str, Any]:
        """The unsent-records warning: level ok / warn (amber) / alarm (red) by the oldest
        unsent record's age in whole minutes (so the screen is pushed once a minute, not
        every tick); each rise is spoken once, and the words reset when all is sent."""
        warn, alarm = self.unsent_minutes
        minutes = int((age_s or 0) // 60) if age_s is not None else 0
        level = "alarm" if age_s is not None and minutes >= alarm else "warn" if age_s is not None and minutes >= warn else "ok"
        rank = {"ok": 0, "warn": 1, "alarm": 2}
        if rank[level] > rank[self._unsent_said]:
            hours, mins = divmod(minutes, 60)
            age = zh("runtime.age_hours", h=hours, m=mins) if hours else zh("runtime.age_minutes", m=mins)
            self.speaker.say(zh("runtime.say_unsent_alarm" if level == "alarm" else "runtime.say_unsent_warn", age=age))
        if rank[level] != rank[self._unsent_said] and (level == "ok" or rank[level] > rank[self._unsent_said]):
            self._unsent_said = level
        return {"level": level, "oldest_min": minutes if age_s is not None else None, "warn_min": warn, "alarm_min": alarm}

    def _publish_snapshot(self) -> None:
        snap = dict(self.station.snapshot() if self.station is not None else self.snapshot)  # unread: as last shown
        snap["devices"] = dict(self.devices)
        if self._refusal is not None:
            snap.update(level="error", message=self._refusal.message, message_en=self._refusal.message_en)
        snap.update(self._link_state())
        with self._changed:
            self.snapshot = snap
            self._changed.notify_all()
        if self.ui is not None:
            try:
                self.ui.update(snap)
            except Exception:
                log.warning("screen update failed", exc_info=True)

    def _periodic(self) -> None:
        link = self._link_state()
        if any(self.snapshot.get(k) != v for k, v in link.items()):
            self._publish_snapshot()  # the broker came or went, records were acknowledged
        if self.uplink is None or time.monotonic() - self._status_at < STATUS_EVERY_S:
            return
        self._status_at = time.monotonic()
        try:
            stats = self.store.stats()
            self.uplink.set_status({"devices": self.devices, "backlog": stats.get("backlog"),
                                    "oldest_unsent_age_s": stats.get("oldest_unsent_age_s"),
                                    "store_errors": self.store_errors, "free_bytes": stats.get("free_bytes"),
                                    "version": self.version, "clock_synced": bool(self._synced),
                                    "store_damage": stats.get("damage") or [],
                                    "store_reports": self.store_reports()[-5:]})
        except Exception:
            log.warning("status publish failed", exc_info=True)

    # ------------------------------------------------------------ shutdown
    def stop(self, timeout: float = 10.0) -> None:
        """Handle everything already posted, then stop (bounded: a hung step is left behind)."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            log.error("station loop did not finish within %.0f s", timeout)
