"""RabbitMQ's MQTT plugin (Debian `rabbitmq-server`, 3.10) for the district trials: nodes started
by the tests on loopback ports, each with its own data directory, and SIGKILLed like Mosquitto.

    node = RabbitNode(workdir, "swab1"); node.start(); node.kill(); node.start()

RabbitMQ 3.10 has no shared subscriptions (the receiver runs with --share "") and does not
deliver retained messages to wildcard subscriptions; the login is the default user `guest`
on the default vhost (this is not an ACL test). ``unavailable()`` says why none can start."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.broker import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
USER, PASSWORD = "guest", "guest"


def unavailable() -> str:
    if not os.path.exists(SERVER):
        return "RabbitMQ is not installed (Debian package rabbitmq-server; bin/bootstrap --test installs it)"
    plugins = list(Path("/usr/lib/rabbitmq/lib").glob("*/plugins/rabbitmq_mqtt-*"))
    if not plugins:
        return "RabbitMQ's MQTT plugin is missing"
    return ""


class RabbitNode:
    def __init__(self, workdir: Path, name: str, home: Path | None = None):
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home = Path(home or workdir)  # the Erlang cookie lives here: one per cluster
        self.name = f"{name}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        (self.dir / "rabbit.conf").write_text(
            "listeners.tcp = none\n"
            f"mqtt.listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = false\n"
            "loopback_users = none\n"
            "management_agent.disable_metrics_collector = true\n")
        (self.dir / "plugins").write_text("[rabbitmq_mqtt].\n")
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict:
        return {**os.environ, "HOME": str(self.home), "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbit.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
                "RABBITMQ_PID_FILE": str(self.dir / "pid"), "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config")}

    def start(self, timeout: float = 90.0) -> None:
        log = open(self.dir / "out.log", "ab")
        self.proc = subprocess.Popen([SERVER], env=self.env(), stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.start_wait(timeout)

    def start_wait(self, timeout: float = 90.0) -> None:
        """Until the MQTT listener answers (after start, or after rabbitmqctl start_app)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.proc.returncode}: "
                                   f"{(self.dir / 'out.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"RabbitMQ MQTT did not listen on {self.port} within {timeout} s")

    def ctl(self, *args: str, timeout: float = 60) -> str:
        out = subprocess.run([CTL, "-n", self.name, *args], env=self.env(), capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {out.stderr or out.stdout}")
        return out.stdout

    def kill(self) -> None:
        """SIGKILL the whole node (the Erlang VM and its helpers; epmd is a daemon of its own)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
