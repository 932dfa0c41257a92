"""Compact in-memory tables for the station: a few bytes per person, no object per person.

A whole site offline is ~100,000 people a day on a Pi Zero 2 W (512 MB shared with the
browser), and the rules keep today's people reachable (duplicate check, voids). What a
rule needs about a person beyond these tables (name, ID number, time) is read back from
the store on the rare path that needs it (``Recall`` effect, see station.py).

``Samples``: the samples the station holds, by ordinal (the order they were applied):
their tube and record seq, as runs (~1 B a person when tubes hold 10). ``PersonIndex``:
one day's people as sorted 48-bit entries, a 28-bit keyed hash of the person key and the
sample's ordinal (6 B each); a hit is only a candidate, confirmed against the stored record.
"""

from __future__ import annotations

import hashlib
import re
import os
from array import array
from bisect import bisect_left, bisect_right

ENTRY_BYTES = 6  # one person in PersonIndex: a keyed hash and the sample's ordinal
HASH_BITS = 28  # a false hit costs one store read: ~1 arrival in 2,700 at 100,000 people a day
OFFSET_BITS = 8 * ENTRY_BYTES - HASH_BITS  # ordinal from the day's first: 1,048,576 a day


class Samples:
    """Sample ordinal -> (record seq, tube number), as runs: from ordinal ``_at[k]`` on,
    seq = ordinal + ``_off[k]`` and the tube is ``_tube[k]``. A run ends where the seqs
    jump (any other record between two samples) or the tube changes, so a tube of 10
    people is about one run: ~1 B a person. Seqs rise with the ordinal."""

    __slots__ = ("_n", "_at", "_off", "_tube", "tube")

    def __init__(self) -> None:
        self._n = 0
        self._at = array("I")
        self._off = array("I")  # widened to 8 bytes past 4,294,967,295
        self._tube = array("H")  # widened to 4 bytes past 65,535 tubes (renumbered daily)
        self.tube = _TubeColumn(self)

    def __len__(self) -> int:
        return self._n

    def _run(self, i: int) -> int:
        if not 0 <= i < self._n:
            raise IndexError(i)
        return bisect_right(self._at, i) - 1

    def _put(self, name: str, k: int | None, value: int) -> None:
        column = getattr(self, name)
        try:
            if k is None:
                column.append(value)
            else:
                column.insert(k, value)
        except OverflowError:
            setattr(self, name, array({"H": "I", "I": "Q"}[column.typecode], column))
            self._put(name, k, value)

    def _insert_run(self, k: int, at: int, off: int, tube: int) -> None:
        self._at.insert(k, at)
        self._off.insert(k, off)
        self._put("_tube", k, tube)

    def add(self, seq: int, tube: int) -> int:
        """Append a sample (its seq above every earlier one); returns its ordinal."""
        i = self._n
        if i and seq <= self.seq(i - 1):
            raise ValueError(f"sample seq {seq} is not above the last one")
        if seq < i + 1:
            raise ValueError(f"sample seq {seq} is below its place")
        if not i or self._off[-1] != seq - i or self._tube[-1] != tube:
            self._put("_tube", None, tube)
            self._at.append(i)
            self._put("_off", None, seq - i)
        self._n += 1
        return i

    def set_tube(self, i: int, tube: int) -> None:
        """Move sample i to another tube (a tube replacement moves all of a tube's)."""
        k = self._run(i)
        if self._tube[k] == tube:
            return
        end = self._at[k + 1] if k + 1 < len(self._at) else self._n
        old, off = self._tube[k], self._off[k]
        if i > self._at[k]:  # split: the run's head stays
            k += 1
            self._insert_run(k, i, off, old)
        if i + 1 < end:  # split: the run's tail stays
            self._insert_run(k + 1, i + 1, off, old)
        try:
            self._tube[k] = tube
        except OverflowError:
            self._tube = array("I", self._tube)
            self._tube[k] = tube
        for j in (k + 1, k):  # join equal neighbours again
            if 0 < j < len(self._at) and self._off[j - 1] == self._off[j] and self._tube[j - 1] == self._tube[j]:
                del self._at[j], self._off[j], self._tube[j]

    def tube_of(self, i: int) -> int:
        return self._tube[self._run(i)]

    def seq(self, i: int) -> int:
        return i + self._off[self._run(i)]

    def find(self, seq: int) -> int | None:
        """The ordinal of the sample with this seq, or None."""
        at, off = self._at, self._off
        k = bisect_right(range(len(at)), seq, key=lambda k: at[k] + off[k]) - 1
        if k < 0:
            return None
        i = seq - off[k]
        end = at[k + 1] if k + 1 < len(at) else self._n
        return i if i < end else None


