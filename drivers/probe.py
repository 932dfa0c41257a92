"""`swabkiosk probe DEVICE ...`: one real read or print on one device, for technicians."""

from __future__ import annotations

import importlib
import sys

from firmware_app.catalogue import en

PROBES = {
    "idcard": "drivers.idcard_reader:probe",
    "scanner": "drivers.scanner:probe",
    "printer": "drivers.printer_probe:probe",
    "camera": "drivers.camera:probe",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in PROBES:
        print(en("device_error.probe_usage"), file=sys.stderr)
        return 2
    module_name, func = PROBES[argv[0]].split(":")
    return int(getattr(importlib.import_module(module_name), func)(argv[1:]) or 0)
