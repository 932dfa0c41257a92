"""The day list a district opens in Excel: one sheet of people per day, a tube sheet, a box sheet.

Written with openpyxl in write-only mode (streams rows: a 10,000-person day stays small in
memory). Every cell is a string or a number chosen here, never a formula: ID numbers and
phones are text cells (format ``@``), so Excel keeps leading zeros and the ``X`` check
character and never shows ``4.40104E+17``. Control characters are stripped (they are not
allowed in XLSX and have no business in a name).
"""

from __future__ import annotations

import io

from firmware_app.register import (CLOSE_ZH, COLOUR_ZH, ID_TYPE_ZH, POOL_ZH, SINGLE_ZH, SOURCE_ZH, Register,
                                   pool_text, write_private)
from firmware_app.textsafe import strip_controls

PEOPLE_COLUMNS = [("序号 No.", 7), ("试管 Tube", 18), ("管内序号 Pos.", 8), ("姓名 Name", 14), ("证件类型 ID type", 10),
                  ("证件号码 ID number", 22), ("电话 Phone", 16), ("码色 Code", 8), ("单管原因 Single", 14),
                  ("录入方式 Source", 10), ("时间 Time", 20), ("作废 Void", 8), ("原管 From tube", 18),
                  ("采样人 Sampler", 12), ("转运箱 Box", 18), ("记录号 Record id", 30)]
TEXT_COLUMNS = {"证件号码 ID number", "电话 Phone", "试管 Tube", "原管 From tube", "转运箱 Box", "记录号 Record id"}
TUBE_COLUMNS = [("试管 Tube", 18), ("日期 Day", 11), ("混采模式 Pool", 16), ("开管 Opened", 10), ("封管 Closed", 10),
                ("封管原因 Reason", 10), ("人数(不含作废) People", 10), ("作废 Voided", 8), ("替换自 Replaces", 18),
                ("已替换为 Replaced by", 18), ("采样人 Sampler", 12), ("转运箱 Box", 18)]
BOX_COLUMNS = [("转运箱 Box", 18), ("开箱 Opened", 20), ("封箱 Closed", 20), ("管数 Tubes", 8),
               ("人数(不含作废) People", 10), ("转运人 Courier", 14), ("交接时间 Handed over", 20), ("试管 Tube ids", 60)]


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
        ws = sheet(day, PEOPLE_COLUMNS, f"{reg.site_name} {reg.table} {day}: {people} 人 people "
                                        f"(不含作废 {voided} 人次 / {voided} voided entries not counted; "
                                        f"they are listed with 作废 = 是). 含完整身份证号 FULL ID numbers.")
        n = 0
        for t in tubes:
            for pos, p in enumerate(t.people, 1):
                n += 1
                row(ws, PEOPLE_COLUMNS, [
                    n, t.tube_id, pos, p.name, ID_TYPE_ZH.get(p.id_type, p.id_type), p.id_number, p.phone,
                    COLOUR_ZH.get(p.colour, p.colour or ""), SINGLE_ZH.get(p.single_reason or "", p.single_reason or ""),
                    SOURCE_ZH.get(p.source, p.source), _when(p.at), "是 void" if p.void else "", p.from_tube or "",
                    reg.sampler(t), t.box_id or "", p.record_id])
    ws = sheet("试管 tubes", TUBE_COLUMNS, f"{len(reg.tubes)} 管 tubes; 人数不含作废 / people exclude voided entries")
    for t in reg.tubes:
        row(ws, TUBE_COLUMNS, [t.tube_id, t.day, pool_text(t), t.opened_at[11:19], t.closed_at[11:19],
                               "已替换 replaced" if t.replaced_by else CLOSE_ZH.get(t.close_reason, t.close_reason),
                               0 if t.replaced_by else t.count, 0 if t.replaced_by else t.voided, t.replaces or "",
                               t.replaced_by or "", reg.sampler(t), t.box_id or ""])
    ws = sheet("转运箱 boxes", BOX_COLUMNS, f"{len(reg.boxes)} 箱 boxes; 人数不含作废 / people exclude voided entries")
    tubes = {t.tube_id: t for t in reg.tubes}
    for b in reg.boxes.values():
        row(ws, BOX_COLUMNS, [b.box_id, _when(b.opened_at), _when(b.closed_at), len(b.tubes),
                              sum(tubes[x].count for x in b.tubes if x in tubes), b.courier, _when(b.handed_over_at),
                              " ".join(b.tubes)])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write_xlsx(reg: Register, path: str) -> int:
    data = build_xlsx(reg)
    write_private(path, data)
    return len(data)


__all__ = ["build_xlsx", "write_xlsx", "POOL_ZH"]