class _TubeColumn:
    """``Samples.tube[i]``: the tube number of sample i, read from its run."""

    __slots__ = ("_samples",)

    def __init__(self, samples: Samples) -> None:
        self._samples = samples

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, i: int) -> int:
        return self._samples.tube_of(i)

    def __iter__(self):
        s = self._samples
        for k in range(len(s._at)):
            end = s._at[k + 1] if k + 1 < len(s._at) else s._n
            yield from [s._tube[k]] * (end - s._at[k])


class _Entries:
    """PersonIndex's bytes as a sorted sequence of big-endian entries (for bisect)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def __len__(self) -> int:
        return len(self.buf) // ENTRY_BYTES

    def __getitem__(self, k: int) -> bytes:
        return bytes(self.buf[k * ENTRY_BYTES : (k + 1) * ENTRY_BYTES])


class PersonIndex:
    """One day's people: person key -> ordinals of their samples (candidates, see find)."""

    __slots__ = ("_salt", "base", "_entries", "_far", "bits")

    def __init__(self, base: int, salt: bytes | None = None, bits: int | None = None) -> None:
        self._salt = salt if salt is not None else os.urandom(16)
        self.base = base  # ordinal of the day's first sample (entries keep ordinal - base)
        self._entries = _Entries()
        self._far: dict[int, list[int]] = {}  # offsets past OFFSET_BITS (never at a real table)
        self.bits = bits or HASH_BITS  # read when made: a test may shrink it to force collisions

    def __len__(self) -> int:
        return len(self._entries) + sum(len(v) for v in self._far.values())

    def _hash(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "big") >> (64 - self.bits)

    def add(self, key: str, ordinal: int) -> None:
        h, offset = self._hash(key), ordinal - self.base
        if 0 <= offset < 1 << OFFSET_BITS:
            entry = (h << OFFSET_BITS | offset).to_bytes(ENTRY_BYTES, "big")
            k = bisect_right(self._entries, entry) * ENTRY_BYTES
            self._entries.buf[k:k] = entry
        else:
            self._far.setdefault(h, []).append(ordinal)

    def find(self, key: str) -> list[int]:
        """Ordinals whose person key hashes like this one, oldest first. Different people may
        share a hash: the caller confirms each against the stored record."""
        h = self._hash(key)
        entries, mask = self._entries, (1 << OFFSET_BITS) - 1
        lo = bisect_left(entries, (h << OFFSET_BITS).to_bytes(ENTRY_BYTES, "big"))
        hi = lo
        while hi < len(entries) and int.from_bytes(entries[hi], "big") >> OFFSET_BITS == h:
            hi += 1
        found = [self.base + (int.from_bytes(entries[k], "big") & mask) for k in range(lo, hi)]
        return sorted(found + self._far.get(h, [])) if h in self._far else found


class _Words:
    """A few distinct strings (modes, reasons, days, box ids) as small codes; 0 is None."""

    __slots__ = ("words", "codes")

    def __init__(self) -> None:
        self.words: list[str | None] = [None]
        self.codes: dict[str | None, int] = {None: 0}

    def code(self, word: str | None) -> int:
        c = self.codes.get(word)
        if c is None:
            c = self.codes[word] = len(self.words)
            self.words.append(word)
        return c


