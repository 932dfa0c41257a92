"""`swabkiosk probe printer TARGET [--test-label] [--command-card] [--json]`: ask the printer's
status and optionally print the test label or the signed command card (drivers/printer.py
holds the transport and the queue)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from drivers import escpos_label, printer, said
from firmware_app.catalogue import both, en, zh
from firmware_app.model import Label


def probe(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="swabkiosk probe printer",
                                 description="Ask the printer's status; optionally print one label.")
    ap.add_argument("target", help="serial:/dev/ttyUSB0[:baud] | usb:VID:PID | tcp://HOST[:9100] | file:/dev/usb/lp0")
    ap.add_argument("--test-label", action="store_true",
                    help="print the test label twice: its barcode by the printer (barcode = \"printer\") and as an "
                         "image (barcode = \"image\"); keep the setting whose barcode scans")
    ap.add_argument("--command-card", action="store_true", help="print the signed command card (needs --key and --site)")
    ap.add_argument("--key", help="with --command-card: the operator (or district) Ed25519 private key that signs the "
                                  "cards (its public half in [authority] operator_keys)")
    ap.add_argument("--site", help="with --command-card: DISTRICT/SITE the cards work at, e.g. dongguan/guancheng")
    ap.add_argument("--settle", type=float, default=printer.SETTLE_S, metavar="SECONDS",
                    help="after each label, wait this long before asking the status again (the printer "
                         f"answers at once, before the label has fed out; default {printer.SETTLE_S:g}, as "
                         "[devices.printer] settle_s)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    if args.settle < 0:
        ap.error(said(both("printer.settle_negative", value=f"{args.settle:g}")))
    report: dict[str, Any] = {"target": args.target, "ok": False, "reason": "", "printed": []}
    try:
        target = printer.parse_target(args.target)
        labels: list[tuple[Label, str]] = []
        if args.test_label:
            at = time.strftime("%Y-%m-%d %H:%M:%S")
            labels += [(escpos_label.probe_label(args.target, at, mode), mode) for mode in escpos_label.BARCODE_MODES]
        if args.command_card:
            labels += [(label, "printer") for label in _command_card(args.key, args.site)]
        t0 = time.perf_counter()
        dev = printer.open_target(target)
        try:
            ok, key = printer.read_status(dev, target)
            report.update(ok=ok, reason=_said(key), status_reads=target.reads_status)
            for label, mode in labels:
                if not ok:
                    break
                data = escpos_label.render(label, mode)
                dev._raw(data)
                time.sleep(args.settle if target.reads_status else 0)  # see printer.SETTLE_S
                ok, key = printer.read_status(dev, target)
                report.update(ok=ok, reason=_said(key))
                if ok:
                    report["printed"].append({"kind": label.kind, "bytes": len(data), "barcode": mode})
        finally:
            printer.close(dev)
        report["seconds"] = round(time.perf_counter() - t0, 3)
    except printer.PrinterError as exc:
        report.update(reason=said(exc.words), raw=exc.raw)
    except ValueError as exc:
        report["reason"] = str(exc)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        verdict = both("device_error.verdict_ok" if report["ok"] else "device_error.verdict_fault")
        print(said((zh("printer.probe_verdict", target=args.target, verdict=verdict[0]),
                    en("printer.probe_verdict", target=args.target, verdict=verdict[1])))
              + (f" — {report['reason']}" if report["reason"] else ""))
        if report.get("raw"):
            print(f"  {report['raw']}")
        if report.get("status_reads") is False:
            print("  " + said(both("printer.probe_no_status")))
        for p in report["printed"]:
            if p["kind"] == "test":
                print("  " + said(both("printer.probe_printed_mode", kind=p["kind"], size=p["bytes"], mode=p["barcode"])))
            else:
                print("  " + said(both("printer.probe_printed", kind=p["kind"], size=p["bytes"])))
        if any(p["kind"] == "test" for p in report["printed"]):
            # the "printer" one proves code sets B and C print as ESC/POS specifies
            print("  " + said(both("printer.probe_scan_test", barcode=printer.TEST_BARCODE)))
            print("  " + said(both("printer.probe_both_scan")))
            print("  " + said(both("printer.probe_image_only")))
    return 0 if report["ok"] else 1


def _said(key: str) -> str:
    return said(both(key)) if key else ""


def _command_card(key_file: str | None, site: str | None) -> list[Label]:
    """The card's index, then one signed label per command code (drivers.command_card)."""
    try:
        from drivers import command_card as card
    except ImportError:
        raise printer.PrinterError("printer.no_command_card") from None
    if not key_file or not site or site.count("/") != 1:
        raise ValueError(said(both("printer.card_needs_site")))
    from firmware_app import qr

    try:
        key = qr.load_private_key(key_file)
    except (OSError, ValueError) as exc:
        raise ValueError(said(both("printer.card_key", path=key_file, problem=str(exc)))) from None
    district, site_id = site.split("/")
    return [card.command_card(district, site_id), *card.command_labels(key, district, site_id)]

