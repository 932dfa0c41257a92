"""`swabkiosk export --day D --csv/--xlsx/--register FILE` (also --tube T, --box B): a day, a tube
or a box for the district, as CSV, an Excel workbook (export_xlsx.py) or the paper register
(register.py). Every file holds full ID numbers and is written 0600. Texts:
firmware_app/catalogue/store.py (``export.``).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import sys
import time
from typing import Any

from firmware_app.catalogue import Lang, both, en, text, zh
from firmware_app.store import Store, StoreError, record_day, record_time
from firmware_app.store_cli_base import fail, open_store, parser, replacement, station_text, tube_chain, void_target
from firmware_app.textsafe import csv_cell

LANGS: tuple[Lang, ...] = ("zh-CN", "en")

EXPORT_COLUMNS = ["record_id", "seq", "kind", "day", "time", "clock_synced", "tube_id", "name", "id_type",
                  "id_number", "phone", "colour", "source", "single_reason", "operator", "void_of", "reason",
                  "uploaded", "other"]


EXPORT_KNOWN = {"record_id", "seq", "kind", "at", "day", "clock_synced", "synced", "tube_id", "person", "name", "id_type",
                "id_number", "phone", "colour", "source", "single_reason", "operator", "reason", "schema",
                "voided_record_id", "voids", "void_of"}


def _cell(value) -> str:
    return csv_cell(value)  # no formulas in a spreadsheet, no control characters (firmware_app/textsafe.py)


class _Refused(Exception):
    def __init__(self, words: tuple[str, str], code: int = 2):
        self.message, self.message_en = words
        self.code = code
        super().__init__(self.message_en)


def parse_day(text: str, today: dt.date | None = None) -> str:
    """A --day value: YYYY-MM-DD that is a real date (``today`` / ``yesterday`` for the kiosk's local date)."""
    today = today or dt.date.today()
    if text in ("today", "yesterday"):
        return (today - dt.timedelta(days=text == "yesterday")).isoformat()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise _Refused(both("export.day_format", text=repr(text)))
    try:
        dt.date.fromisoformat(text)
    except ValueError as exc:
        raise _Refused(both("export.no_such_day", text=text, problem=str(exc))) from None
    return text


def _open_private(path: str):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise _Refused(both("export.cannot_write", path=path, problem=exc.strerror), 1) from None
    return fd


def _write_csv(path: str, records: list[dict], sent: dict[str, bool]) -> None:
    with open(_open_private(path), "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(EXPORT_COLUMNS)
        for rec in records:
            person = _person_of(rec)
            other = {k: v for k, v in rec.items() if k not in EXPORT_KNOWN}
            at = record_time(rec)
            w.writerow([_cell(v) for v in [
                rec["record_id"], rec.get("seq"), rec.get("kind"), record_day(rec),
                rec["at"][11:19] if isinstance(rec.get("at"), str) else (
                    time.strftime("%H:%M:%S", time.localtime(at)) if at is not None else ""),
                rec.get("clock_synced", rec.get("synced")), rec.get("tube_id"), person.get("name"),
                person.get("id_type"), person.get("id_number"), person.get("phone"), rec.get("colour"),
                rec.get("source"), rec.get("single_reason"), rec.get("operator"), void_target(rec),
                rec.get("reason"), "yes" if sent[rec["record_id"]] else "no",
                json.dumps(other, ensure_ascii=False) if other else "",
            ]])


def _person_of(rec: dict[str, Any]) -> dict[str, Any]:
    """The person fields of a sample record (nested under "person", or flat in older records)."""
    person = rec.get("person")
    return person if isinstance(person, dict) else rec


def _days_of(records: list[dict]) -> list[str]:
    return sorted({d for d in map(record_day, records) if d})


def _load(store: Store, args) -> tuple[list[dict], list[str], set[str] | None]:  # noqa: C901
    """(records, days, tube ids the document is limited to or None) for --day, --tube or --box."""
    if args.tube or args.box:
        what = args.tube or args.box
        found = tube_chain(store, args.tube) if args.tube else store.box_records(args.box)
        if not found:
            kind = both("export.kind_tube" if args.tube else "export.kind_box")
            raise _Refused((zh("export.not_found", kind=kind[0], what=what), en("export.not_found", kind=kind[1], what=what)), 1)
        days = args.day or _days_of(found)
    else:
        days = args.day
    by_seq: dict[int, dict] = {}
    for day in days:
        for rec in store.iter_records(day):
            by_seq[rec["seq"]] = rec
    records = [by_seq[k] for k in sorted(by_seq)]
    limit = None
    if args.tube:
        limit = {args.tube} | {x for r in found if r.get("kind") == "tube_replace" for x in replacement(r) if x}
    elif args.box:
        limit = {r["tube_id"] for r in found if r.get("kind") == "box_add" and r.get("tube_id")}
        limit |= {t for r in found if r.get("kind") == "box_close" for t in r.get("tubes") or []}
    return records, days, limit


def export(argv: list[str]) -> int:
    p = parser("export", en("export.description"))
    which = p.add_argument_group("what to export (--day may be repeated; --tube and --box need no --day)")
    which.add_argument("--day", action="append", default=[], metavar="YYYY-MM-DD",
                       help="the kiosk's local date; 'today' and 'yesterday' work too")
    which.add_argument("--tube", metavar="TUBE_ID", help="one tube (and the tubes a replacement links it to)")
    which.add_argument("--box", metavar="BOX_ID", help="the tubes of one transport box")
    out = p.add_argument_group("output (at least one)")
    out.add_argument("--csv", metavar="FILE", help="every record, UTF-8 with BOM (see docs/exports.md for Excel)")
    out.add_argument("--xlsx", metavar="FILE", help="Excel workbook: people per day, tubes, boxes; ID numbers as text")
    out.add_argument("--register", metavar="FILE.pdf", help="the paper register: A4 PDF, one block per tube, to sign")
    p.add_argument("--site-name", help="site name printed on the register (default: [station] site_name of --config)")
    args = p.parse_args(argv)
    if not (args.csv or args.xlsx or args.register):
        p.error(en("export.need_output"))
    if not (args.day or args.tube or args.box):
        p.error(en("export.need_what"))
    if args.tube and args.box:
        p.error(en("export.tube_or_box"))
    if args.csv and (args.tube or args.box) and not args.day:
        p.error(en("export.csv_days"))
    try:
        args.day = list(dict.fromkeys(parse_day(d) for d in args.day))
        # read before any file is written: a station file that cannot be read stops the export whole
        site_name = (args.site_name or station_text(args, "station", "site_name", "")) if args.xlsx or args.register else ""
        try:
            store = open_store(args)
        except StoreError as exc:
            return fail(exc, False)
        with store:
            records, days, limit = _load(store, args)
            if not records:
                raise _Refused((zh("export.no_records", days=_listed(days, "zh-CN")),
                                en("export.no_records", days=_listed(days, "en"))), 1)
            sent = {r["record_id"]: store.is_sent(r["record_id"]) for r in records} if args.csv else {}
        done = []
        if args.csv:
            _write_csv(args.csv, records, sent)
            done.append(args.csv)
        if args.xlsx or args.register:
            from firmware_app.register import RegisterError, build_register
            reg = build_register(records, site_name)
            if limit is not None:
                reg = reg.only(limit)
            try:
                if args.xlsx:
                    from firmware_app.export_xlsx import write_xlsx
                    write_xlsx(reg, args.xlsx)
                    done.append(args.xlsx)
                if args.register:
                    from firmware_app.register import write_pdf
                    write_pdf(reg, args.register)
                    done.append(args.register)
            except RegisterError as exc:
                raise _Refused((exc.message, exc.message_en), 1) from None
            except OSError as exc:
                raise _Refused(both("export.cannot_write", path=exc.filename, problem=exc.strerror), 1) from None
    except _Refused as exc:
        print(f"{exc.message}\n{exc.message_en}", file=sys.stderr)
        return exc.code
    voided_ids = {void_target(r) for r in records if r.get("kind") == "void"}
    samples = [r for r in records if r.get("kind") == "sample"]
    scope: dict[Lang, str] = {}
    if limit is not None:
        people, voided = reg.people, reg.voided
        kind = both("export.kind_tube" if args.tube else "export.kind_box")
        for lang, kind_text in zip(LANGS, kind):
            scope[lang] = text("export.scope_tubes", lang, kind=kind_text, what=args.tube or args.box,
                               tubes=len(reg.tubes))
    else:
        voided = sum(r["record_id"] in voided_ids for r in samples)
        people = len(samples) - voided
        for lang in LANGS:
            scope[lang] = text("export.scope_days", lang, days=_listed(days, lang), records=len(records))
    for lang in LANGS:
        print(text("export.done", lang, scope=scope[lang], people=people, voided=voided, files=_listed(done, lang)))
    print("\n".join(both("export.privacy")))
    return 0


def _listed(items: list[str], lang: Lang) -> str:
    """Items joined as each language lists them (an enumeration comma in zh-CN)."""
    return text("export.list_sep", lang).join(items)