STATES = ("open", "closed", "replaced")
WIDER = {"B": "H", "H": "I", "I": "Q", "i": "q"}
COLUMNS = ("codes", "alive", "state", "capacity", "mode", "single", "close", "box", "day", "counted_day", "first",
           "count", "counted_shift")


class Tube:
    """A view of one row of ``Tubes`` (made on access, holds nothing itself)."""

    __slots__ = ("_t", "n")

    def __init__(self, table: Tubes, n: int) -> None:
        self._t, self.n = table, n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tube) and other._t is self._t and other.n == self.n

    def __hash__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Tube({self.id!r}, {self.state}, {self.count}/{self.capacity})"

    @property
    def id(self) -> str:
        return self._t.id_of(self.n)

    capacity = property(lambda self: self._t.capacity[self.n])
    mode = property(lambda self: self._t.words.words[self._t.mode[self.n]])
    single_reason = property(lambda self: self._t.words.words[self._t.single[self.n]])
    day = property(lambda self: self._t.words.words[self._t.day[self.n]])

    def _get(name: str, words: bool = False):  # type: ignore[misc]
        def get(self):
            value = getattr(self._t, name)[self.n]
            return self._t.words.words[value] if words else value

        def put(self, value):
            self._t.put(name, self.n, self._t.words.code(value) if words else value)

        return property(get, put)

    first = _get("first")
    count = _get("count")
    counted_shift = _get("counted_shift")
    close_reason = _get("close", words=True)
    box = property(lambda self: self._t.boxes.words[self._t.box[self.n]],
                   lambda self, value: self._t.put("box", self.n, self._t.boxes.code(value)))
    counted_day = _get("counted_day", words=True)

    @property
    def state(self) -> str:
        return STATES[self._t.state[self.n]]

    @state.setter
    def state(self, value: str) -> None:
        self._t.state[self.n] = STATES.index(value)


