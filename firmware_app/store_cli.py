"""`swabkiosk status`, `swabkiosk tube TUBE_ID`, `swabkiosk export --day D --csv/--xlsx/--register FILE`.

They open the store read-only, so they work beside a running daemon and on an
SD card mounted read-only in a technician's laptop.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import sys
import time
import tomllib

from firmware_app.model import mask_id, mask_name
from firmware_app.store import Store, StoreError, record_day, record_time
from firmware_app.textsafe import csv_cell

DEFAULT_DATA_DIR = "/var/lib/swabkiosk"


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"swabkiosk {prog}", description=description)
    p.add_argument("--data-dir", help=f"store directory (default: [store] data_dir of --config, else {DEFAULT_DATA_DIR})")
    p.add_argument("--config", help="station file to take [store] data_dir from")
    return p


def _data_dir(args) -> str:
    if args.data_dir:
        return args.data_dir
    if args.config:
        try:
            with open(args.config, "rb") as f:
                return tomllib.load(f).get("store", {}).get("data_dir", DEFAULT_DATA_DIR)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(f"无法读取配置文件 {args.config}：{exc}\ncannot read the station file {args.config}: {exc}\n"
                             f"(check it with `swabkiosk config check {args.config}`)") from None
    return DEFAULT_DATA_DIR


def _open(args) -> Store:
    return Store(_data_dir(args), read_only=True)


def _fail(exc: StoreError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": exc.message_en, "error_zh": exc.message, "file": exc.path}, ensure_ascii=False))
    else:
        print(f"{exc.message}\n{exc.message_en}", file=sys.stderr)
    return 1


def _when(ts: float | str | None) -> str:
    """Unix seconds, or a record's ISO local time shown as the kiosk wrote it."""
    if not ts:
        return "—"
    if isinstance(ts, str):
        return ts[:19].replace("T", " ")
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- status


def broker_state(store: Store) -> dict:
    """What the uplink last recorded, checked against whether its process still lives."""
    up = store.get_meta("uplink") or {}
    running = _pid_alive(up.get("pid"))
    state = {
        "connected": bool(up.get("connected")) and running,
        "url": up.get("url", ""),
        "since": up.get("since"),
        "error": up.get("error", ""),
        "error_en": up.get("error_en", ""),
        "daemon_running": running,
    }
    if not up:
        state.update(error="从未连接过服务器", error_en="the uplink has never run on this store")
    elif not running:
        state.update(error="kiosk 程序未运行", error_en="the kiosk daemon is not running")
    return state


def status(argv: list[str]) -> int:
    p = _parser("status", "Backlog, archive, last acknowledgement and broker state of a store.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--repair", action="store_true",
                   help="set damaged store files aside (kept in damaged/) and keep every intact record")
    args = p.parse_args(argv)
    data_dir = _data_dir(args)
    if args.repair:
        return _repair(data_dir, args.json)
    try:
        store = Store(data_dir, read_only=True)
    except StoreError as exc:
        return _fail(exc, args.json)
    with store:
        stats = store.stats()
        broker = broker_state(store)
    out = {"data_dir": os.path.abspath(data_dir), **stats, "broker": broker}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    b = broker
    link = (f"已连接 connected  {b['url']}  (since {_when(b['since'])})" if b["connected"]
            else f"未连接 NOT connected  {b['url']}\n    {b['error']}\n    {b['error_en']}")
    free = f"{stats['free_bytes'] / 1e9:.1f} GB" if stats["free_bytes"] is not None else "—"
    print(f"""存储 Store            {out['data_dir']}
待上传 Backlog         {stats['backlog']} 人 people + {stats['backlog_events']} 事件 events
最早未上传 Oldest unsent {_age(stats['oldest_unsent_age_s'])}
已确认 Archived        {stats['archived']}
最后确认 Last ack      {_when(stats['last_ack_at'])}
服务器 Broker          {link}
剩余空间 Free space     {free}""")
    for d in stats["damage"]:
        print(f"注意 损坏 Damage: {d}  (swabkiosk status --repair)")
    for r in stats.get("reports", []):
        print(f"{'注意 ' if r.get('lost') else ''}{r['what']} {_when(r['at'])}: {r['kept']} 条保留 kept, "
              f"{r['lost']} 条无法恢复 lost; {r['moved_to'] or ''} {r.get('note', '')}")
    return 0


