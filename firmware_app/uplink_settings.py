"""What the uplink needs to reach the district broker (firmware_app.compose builds it from the
station file's [station] and [mqtt]) and the topic root every leaf hangs under."""

from __future__ import annotations

from dataclasses import dataclass


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