class Tubes:
    """The station's tubes as columns (~32 B each) by number n; looked up by id like a dict.

    Our own tube ids (prefix + yymmdd + 4 digits, printed by the station) are kept as one
    integer each, in a column that never decreases so an id is found by bisection; any
    other id (a lab's barcode, a number out of order) is kept as a string in ``_odd``."""

    __slots__ = ("_prefix", "_pattern", "codes", "_odd", "_odd_n", "alive", "state", "capacity", "mode", "single",
                 "close", "box", "day", "counted_day", "first", "count", "counted_shift", "words", "boxes")

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._pattern = re.compile(re.escape(prefix) + r"(\d{10})")
        self._odd: dict[str, int] = {}  # id -> n of the odd ones
        self._odd_n: dict[int, str] = {}
        self.codes = array("q")
        self.alive = bytearray()  # 0 once forgotten (or its id reused by a later tube)
        self.state = bytearray()
        # a byte each while the values fit (see put): ~25 B a tube
        self.mode, self.single, self.close = array("B"), array("B"), array("B")
        self.capacity, self.count = array("B"), array("B")
        self.box, self.day, self.counted_day = array("H"), array("B"), array("B")
        self.first, self.counted_shift = array("i"), array("B")
        self.words = _Words()  # modes, reasons, days
        self.boxes = _Words()  # box ids (a few hundred a day)

    def __len__(self) -> int:  # rows, forgotten ones included
        return len(self.codes)

    def id_of(self, n: int) -> str:
        odd = self._odd_n.get(n)
        return odd if odd is not None else f"{self._prefix}{self.codes[n]:010d}"

    def _find(self, tube_id: str) -> int | None:
        n = self._odd.get(tube_id)
        if n is not None:
            return n if self.alive[n] else None
        m = self._pattern.fullmatch(tube_id)
        if m is None:
            return None
        code = int(m.group(1))
        n = bisect_left(self.codes, code)
        while n < len(self.codes) and self.codes[n] == code:
            if self.alive[n] and n not in self._odd_n:
                return n
            n += 1
        return None

    def add(self, tube_id: str, capacity: int, mode: str, single_reason: str | None, day: str, *, state: str = "open",
            close_reason: str | None = None, box: str | None = None, first: int = -1, count: int = 0) -> Tube:
        earlier = self._find(tube_id)
        n = len(self.codes)
        m = self._pattern.fullmatch(tube_id)
        last = self.codes[-1] if self.codes else 0
        odd = m is None or int(m.group(1)) < last
        self.codes.append(last if odd else int(m.group(1)))  # odd: the id itself goes in _odd
        w = self.words.code
        self.alive.append(1)
        self.state.append(STATES.index(state))
        try:
            for name, value in (("capacity", capacity), ("mode", w(mode)), ("single", w(single_reason)),
                                ("close", w(close_reason)), ("box", self.boxes.code(box)), ("day", w(day)),
                                ("counted_day", 0), ("first", first), ("count", count), ("counted_shift", 0)):
                self.put(name, None, value)
        except (ValueError, TypeError):  # a record with a value no tube can have: nothing added
            for name in COLUMNS:
                del getattr(self, name)[n:]
            raise
        if odd:
            self._odd[tube_id], self._odd_n[n] = n, tube_id
        if earlier is not None:  # an empty closed tube opened again: the old row is out of reach
            self.alive[earlier] = 0
        return Tube(self, n)

    def put(self, name: str, n: int | None, value: int) -> None:
        """Set row n of a column (append when n is None), widening the column when the
        value does not fit its type (a 256th shift, a box id past 65,535)."""
        column = getattr(self, name)
        try:
            if n is None:
                column.append(value)
            else:
                column[n] = value
        except OverflowError:
            if column.typecode not in WIDER:
                raise ValueError(f"{name} {value} out of range") from None
            setattr(self, name, array(WIDER[column.typecode], column))
            self.put(name, n, value)

    # the dict-like part the station uses
    def get(self, tube_id: str | None) -> Tube | None:
        n = self._find(tube_id) if tube_id else None
        return None if n is None else Tube(self, n)

    def __getitem__(self, tube_id: str) -> Tube:
        tube = self.get(tube_id)
        if tube is None:
            raise KeyError(tube_id)
        return tube

    def __contains__(self, tube_id: object) -> bool:
        return isinstance(tube_id, str) and self._find(tube_id) is not None

    def __delitem__(self, tube_id: str) -> None:
        self.alive[self[tube_id].n] = 0

    def at(self, n: int) -> Tube | None:
        """The tube numbered n, None once forgotten."""
        return Tube(self, n) if self.alive[n] else None

    def values(self) -> list[Tube]:
        return [Tube(self, n) for n in range(len(self.codes)) if self.alive[n]]

    def keys(self) -> list[str]:
        return [self.id_of(n) for n in range(len(self.codes)) if self.alive[n]]

    def __iter__(self):
        return iter(self.keys())

    def compact(self) -> dict[int, int]:
        """Drop the forgotten rows (and unused words); returns old n -> new n of the others."""
        old = [self.at(n) for n in range(len(self.codes))]
        rows = [(t.id, t.capacity, t.mode, t.single_reason, t.day, t.state, t.close_reason, t.box, t.first, t.count,
                 t.counted_day, t.counted_shift, t.n) for t in old if t is not None]
        self.__init__(self._prefix)  # type: ignore[misc]
        moved = {}
        for tube_id, cap, mode, single, day, state, close, box, first, count, counted_day, shift, n in rows:
            tube = self.add(tube_id, cap, mode, single, day, state=state, close_reason=close, box=box, first=first,
                            count=count)
            tube.counted_day, tube.counted_shift = counted_day, shift
            moved[n] = tube.n
        return moved
