"""What the district pushes: ``cmd/push_config`` (a station file) and ``cmd/push_volunteers``
(the certified-volunteer list), each in a signed envelope (firmware_app.signedpush).

The envelope is checked first (signed by a district key, for this station or site, newer
than the last accepted, not expired, over mqtts://); a good push is kept in the data dir
(firmware_app.pushed; /etc is read-only for the service) and its version in the store's
meta. Anything else is refused with every problem, and the running file stays.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from firmware_app import config, pushed, signedpush
from firmware_app.catalogue import both, en
from firmware_app.model import Command, CommandResult, Effect, Show
from firmware_app.runtime import Runtime
from firmware_app.store import Store

log = logging.getLogger("swabkiosk.daemon")


class PushCommands:
    """The two shell commands the runtime hands over (``Runtime.shell_commands``); an accepted
    volunteer list is saved for the next start before the district is answered."""

    def __init__(self, cfg: config.Config, data_dir: str, config_path: str | None, store: Store,
                 runtime: Runtime, restart: Callable[[], None]) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.config_path = config_path  # where a pushed station file is written (None: refused)
        self.store = store
        self.runtime = runtime
        self.restart = restart

    def install(self) -> None:
        self.runtime.shell_commands["push_config"] = self.push_config
        self.runtime.shell_commands["push_volunteers"] = self.push_volunteers

    def _signed_push(self, kind: str, envelope: object) -> signedpush.Push:
        """The verified push or a refusal (PushRefused): plain mqtt:// only where the station
        file says it is a test setup."""
        url = str(self.cfg.mqtt.get("url", ""))
        if not url.startswith("mqtts://") and self.cfg.authority.get("plain_mqtt_pushes") != "test setup only":
            raise signedpush.PushRefused("plain_mqtt", "config.push_plain_mqtt")
        station = self.cfg.station
        last = self.store.get_meta(signedpush.META_VERSION + kind, 0)
        return signedpush.verify(envelope, self.cfg.district_keys, kind=kind, device_id=station["device_id"],
                                 district=station["district"], site=station["site"], now=time.time(),
                                 last_version=int(last or 0))

    def _refused(self, command: Command, show_key: str, why: list[str], reason: str = "") -> list[Effect]:
        log.warning("%s refused (%s): %s", command.name, reason or "invalid", "; ".join(why))
        return [Show("error", *both(show_key)),
                CommandResult(command.name, command.txn, False, "; ".join(why),
                              {"problems": why, **({"reason": reason} if reason else {})})]

    def push_config(self, command: Command) -> list[Effect]:
        """cmd/push_config: the file inside the envelope is checked like any input, and may not
        change what only provisioning sets (``pushed.locked_changes``: [authority], the broker,
        credentials, CA, certificates, every path). A good file is saved in the data dir
        (pushed/swabkiosk.toml, the last push kept as .previous), and the kiosk restarts cleanly
        to apply it."""
        refused = "daemon.config_push_refused"
        if not self.config_path:
            return self._refused(command, refused, [en("daemon.push_no_station_file")])
        try:
            push = self._signed_push("config", command.args.get("config"))
        except signedpush.PushRefused as exc:
            return self._refused(command, refused, [str(exc)], exc.reason)
        text = push.body
        problems = [str(p) for p in config.check_text(text)] if isinstance(text, str) else \
            [en("daemon.push_body_not_text")]
        locked = [] if problems else pushed.locked_changes(self.cfg.to_dict(), config.parse_text(text).to_dict())
        if locked:  # a change only provisioning may make
            problems.append(" / ".join(both("daemon.push_locked")) + ": " + ", ".join(locked))
        if problems:
            return self._refused(command, refused, problems, "locked" if locked else "invalid")
        try:
            saved = pushed.save_config(self.data_dir, self.config_path, text)
            self.store.set_meta(signedpush.META_VERSION + "config", push.version)
        except Exception as exc:  # OSError, a store refusal: the running file stays
            log.error("pushed station file not saved: %s", exc)
            return [Show("error", *both("daemon.config_push_not_saved")),
                    CommandResult(command.name, command.txn, False, en("daemon.push_not_saved", reason=exc))]
        log.warning("signed station file version %d pushed over MQTT and saved to %s; restarting to apply it",
                    push.version, saved)
        self.restart()
        return [Show("info", *both("daemon.config_push_applied")),
                CommandResult(command.name, command.txn, True, en("daemon.push_saved"), {"version": push.version})]

    def push_volunteers(self, command: Command) -> list[Effect]:
        """cmd/push_volunteers: the certified list in a signed envelope (``volunteers`` is a
        one-element list holding it); the verified list goes to the station as before."""
        raw = command.args.get("volunteers")
        envelope = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
        try:
            push = self._signed_push("volunteers", envelope)
        except signedpush.PushRefused as exc:
            return self._refused(command, "daemon.volunteers_push_refused", [str(exc)], exc.reason)
        inner = Command("push_volunteers", {"volunteers": push.body}, "mqtt", command.txn)
        effects = self.runtime._handle(inner)
        if any(isinstance(e, CommandResult) and not e.ok for e in effects):
            return effects
        # kept before it is answered: an ok the district saw must survive a restart
        try:
            saved = pushed.save_volunteers(self.data_dir, self.cfg.volunteers.get("list_file", ""),
                                           self.runtime.station.volunteers)
        except (OSError, ValueError) as exc:
            log.error("pushed volunteer list applied but not saved (it lasts until the next restart): %s", exc)
            return [CommandResult(e.name, e.txn, False, en("daemon.push_not_saved", reason=exc),
                                  {**e.data, "applied_until_restart": True})
                    if isinstance(e, CommandResult) else e for e in effects]
        log.info("pushed volunteer list saved to %s", saved)
        try:
            self.store.set_meta(signedpush.META_VERSION + "volunteers", push.version)
        except Exception as exc:  # applied; only a replay of this very version could be taken again
            log.error("version of the pushed volunteer list not kept: %s", exc)
        return effects
