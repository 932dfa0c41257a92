"""Compact in-memory tables for the station: a few bytes per person, no object per person.

A whole site offline is ~100,000 people a day on a Pi Zero 2 W (512 MB shared with the
browser), and the rules keep today's people reachable (duplicate check, voids). What a
rule needs about a person beyond these tables (name, ID number, time) is read back from
the store on the rare path that needs it (``Recall`` effect, see station.py).

``Samples``: the samples the station holds, by ordinal (the order they were applied):
their tube (4 B each) and their record seq (runs of seq - ordinal, ~1 B each when tubes
hold 10). ``PersonIndex``: one day's people as a sorted array of 64-bit entries, a 40-bit
keyed hash of the person key and the sample's ordinal (8 B each); a hit is only a
candidate, confirmed against the stored record.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from bisect import bisect_left, bisect_right, insort

HASH_BITS = 40  # a hash hit costs one store read; 40 bits: ~1 in 10 million lookups at 100k a day
OFFSET_BITS = 64 - HASH_BITS  # sample ordinal, counted from the day's first


class Samples:
    """Sample ordinal -> (record seq, tube number). Seqs rise with the ordinal."""

    __slots__ = ("tube", "_run_at", "_run_seq")

    def __init__(self) -> None:
        self.tube = array("I")  # tube number of each sample (the station's tube table)
        # runs: from ordinal _run_at[k] on, seq = _run_seq[k] + (ordinal - _run_at[k])
        self._run_at = array("I")
        self._run_seq = array("q")

    def __len__(self) -> int:
        return len(self.tube)

    def add(self, seq: int, tube: int) -> int:
        """Append a sample (its seq above every earlier one); returns its ordinal."""
        i = len(self.tube)
        if i and seq <= self.seq(i - 1):
            raise ValueError(f"sample seq {seq} is not above the last one")
        if not i or self._run_seq[-1] + (i - self._run_at[-1]) != seq:
            self._run_at.append(i)
            self._run_seq.append(seq)
        self.tube.append(tube)
        return i

    def seq(self, i: int) -> int:
        k = bisect_right(self._run_at, i) - 1
        return self._run_seq[k] + (i - self._run_at[k])

    def find(self, seq: int) -> int | None:
        """The ordinal of the sample with this seq, or None."""
        k = bisect_right(self._run_seq, seq) - 1
        if k < 0:
            return None
        i = self._run_at[k] + (seq - self._run_seq[k])
        end = self._run_at[k + 1] if k + 1 < len(self._run_at) else len(self.tube)
        return i if i < end else None


class PersonIndex:
    """One day's people: person key -> ordinals of their samples (candidates, see find)."""

    __slots__ = ("_salt", "_base", "_entries", "_far", "bits")

    def __init__(self, base: int, salt: bytes | None = None, bits: int = HASH_BITS) -> None:
        self._salt = salt if salt is not None else os.urandom(16)
        self._base = base  # ordinal of the day's first sample: entries keep ordinal - base
        self._entries = array("Q")
        self._far: dict[int, list[int]] = {}  # offsets past OFFSET_BITS (never at a real table)
        self.bits = bits

    def __len__(self) -> int:
        return len(self._entries) + sum(len(v) for v in self._far.values())

    def _hash(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "big") >> (64 - self.bits)

    def add(self, key: str, ordinal: int) -> None:
        h, offset = self._hash(key), ordinal - self._base
        if 0 <= offset < 1 << OFFSET_BITS:
            insort(self._entries, h << OFFSET_BITS | offset)
        else:
            self._far.setdefault(h, []).append(ordinal)

    def find(self, key: str) -> list[int]:
        """Ordinals whose person key hashes like this one, oldest first. Different people may
        share a hash: the caller confirms each against the stored record."""
        h = self._hash(key)
        lo = bisect_left(self._entries, h << OFFSET_BITS)
        hi = bisect_left(self._entries, (h + 1) << OFFSET_BITS, lo)
        mask = (1 << OFFSET_BITS) - 1
        found = [self._base + (e & mask) for e in self._entries[lo:hi]]
        return sorted(found + self._far.get(h, [])) if h in self._far else found
