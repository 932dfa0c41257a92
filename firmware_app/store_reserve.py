"""Identifiers reserved ahead (a mixin of ``Store``): seq and the tube/box number stems are
written to the small high-water file (``hwm``, store_schema.HighWater) BEFORE a transaction
goes beyond what it reserves, so a repaired or restored database never reissues one. Half-way
through a reservation the helper thread writes the next one, so an append seldom waits for
that flush."""

from __future__ import annotations

import threading

from firmware_app.catalogue import both
from firmware_app.store_schema import RESERVE_NUMBER, RESERVE_SEQ, HighWater, StoreReadOnly, os_error

KEEP_STEMS = 12  # number stems kept beyond those the station still counts (it drops earlier days')


def _bounded(numbers: dict[str, int], current: dict) -> dict[str, int]:
    """Stems the station no longer names are kept, but at most KEEP_STEMS of them (the newest by
    name: stems end in the date): a stem or two a day would otherwise overflow the hwm slot after
    ~27 days and every later write would be refused."""
    old = sorted((k for k in numbers if k not in current), key=lambda k: (k[-6:], k))
    for k in old[:max(0, len(old) - KEEP_STEMS)]:
        del numbers[k]
    return numbers


class Reservations:
    """The reservation half of the store (``Store`` sets these attributes)."""

    data_dir: str
    _hwm: HighWater | None
    _hwm_lock: threading.Lock
    _ahead: tuple[int, dict] | None
    _wake: threading.Event

    @property
    def _high_water(self) -> HighWater:
        """The identifier high-water file (a writer's; a read-only store has none to write)."""
        if self._hwm is None:
            raise StoreReadOnly(*both("store_open.opened_read_only"), self.data_dir)
        return self._hwm

    def _reserve(self, seq: int, numbers: dict[str, int], intent: int) -> None:
        """Write the hwm file BEFORE a transaction that goes beyond what it reserves. Half-way through
        a reservation the helper thread writes the next one, so an append seldom waits for that flush."""
        hw = self._high_water.value
        if seq <= hw["seq"] and all(v <= hw["numbers"].get(k, 0) for k, v in numbers.items()):
            if seq > hw["seq"] - RESERVE_SEQ // 2 or any(
                    v > hw["numbers"].get(k, 0) - RESERVE_NUMBER // 2 for k, v in numbers.items()):
                self._ahead = (seq, numbers)
                self._wake.set()
            return
        self._write_reservation(seq, numbers, intent)

    def _write_reservation(self, seq: int, numbers: dict[str, int], intent: int) -> None:
        with self._hwm_lock:
            hw = self._high_water.value
            nums = {k: hw["numbers"].get(k, 0) for k in numbers}
            for k, v in numbers.items():
                if v > nums.get(k, 0) - RESERVE_NUMBER // 2:
                    nums[k] = max(nums.get(k, 0), v + RESERVE_NUMBER)
            nums = _bounded(nums, numbers)
            try:
                self._high_water.write(max(hw["seq"], seq + RESERVE_SEQ), nums, intent)
            except OSError as exc:
                raise os_error(exc, self._high_water.path) from exc
