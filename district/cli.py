"""``swabkiosk district run|status|tube``: the receiver and the district's questions."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", required=True, help="a SQLite file path (default kind) or a postgresql:// URL")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="swabkiosk district", description="The district receiver and its queries.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="receive every station's records until SIGTERM")
    run.add_argument("--broker", required=True,
                     help="mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT]; several comma-separated, tried in turn")
    _db_arg(run)
    run.add_argument("--username", default="")
    run.add_argument("--password-file", default="", help="a file holding the MQTT password")
    run.add_argument("--ca-file", default="")
    run.add_argument("--cert-file", default="")
    run.add_argument("--key-file", default="")
    run.add_argument("--client-id", default="",
                     help="default: the login (username or certificate CN), which the shipped broker config makes "
                          "the client id anyway; the broker keeps this receiver's session under it")
    run.add_argument("--share", default="swab-district",
                     help='shared-subscription group (receivers with one group split the load); "" = none')
    run.add_argument("--grace", type=float, default=3.0, help="seconds a gap may be open before a resend is asked")
    st = sub.add_parser("status", help="stations: records, last seq, open gaps, online, backlog")
    _db_arg(st)
    st.add_argument("--json", action="store_true")
    st.add_argument("--station", default=None, help="one device_id")
    tb = sub.add_parser("tube", help="who was in a tube: every record, full details (for recall)")
    tb.add_argument("tube_id", metavar="TUBE_ID")
    _db_arg(tb)
    tb.add_argument("--json", action="store_true")
    al = sub.add_parser("alerts", help="the newest red-code alerts, each with its person (for the duty phone)")
    _db_arg(al)
    al.add_argument("--json", action="store_true")
    al.add_argument("--limit", type=int, default=200)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        return _run(args)
    from district.db import DistrictDB

    db = DistrictDB(args.db)
    try:
        if args.cmd == "status":
            return _status(db, args)
        if args.cmd == "alerts":
            return _alerts(db, args)
        return _tube(db, args)
    finally:
        db.close()


def _run(args) -> int:
    from district.receiver import Receiver, ReceiverSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    password = ""
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.read().strip()
    rx = Receiver(ReceiverSettings(broker=args.broker, db=args.db, username=args.username, password=password,
                                   ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file,
                                   client_id=args.client_id, share=args.share, grace_s=args.grace))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: rx.stop.set())
    rx.run()
    logging.info("district: stopped (%s)", rx.counts)
    return 0


def _status(db, args) -> int:
    stations = db.stations(args.station)
    out = {"stations": {dev: {"records": s["records"], "last_seq": s["last_seq"], "gaps": s["gaps"],
                              "open_gaps": s["open_gaps"], "unrecoverable": s["unrecoverable"],
                              "online": s["online"], "backlog": s["backlog"],
                              "oldest_unsent_age_s": s["oldest_unsent_age_s"], "set_aside": s["set_aside"],
                              "root": s["root"], "status_at": s["status_at"]}
                        for dev, s in stations.items()}}
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
        return 0
    for dev, s in out["stations"].items():
        online = {True: "online", False: "OFFLINE", None: "?"}[s["online"]]
        gaps = ", ".join(f"{a}-{b}" for a, b in s["gaps"]) or "none"
        print(f"{dev} ({s['root']}): {online}, {s['records']} records, last seq {s['last_seq']}, "
              f"backlog {s['backlog']}, gaps {gaps}")
    return 0


def _alerts(db, args) -> int:
    alerts = db.alerts(max(1, min(args.limit, 10_000)))
    if args.json:
        print(json.dumps({"alerts": alerts}, ensure_ascii=False))
        return 0
    for a in alerts:
        who = a.get("sample") or {}
        print(f"{a.get('at', '')}  {a.get('device_id', '')}  {a.get('reason', '')}  tube {a.get('tube_id', '')}  "
              f"{who.get('name', '?')} {who.get('id_number', '?')} {who.get('phone', '')}")
    if not alerts:
        print("没有警报 / no alerts")
    return 0


def _tube(db, args) -> int:
    from firmware_app.store_cli import tube_report

    records = db.tube(args.tube_id)
    if not records:
        msg = {"error": f"tube {args.tube_id} not found", "error_zh": f"没有试管 {args.tube_id} 的记录"}
        print(json.dumps(msg, ensure_ascii=False) if args.json else f"{msg['error_zh']}\n{msg['error']}",
              file=sys.stdout if args.json else sys.stderr)
        return 1
    report = tube_report(records, args.tube_id)  # who is in it, voids applied, replacements followed
    report["records"] = records
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(f"试管 Tube {report['tube_id']}: {report['count']} 人 people ({report['voided']} voided)")
    for p in report["people"]:
        flag = "  VOID" if p["void"] else ""
        print(f"  {p['record_id']}  {p['name']}  {p['id_number']}  {p['colour']}{flag}")
    return 0
