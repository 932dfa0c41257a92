"""First-boot provisioning, the network: the daemon's IP allow list (a systemd drop-in for
``IPAddressAllow=``) and the screen's URL (a drop-in for the browser's unit)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from firmware_app.provision_layout import DEFAULT_UI_PORT, Paths, problem_text


def remote_hosts(data: dict) -> list[str]:
    """Hosts the daemon must reach: the MQTT broker and a network printer."""
    hosts = []
    url = str(data.get("mqtt", {}).get("url", "") or "")
    if url:
        hosts.append(urlsplit(url).hostname or "")
    target = str(data.get("devices", {}).get("printer", {}).get("target", "") or "")
    if target.startswith("tcp://"):
        hosts.append(urlsplit(target).hostname or "")
    return [h for h in hosts if h]


def allowed_networks(data: dict) -> tuple[list[str], list[str]]:
    """[mqtt] allow_networks as CIDRs, and the entries that are not networks."""
    good, bad = [], []
    for item in data.get("mqtt", {}).get("allow_networks", []) or []:
        try:
            good.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            bad.append(str(item))
    return good, bad


def network_problems(data: dict) -> list[str]:
    """A host name needs [mqtt] allow_networks: its addresses are not known in advance, and the
    allow list is never opened to any address (issue 13, finding 10)."""
    names = [h for h in remote_hosts(data) if not _is_ip(h)]
    good, bad = allowed_networks(data)
    problems = [problem_text("provision.not_network", entry=b) for b in bad]
    if names and not good:
        problems.append(problem_text("provision.host_names", names=", ".join(sorted(set(names)))))
    return problems


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def network_dropin(data: dict) -> str:
    """The drop-in widening the unit's localhost-only IP allow list for this station.

    An IP literal is allowed alone. A host name resolves to addresses that may change (and
    needs the DHCP-given DNS server), so the technician names the networks they are in
    (``[mqtt] allow_networks``); the allow list is never ``any``: a kiosk whose daemon could
    reach any address would carry its records (and credentials) wherever a pushed or forged
    name pointed. Resolving at provisioning was rejected: a broker that moves to another
    address would leave the kiosk silently offline until it is provisioned again.
    """
    allow = [h for h in remote_hosts(data) if _is_ip(h)]
    names = [h for h in remote_hosts(data) if not _is_ip(h)]
    networks = allowed_networks(data)[0] if names else []  # only for host names: IPs are allowed alone
    lines = ["# Written by swabkiosk provisioning from /etc/swabkiosk/swabkiosk.toml; do not edit.", "[Service]"]
    if names:
        lines.append(f"# Host names ({', '.join(sorted(set(names)))}): the networks of mqtt.allow_networks.")
    if allow or networks:
        lines.append("IPAddressAllow=" + " ".join(sorted(set(allow)) + sorted(set(networks))))
    else:
        lines.append("# No broker or network printer reachable: localhost only (records wait in the store).")
    return "\n".join(lines) + "\n"


def kiosk_url(data: dict) -> str:
    return f"http://127.0.0.1:{data.get('ui', {}).get('port', DEFAULT_UI_PORT)}/"


def screen_dropin(paths: Paths) -> Path:
    """swabkiosk-screen.service.d beside swabkiosk.service.d: where the browser learns ui.port."""
    return paths.dropin_dir.parent / "swabkiosk-screen.service.d" / "50-url.conf"


def screen_dropin_text(data: dict) -> str:
    return f"# Written by swabkiosk provisioning (ui.port); do not edit.\n[Service]\nEnvironment=SWABKIOSK_URL={kiosk_url(data)}\n"


def current_kiosk_url(paths: Paths) -> str:
    """The URL the browser uses now (the installed station's port), for the errors page."""
    try:
        for line in screen_dropin(paths).read_text().splitlines():
            if line.startswith("Environment=SWABKIOSK_URL="):
                return line.split("=", 2)[2]
    except OSError:
        pass
    return kiosk_url({})
