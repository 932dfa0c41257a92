"""The day list a district opens in Excel: one sheet of people per day, a tube sheet, a box sheet.

Written with openpyxl in write-only mode (streams rows: a 10,000-person day stays small in
memory). Every cell is a string or a number chosen here, never a formula: ID numbers and
phones are text cells (format ``@``), so Excel keeps leading zeros and the ``X`` check
character and never shows ``4.40104E+17``. Control characters are stripped (they are not
allowed in XLSX and have no business in a name).
"""

from __future__ import annotations

import io

from firmware_app.catalogue import both
from firmware_app.register import (CLOSE_ZH, COLOUR_ZH, ID_TYPE_ZH, POOL_ZH, SINGLE_ZH, SOURCE_ZH, Register,
                                   pool_text, write_private)
from firmware_app.textsafe import strip_controls

def _heading(key: str) -> str:
    """A column or sheet heading: "zh en" (the district reads both)."""
    return " ".join(both(key))


def _columns(*spec: tuple[str, int]) -> list[tuple[str, int]]:
    return [(_heading(f"export.col_{name}"), width) for name, width in spec]


PEOPLE_COLUMNS = _columns(("no", 7), ("tube", 18), ("pos", 8), ("name", 14), ("id_type", 10), ("id_number", 22),
                          ("phone", 16), ("colour", 8), ("single", 14), ("source", 10), ("time", 20), ("void", 8),
                          ("from_tube", 18), ("sampler", 12), ("box", 18), ("record_id", 30))
TEXT_COLUMNS = {_heading(f"export.col_{name}") for name in ("id_number", "phone", "tube", "from_tube", "box", "record_id")}
TUBE_COLUMNS = _columns(("tube", 18), ("day", 11), ("pool", 16), ("opened", 10), ("closed", 10), ("close_reason", 10),
                        ("people", 10), ("voided", 8), ("replaces", 18), ("replaced_by", 18), ("sampler", 12),
                        ("box", 18))
BOX_COLUMNS = _columns(("box", 18), ("box_opened", 20), ("box_closed", 20), ("tubes", 8), ("people", 10),
                       ("courier", 14), ("handed_over", 20), ("tube_ids", 60))


def _when(at: str) -> str:
    return at[:19].replace("T", " ") if at else ""


def build_xlsx(reg: Register) -> bytes:
    try:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RuntimeError(f"openpyxl is not installed ({exc}); reinstall swabkiosk") from None
    wb = Workbook(write_only=True)
    bold = Font(bold=True)

    def sheet(title: str, columns: list[tuple[str, int]], note: str):
        ws = wb.create_sheet(title)
        for i, (_, w) in enumerate(columns):
            ws.column_dimensions[chr(ord("A") + i)].width = w
        ws.freeze_panes = "A3"
        ws.append([note])
        header = []
        for name, _ in columns:
            c = WriteOnlyCell(ws, value=name)
            c.font = bold
            header.append(c)
        ws.append(header)
        return ws

    def row(ws, columns, values):
        cells = []
        for (name, _), v in zip(columns, values):
            if isinstance(v, str):
                if not v.isprintable():
                    v = strip_controls(v)
                if name in TEXT_COLUMNS or v[:1] == "=":
                    c = WriteOnlyCell(ws, value=v)
                    c.data_type = "s"  # a name that starts with "=" is text, never a formula
                    c.number_format = "@"
                    v = c
            cells.append(v)  # plain values are written as they are: faster than a cell object each
        ws.append(cells)

    by_day: dict[str, list] = {}
    for t in reg.tubes:
        if not t.replaced_by:  # a broken tube's people are listed in the tube they moved to
            by_day.setdefault(t.day or "unknown", []).append(t)
    for day in sorted(by_day) or reg.days or ["empty"]:
        tubes = by_day.get(day, [])
        people = sum(t.count for t in tubes)
        voided = sum(t.voided for t in tubes)
        ws = sheet(day, PEOPLE_COLUMNS, " ".join(both("export.day_title", site=reg.site_name, table=reg.table, day=day,
                                                      people=people, voided=voided)))
        n = 0
        for t in tubes:
            for pos, p in enumerate(t.people, 1):
                n += 1
                row(ws, PEOPLE_COLUMNS, [
                    n, t.tube_id, pos, p.name, ID_TYPE_ZH.get(p.id_type, p.id_type), p.id_number, p.phone,
                    COLOUR_ZH.get(p.colour, p.colour or ""), SINGLE_ZH.get(p.single_reason or "", p.single_reason or ""),
                    SOURCE_ZH.get(p.source, p.source), _when(p.at), _heading("export.yes_void") if p.void else "", p.from_tube or "",
                    reg.sampler(t), t.box_id or "", p.record_id])
    ws = sheet(_heading("export.sheet_tubes"), TUBE_COLUMNS, " / ".join(both("export.tubes_title", tubes=len(reg.tubes))))
    for t in reg.tubes:
        row(ws, TUBE_COLUMNS, [t.tube_id, t.day, pool_text(t), t.opened_at[11:19], t.closed_at[11:19],
                               _heading("export.replaced") if t.replaced_by else CLOSE_ZH.get(t.close_reason, t.close_reason),
                               0 if t.replaced_by else t.count, 0 if t.replaced_by else t.voided, t.replaces or "",
                               t.replaced_by or "", reg.sampler(t), t.box_id or ""])
    ws = sheet(_heading("export.sheet_boxes"), BOX_COLUMNS, " / ".join(both("export.boxes_title", boxes=len(reg.boxes))))
    by_id = {t.tube_id: t for t in reg.tubes}
    for b in reg.boxes.values():
        row(ws, BOX_COLUMNS, [b.box_id, _when(b.opened_at), _when(b.closed_at), len(b.tubes),
                              sum(by_id[x].count for x in b.tubes if x in by_id), b.courier, _when(b.handed_over_at),
                              " ".join(b.tubes)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write_xlsx(reg: Register, path: str) -> int:
    data = build_xlsx(reg)
    write_private(path, data)
    return len(data)


__all__ = ["build_xlsx", "write_xlsx", "POOL_ZH"]
