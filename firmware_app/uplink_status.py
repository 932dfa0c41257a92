"""The retained status an uplink publishes (``.../status``): what the kiosk says about itself
(devices, versions: ``Uplink.set_status``), the backlog, the watermark a district receiver
closes its gaps against (docs/records.md, "Delivery contract"), the records set aside, and
the store's repairs and damage."""

from __future__ import annotations

import time
from typing import Any

import paho.mqtt

from firmware_app import __version__
from firmware_app.uplink_settings import UplinkSettings


def status_body(settings: UplinkSettings, status: dict[str, Any], stats: dict[str, Any],
                set_aside: dict[int, dict]) -> dict[str, Any]:
    return {"device_id": settings.device_id, "at": time.time(), **status,
            "backlog": stats["backlog"], "backlog_events": stats["backlog_events"],
            # a consumer holding every seq from first_seq (1 on a new kiosk) to last_seq has everything
            "watermark": {"last_seq": stats["last_seq"], "first_seq": stats["first_seq"],
                          "days": stats.get("days", {})},
            "set_aside": sorted(set_aside.values(), key=lambda x: x["seq"])[:20],
            "set_aside_count": len(set_aside),
            # repairs and imports: how many records were kept and how many could not be recovered
            "store_reports": [{k: r.get(k) for k in ("at", "what", "kept", "lost", "moved_to")}
                              for r in stats.get("reports", [])[-5:]],
            "store_damage": stats.get("damage", [])[:5],
            "versions": {"swabkiosk": __version__, "paho-mqtt": paho.mqtt.__version__,
                         **status.get("versions", {})}}
