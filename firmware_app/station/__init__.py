"""The sampling table's rules as a pure state machine (sans-I/O, like h11).

    station = Station(config, volunteers)
    station.restore(store.meta_items(table_state.PREFIX), store.high_water())
    facts = store.facts(station.lookups(event, now))   # what the step needs from history
    effects = station.handle(event, now, facts)
    store.append(records, meta=station.changes(), marks=station.marks())
    # the shell carries out effects in order: every Persist durably first (one batch,
    # with the state rows the step changed), then labels, screen, sound, command results.

Every state change is a record: ``handle`` builds a record and applies it to the live
state (``table_state``: the shift, open tubes and boxes, counters) with the same reducer
a one-time replay uses, and returns it as a ``Persist``. The rows the step changed
(``changes()``) are stored in the same transaction as its records, so a restart loads
them and continues where this one stopped, at the same cost on a month-old kiosk as on a
new one. What a rule needs from history (a person's samples today, the people of a tube,
a record to void) the shell reads from the store beforehand: ``lookups(event)`` says
what, ``Facts`` carries it. If the shell fails to store a step's records, or ``handle``
raises (a bug), the shell must restore the Station from the store before handling
anything else: the state then matches what is durable.

No clock (``Now`` comes with every event), no files, no logging: full ID numbers live only
in records (the district needs them) and never in Show/Say/CommandResult.

Where things are: ``core.py`` the facade (restore, lookups, handle, changes, marks,
snapshot) and the dispatch of events; ``state.py`` the live state rows and one reducer per
record kind; the rules by concern in ``shifts.py`` (sign in/out, mode, the certified
list), ``people.py`` (arrivals, duplicates, single tubes, pending/confirm/reject, manual
entry), ``tubes.py`` (open, close, labels, replacement, voids) and ``boxes.py`` (boxes,
count, close, hand-over); ``common.py`` what they share. No module here does I/O
(tests/test_station_shape.py checks it).

The rules and the decisions taken where the seeds are silent are in docs/records.md.
"""

from firmware_app.station.common import COMMAND_PREFIX, MissingFacts, Refused
from firmware_app.station.core import Station

__all__ = ["COMMAND_PREFIX", "MissingFacts", "Refused", "Station"]
