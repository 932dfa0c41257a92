"""The store's meta table, read side (a mixin of ``Store``, over ``StoreQueries``): the
station's state rows, the label queue, the uplink state, the repair reports. Every value
carries a CRC: one that fails is left out and reported, or (``strict``) refused whole."""

from __future__ import annotations

import logging
from typing import Any

from firmware_app.catalogue import both
from firmware_app.store_queries import StoreQueries
from firmware_app.store_schema import StoreCorrupt, meta_value

log = logging.getLogger("firmware_app.store")


class StoreMeta(StoreQueries):
    _damage: list[str]
    path: str

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._q("SELECT key, value, crc FROM meta WHERE key = ?", (key,))
        return self._meta_values(rows).get(key, default)

    def meta_items(self, prefix: str, *, strict: bool = False) -> dict[str, Any]:
        """Every meta key under prefix. ``strict``: a value that fails its checksum raises
        StoreCorrupt instead of being left out (the station's rows are all or nothing)."""
        return self._meta_values(self._q("SELECT key, value, crc FROM meta WHERE key >= ? AND key < ?",
                                         (prefix, prefix + "\U0010ffff")), strict)

    def meta_keys(self, prefix: str) -> list[str]:
        """The meta keys under prefix, whether or not their values are whole."""
        return [k for (k,) in self._q("SELECT key FROM meta WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff"))]

    def _meta_values(self, rows: list, strict: bool = False) -> dict[str, Any]:
        out = {}
        for key, text, crc in rows:
            try:
                out[key] = meta_value(key, text, crc)
            except ValueError as exc:
                if strict:
                    self._damage.append(str(exc))
                    raise StoreCorrupt(*both("store_open.state_damaged"), self.path, raw=str(exc)) from None
                log.error("store: %s (treated as missing)", exc)
                if str(exc) not in self._damage:
                    self._damage.append(str(exc))
        return out

    def reports(self) -> list[dict]:
        """Repairs, recoveries and imports done, oldest first (persisted in meta)."""
        return list(self.get_meta("reports") or [])