def _repair(data_dir: str, as_json: bool) -> int:
    try:
        report = Store.repair(data_dir)
    except StoreError as exc:
        return _fail(exc, as_json)
    except OSError as exc:
        print(f"修复失败 Repair failed: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"repaired": report}, ensure_ascii=False, indent=1))
    elif not report:
        print("存储完好，无需修复 / The store is intact; nothing to repair.")
    else:
        for e in report:
            print(f"已修复 Repaired: {e['kept']} 条记录保留 records kept, {e['lost']} 条无法恢复 could not be "
                  f"recovered; 损坏文件移至 damaged files kept at {e['moved_to']}; {e['note']}")
    return 0


# ---------------------------------------------------------------- tube


def _person(rec: dict) -> tuple[str, str]:
    person = rec.get("person") if isinstance(rec.get("person"), dict) else rec
    return str(person.get("name", "")), str(person.get("id_number", ""))


def _void_target(rec: dict) -> str | None:
    for key in ("voided_record_id", "voids", "void_of"):
        if isinstance(rec.get(key), str):
            return rec[key]
    return None


def _replacement(rec: dict) -> tuple[str | None, str | None]:
    """(broken tube, new tube) of a tube_replace record (docs/records.md: tube_id is the new one)."""
    if "old_tube_id" in rec:
        return rec.get("old_tube_id"), rec.get("tube_id")
    return rec.get("tube_id"), rec.get("new_tube_id")


def tube_report(records: list[dict], tube_id: str) -> dict:
    """Who was in ``tube_id``: its samples, voids applied, replacements followed (unmasked)."""
    replaced_by = replaces = None
    for rec in records:
        if rec.get("kind") == "tube_replace":
            old, new = _replacement(rec)
            if old == tube_id:
                replaced_by = new
            if new == tube_id:
                replaces = old
    # a replacement tube holds the people of the broken one; follow the chain back
    sources = [tube_id]
    while replaces and replaces not in sources:
        sources.append(replaces)
        replaces = next((_replacement(r)[0] for r in records
                         if r.get("kind") == "tube_replace" and _replacement(r)[1] == replaces), None)
    voided = {_void_target(r): r for r in records if r.get("kind") == "void"}
    people, events = [], []
    for rec in records:
        if rec.get("tube_id") not in sources and not (rec.get("kind") == "tube_replace" and tube_id in _replacement(rec)):
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


def _tube_chain(store: Store, tube_id: str) -> list[dict]:
    """The records of a tube and of the tubes a replacement chain links it to (by the tube index)."""
    found: dict[str, dict] = {}
    todo, seen = [tube_id], set()
    while todo:
        t = todo.pop()
        if t in seen or len(seen) > 50:
            continue
        seen.add(t)
        for rec in store.tube_records(t):
            found[rec["record_id"]] = rec
            if rec.get("kind") == "tube_replace":
                todo += [x for x in _replacement(rec) if isinstance(x, str)]
    return sorted(found.values(), key=lambda r: r.get("seq", 0))


def tube(argv: list[str]) -> int:
    p = _parser("tube", "Who was in a tube (names and ID numbers masked), voids and replacements shown.")
    p.add_argument("tube_id", metavar="TUBE_ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    try:
        store = _open(args)
    except StoreError as exc:
        return _fail(exc, args.json)
    with store:
        report = tube_report(_tube_chain(store, args.tube_id), args.tube_id)
    for person in report["people"]:  # nothing unmasked leaves this command
        person["name"] = mask_name(person["name"])
        person["id_number"] = mask_id(person["id_number"])
    if not report["people"] and not report["events"]:
        msg = {"error": f"tube {args.tube_id} not found in this store", "error_zh": f"本机没有试管 {args.tube_id} 的记录"}
        print(json.dumps(msg, ensure_ascii=False) if args.json else f"{msg['error_zh']}\n{msg['error']}",
              file=sys.stdout if args.json else sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return 0
    voided = f" (+{report['voided']} 作废 voided entries, swab still in the tube)" if report["voided"] else ""
    print(f"试管 Tube {report['tube_id']}: {report['count']} 人 people{voided}")
    if report["replaces"]:
        print(f"  替换自 replaces broken tube {report['replaces']} (its people were moved here)")
    if report["replaced_by"]:
        print(f"  已替换为 REPLACED by tube {report['replaced_by']}: these people are now in that tube")
    for ev in report["events"]:
        extra = f" ({ev['reason']})" if ev.get("reason") else ""
        print(f"  {_when(ev['at'])}  {ev['kind']} {ev['tube_id'] or ''}{extra}")
    for n, person in enumerate(report["people"], 1):
        flag = f"  作废 VOID by {person['void_record_id']}" if person["void"] else ""
        moved = f"  from {person['from_tube']}" if person["from_tube"] else ""
        single = f"  单管 single: {person['single_reason']}" if person["single_reason"] else ""
        print(f"  {n:>2}. {_when(person['at'])}  {person['name']:<6} {person['id_number']}  "
              f"{person['colour'] or ''}  {person['source'] or ''}  {person['record_id']}{moved}{single}{flag}")
    return 0


# ---------------------------------------------------------------- export

EXPORT_COLUMNS = ["record_id", "seq", "kind", "day", "time", "clock_synced", "tube_id", "name", "id_type",
                  "id_number", "phone", "colour", "source", "single_reason", "operator", "void_of", "reason",
                  "uploaded", "other"]


EXPORT_KNOWN = {"record_id", "seq", "kind", "at", "day", "clock_synced", "synced", "tube_id", "person", "name", "id_type",
                "id_number", "phone", "colour", "source", "single_reason", "operator", "reason", "schema",
                "voided_record_id", "voids", "void_of"}


def _cell(value) -> str:
    return csv_cell(value)  # no formulas in a spreadsheet, no control characters (firmware_app/textsafe.py)


class _Refused(Exception):
    def __init__(self, message: str, message_en: str, code: int = 2):
        self.message, self.message_en, self.code = message, message_en, code
        super().__init__(message_en)


def parse_day(text: str, today: dt.date | None = None) -> str:
    """A --day value: YYYY-MM-DD that is a real date (``today`` / ``yesterday`` for the kiosk's local date)."""
    today = today or dt.date.today()
    if text in ("today", "yesterday"):
        return (today - dt.timedelta(days=text == "yesterday")).isoformat()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise _Refused(f"日期格式应为 YYYY-MM-DD（如 2026-11-23）：{text!r}",
                       f"--day must be YYYY-MM-DD (e.g. 2026-11-23), not {text!r}")
    try:
        dt.date.fromisoformat(text)
    except ValueError as exc:
        raise _Refused(f"没有这一天：{text}（{exc}）", f"--day {text} is not a date ({exc})") from None
    return text


def _open_private(path: str):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise _Refused(f"无法写入 {path}：{exc.strerror}", f"cannot write {path}: {exc.strerror}", 1) from None
    return fd


def _write_csv(path: str, records: list[dict], sent: dict[str, bool]) -> None:
    with open(_open_private(path), "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(EXPORT_COLUMNS)
        for rec in records:
            person = rec.get("person") if isinstance(rec.get("person"), dict) else rec
            other = {k: v for k, v in rec.items() if k not in EXPORT_KNOWN}
            at = record_time(rec)
            w.writerow([_cell(v) for v in [
                rec["record_id"], rec.get("seq"), rec.get("kind"), record_day(rec),
                rec["at"][11:19] if isinstance(rec.get("at"), str) else (
                    time.strftime("%H:%M:%S", time.localtime(at)) if at is not None else ""),
                rec.get("clock_synced", rec.get("synced")), rec.get("tube_id"), person.get("name"),
                person.get("id_type"), person.get("id_number"), person.get("phone"), rec.get("colour"),
                rec.get("source"), rec.get("single_reason"), rec.get("operator"), _void_target(rec),
                rec.get("reason"), "yes" if sent[rec["record_id"]] else "no",
                json.dumps(other, ensure_ascii=False) if other else "",
            ]])


def _site_name(args) -> str:
    if args.site_name:
        return args.site_name
    if args.config:
        try:
            with open(args.config, "rb") as f:
                return str(tomllib.load(f).get("station", {}).get("site_name", ""))
        except (OSError, tomllib.TOMLDecodeError):
            return ""
    return ""


def _days_of(records: list[dict]) -> list[str]:
    return sorted({d for d in map(record_day, records) if d})


def _load(store: Store, args) -> tuple[list[dict], list[str], set[str] | None]:
    """(records, days, tube ids the document is limited to or None) for --day, --tube or --box."""
    if args.tube or args.box:
        what = args.tube or args.box
        found = _tube_chain(store, args.tube) if args.tube else store.box_records(args.box)
        if not found:
            raise _Refused(f"本机没有{'试管' if args.tube else '转运箱'} {what} 的记录",
                           f"{'tube' if args.tube else 'box'} {what} not found in this store", 1)
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
        limit = {args.tube} | {x for r in found if r.get("kind") == "tube_replace" for x in _replacement(r) if x}
    elif args.box:
        limit = {r["tube_id"] for r in found if r.get("kind") == "box_add" and r.get("tube_id")}
        limit |= {t for r in found if r.get("kind") == "box_close" for t in r.get("tubes") or []}
    return records, days, limit


def export(argv: list[str]) -> int:
    p = _parser("export", "Write records as CSV, as an Excel workbook (--xlsx) or as the paper register "
                          "(--register, A4 PDF, 混采检测登记表). Every file holds FULL ID numbers and phones "
                          "(the district needs them) and is written readable by its owner only (0600).")
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
        p.error("give at least one of --csv FILE, --xlsx FILE, --register FILE.pdf")
    if not (args.day or args.tube or args.box):
        p.error("give --day YYYY-MM-DD, --tube TUBE_ID or --box BOX_ID")
    if args.tube and args.box:
        p.error("--tube and --box exclude each other")
    if args.csv and (args.tube or args.box) and not args.day:
        p.error("--csv exports whole days: give --day (a tube or a box is --register or --xlsx)")
    try:
        args.day = list(dict.fromkeys(parse_day(d) for d in args.day))
        try:
            store = _open(args)
        except StoreError as exc:
            return _fail(exc, False)
        with store:
            records, days, limit = _load(store, args)
            if not records:
                raise _Refused(f"本机没有 {'、'.join(days)} 的记录，未写入文件（日期对吗？`swabkiosk status` 列出各日人数）",
                               f"no records of {', '.join(days)} in this store; nothing written (is the date right? "
                               f"`swabkiosk status` lists the days it holds)", 1)
            sent = {r["record_id"]: store.is_sent(r["record_id"]) for r in records} if args.csv else {}
        done = []
        if args.csv:
            _write_csv(args.csv, records, sent)
            done.append(args.csv)
        if args.xlsx or args.register:
            from firmware_app.register import RegisterError, build_register
            reg = build_register(records, _site_name(args))
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
                raise _Refused(exc.message, exc.message_en, 1) from None
            except OSError as exc:
                raise _Refused(f"无法写入 {exc.filename}：{exc.strerror}", f"cannot write {exc.filename}: {exc.strerror}",
                               1) from None
    except _Refused as exc:
        print(f"{exc.message}\n{exc.message_en}", file=sys.stderr)
        return exc.code
    voided_ids = {_void_target(r) for r in records if r.get("kind") == "void"}
    samples = [r for r in records if r.get("kind") == "sample"]
    if limit is not None:
        people, voided = reg.people, reg.voided
        what = f"{'试管' if args.tube else '转运箱'} {args.tube or args.box}"
        scope_zh = f"{what}（{len(reg.tubes)} 管）"
        scope = f"{'tube' if args.tube else 'box'} {args.tube or args.box} ({len(reg.tubes)} tubes)"
    else:
        voided = sum(r["record_id"] in voided_ids for r in samples)
        people = len(samples) - voided
        scope = scope_zh = "、".join(days)
        scope_zh += f"：{len(records)} 条记录"
        scope += f": {len(records)} records"
    files = "、".join(done)
    print(f"已导出 {scope_zh}，{people} 人（不含作废 {voided} 人次）→ {files}\n"
          f"Exported {scope}, {people} people (voided entries not counted: {voided}) "
          f"to {', '.join(done)}\n"
          f"注意：文件含完整身份证号和电话（区指挥部需要），仅本用户可读（0600）；请经安全渠道交付并及时删除。\n"
          f"Note: the files hold FULL ID numbers and phones (the district needs them); they are readable by you "
          f"only (0600). Hand them over by a secure channel and delete them afterwards.")
    return 0
