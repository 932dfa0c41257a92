"""`swabkiosk status`, `swabkiosk tube TUBE_ID` (and `swabkiosk export`, in export_cli.py).

They open the store read-only, so they work beside a running daemon and on an
SD card mounted read-only in a technician's laptop. Their texts are in
firmware_app/catalogue/store.py.
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from typing import Any

from firmware_app.catalogue import both, en, zh
from firmware_app.model import mask_id, mask_name
from firmware_app.export_cli import export  # noqa: F401 (swabkiosk export: firmware_app/cli.py names it here)
from firmware_app.store import Store, StoreError
from firmware_app.store_cli_base import (broker_state, data_dir, fail, label, lines, open_store, parser,
                                         replacement, tube_chain, void_target, when)

def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# ---------------------------------------------------------------- status


def status(argv: list[str]) -> int:
    p = parser("status", "Backlog, archive, last acknowledgement and broker state of a store.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--repair", action="store_true",
                   help="set damaged store files aside (kept in damaged/) and keep every intact record")
    args = p.parse_args(argv)
    where = data_dir(args)
    if args.repair:
        return _repair(where, args.json)
    try:
        store = Store(where, read_only=True)
    except StoreError as exc:
        return fail(exc, args.json)
    with store:
        stats = store.stats()
        broker = broker_state(store)
    out = {"data_dir": os.path.abspath(where), **stats, "broker": broker}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    b = broker
    since = en("store.status_since", when=when(b["since"]))
    raw = f"\n    ({b['error_raw']})" if b["error_raw"] else ""  # the raw reason, for the technician
    link = (f"{label('store.status_connected')}  {b['url']}  ({since})" if b["connected"]
            else f"{label('store.status_not_connected')}  {b['url']}\n    {b['error']}\n    {b['error_en']}{raw}")
    free = f"{stats['free_bytes'] / 1e9:.1f} GB" if stats["free_bytes"] is not None else "—"
    people, events = label("store.unit_people"), label("store.unit_events")
    for key, value in (("store.status_store", out["data_dir"]),
                       ("store.status_backlog", f"{stats['backlog']} {people} + {stats['backlog_events']} {events}"),
                       ("store.status_oldest", _age(stats["oldest_unsent_age_s"])),
                       ("store.status_archived", stats["archived"]),
                       ("store.status_last_ack", when(stats["last_ack_at"])),
                       ("store.status_broker", link),
                       ("store.status_free", free)):
        print(_pad(label(key), 24) + str(value))
    days = sorted(stats.get("days", {}).items())[-7:]  # what export takes: the days this store holds
    for n, (day, counts) in enumerate(days):
        print(_pad(label("store.status_days") if n == 0 else "", 24)
              + " / ".join(both("store.status_day", day=day, **counts)))
    for d in stats["damage"]:
        print(f"{label('store.status_damage')}: {d}  (swabkiosk status --repair)")
    for r in stats.get("reports", []):
        values = {"what": r["what"], "at": when(r["at"]), "kept": r["kept"], "lost": r["lost"],
                  "moved": r["moved_to"] or "", "note": r.get("note", "")}
        print(zh("store.report_line", attention=zh("store.attention") if r.get("lost") else "", **values))
        print(en("store.report_line", attention=en("store.attention") if r.get("lost") else "", **values))
    return 0


def _pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (a Chinese character takes two)."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - used)


def _repair(data_dir: str, as_json: bool) -> int:
    try:
        report = Store.repair(data_dir)
    except StoreError as exc:
        return fail(exc, as_json)
    except OSError as exc:
        print(lines("repair.failed", problem=str(exc)), file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"repaired": report}, ensure_ascii=False, indent=1))
    elif not report:
        print(" / ".join(both("repair.intact")))
    else:
        for e in report:
            print(lines("repair.done", kept=e["kept"], lost=e["lost"], moved=e["moved_to"], note=e["note"]))
    return 0


# ---------------------------------------------------------------- tube


def _person(rec: dict) -> tuple[str, str]:
    person = rec.get("person")
    fields = person if isinstance(person, dict) else rec  # nested, or flat in older records
    return str(fields.get("name", "")), str(fields.get("id_number", ""))


def tube_report(records: list[dict], tube_id: str) -> dict[str, Any]:
    """Who was in ``tube_id``: its samples, voids applied, replacements followed (unmasked)."""
    replaced_by = replaces = None
    for rec in records:
        if rec.get("kind") == "tube_replace":
            old, new = replacement(rec)
            if old == tube_id:
                replaced_by = new
            if new == tube_id:
                replaces = old
    # a replacement tube holds the people of the broken one; follow the chain back
    sources = [tube_id]
    while replaces and replaces not in sources:
        sources.append(replaces)
        replaces = next((replacement(r)[0] for r in records
                         if r.get("kind") == "tube_replace" and replacement(r)[1] == replaces), None)
    voided = {void_target(r): r for r in records if r.get("kind") == "void"}
    people: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for rec in records:
        if rec.get("tube_id") not in sources and not (rec.get("kind") == "tube_replace" and tube_id in replacement(rec)):
            continue
        kind = rec.get("kind")
        if kind == "sample":
            name, number = _person(rec)
            void = voided.get(rec["record_id"])
            people.append({
                "record_id": rec["record_id"], "seq": rec.get("seq"), "at": rec.get("at"),
                "name": name, "id_number": number, "colour": rec.get("colour"), "source": rec.get("source"),
                "single_reason": rec.get("single_reason"), "from_tube": rec.get("tube_id") if rec.get("tube_id") != tube_id else None,
                "void": void is not None, "void_record_id": void["record_id"] if void else None,
            })
        elif kind != "void":
            events.append({"kind": kind, "at": rec.get("at"), "record_id": rec["record_id"], "tube_id": rec.get("tube_id"),
                           **{k: rec[k] for k in ("reason", "box_id", "old_tube_id") if k in rec}})
    # a voided entry's swab is still physically in the tube (docs/records.md): shown, not counted as a person
    return {"tube_id": tube_id, "replaced_by": replaced_by, "replaces": sources[1] if len(sources) > 1 else None,
            "count": sum(not p["void"] for p in people), "voided": sum(p["void"] for p in people),
            "people": people, "events": events}


def tube(argv: list[str]) -> int:
    p = parser("tube", "Who was in a tube (names and ID numbers masked), voids and replacements shown.")
    p.add_argument("tube_id", metavar="TUBE_ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    try:
        store = open_store(args)
    except StoreError as exc:
        return fail(exc, args.json)
    with store:
        report = tube_report(tube_chain(store, args.tube_id), args.tube_id)
    for person in report["people"]:  # nothing unmasked leaves this command
        person["name"] = mask_name(person["name"])
        person["id_number"] = mask_id(person["id_number"])
    if not report["people"] and not report["events"]:
        msg = dict(zip(("error_zh", "error"), both("store.tube_not_found", tube=args.tube_id)))
        print(json.dumps(msg, ensure_ascii=False) if args.json else f"{msg['error_zh']}\n{msg['error']}",
              file=sys.stdout if args.json else sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return 0
    voided = f" (+{report['voided']} {label('store.tube_voided')})" if report["voided"] else ""
    print(f"{label('store.tube_label')} {report['tube_id']}: {report['count']} {label('store.unit_people')}{voided}")
    if report["replaces"]:
        print("  " + "  ".join(both("store.tube_replaces", tube=report["replaces"])))
    if report["replaced_by"]:
        print("  " + "  ".join(both("store.tube_replaced_by", tube=report["replaced_by"])))
    for ev in report["events"]:
        extra = f" ({ev['reason']})" if ev.get("reason") else ""
        print(f"  {when(ev['at'])}  {ev['kind']} {ev['tube_id'] or ''}{extra}")
    for n, person in enumerate(report["people"], 1):
        flag = f"  {label('store.tube_void_by')} {person['void_record_id']}" if person["void"] else ""
        moved = f"  {label('store.tube_from')} {person['from_tube']}" if person["from_tube"] else ""
        single = f"  {label('store.tube_single')}: {person['single_reason']}" if person["single_reason"] else ""
        print(f"  {n:>2}. {when(person['at'])}  {person['name']:<6} {person['id_number']}  "
              f"{person['colour'] or ''}  {person['source'] or ''}  {person['record_id']}{moved}{single}{flag}")
    return 0
