"""The paper register (混采检测登记表): one block per tube, built from the stored records.

Two halves, as everywhere in the kiosk:

* ``build_register(records)`` is pure: records in, a ``Register`` (tubes with their
  people, voids, replacements, boxes, couriers, samplers) out. The XLSX export and the
  PDF both read it, so the paper and the spreadsheet can never disagree on who was in
  a tube.
* ``write_pdf(register, path)`` lays it out on A4 with fpdf2 and a CJK font from Debian
  (``fonts-wqy-microhei``; see ``find_font``).

The register is the district's paper: it carries FULL ID numbers and phones (a
positive pooled tube must be recalled person by person). It is written 0600.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Iterable

POOL_ZH = {"1": "单采单检", "10": "10混1", "20": "20混1", "household": "一户一管"}
SINGLE_ZH = {"red_code": "红码单管", "yellow_code": "黄码单管", "key_person": "重点人群单管"}
COLOUR_ZH = {"green": "绿码", "yellow": "黄码", "red": "红码", None: "—"}
ID_TYPE_ZH = {"resident_id": "身份证", "passport": "护照", "none": "无证件"}
SOURCE_ZH = {"idcard": "读卡", "qr": "扫码", "manual": "手工录入"}
REPLACE_ZH = {"broken": "破损", "spilled": "洒漏"}
CLOSE_ZH = {"full": "满管", "manual": "手动封管", "end_of_queue": "排队结束", "end_of_shift": "签退封管",
            "mode_change": "切换模式"}

# Debian packages, smallest first (fonts-wqy-microhei: 1.6 MB download, 5.1 MB installed, Apache-2.0)
FONT_CANDIDATES = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # index 2: SC
)
FONT_ENV = "SWABKIOSK_CJK_FONT"


class RegisterError(Exception):
    def __init__(self, message: str, message_en: str):
        self.message, self.message_en = message, message_en
        super().__init__(message_en)


# --------------------------------------------------------------------------
# The document model (pure)
# --------------------------------------------------------------------------


@dataclass
class Person:
    record_id: str
    seq: int
    at: str
    name: str
    id_type: str
    id_number: str
    phone: str
    colour: str | None
    single_reason: str | None
    source: str
    key_person: bool = False
    duplicate_of: str | None = None
    void: bool = False
    void_reason: str | None = None
    from_tube: str | None = None  # moved here from a broken tube

    @property
    def manual(self) -> bool:
        return self.source == "manual"


@dataclass
class Tube:
    tube_id: str
    day: str = ""
    pool_mode: str = ""
    capacity: int | None = None
    single_reason: str | None = None
    opened_at: str = ""
    closed_at: str = ""
    close_reason: str = ""
    operators: list[str] = field(default_factory=list)  # certificate ids, in order of appearance
    people: list[Person] = field(default_factory=list)
    replaces: str | None = None  # the broken tube whose people were moved here
    replaced_by: str | None = None  # this tube broke: its people are in that tube now
    replace_reason: str = ""
    box_id: str | None = None

    @property
    def count(self) -> int:
        """People in the tube, voided entries NOT counted."""
        return sum(not p.void for p in self.people)

    @property
    def voided(self) -> int:
        return sum(p.void for p in self.people)


@dataclass
class Box:
    box_id: str
    opened_at: str = ""
    closed_at: str = ""
    tubes: list[str] = field(default_factory=list)
    courier: str = ""
    handed_over_at: str = ""


@dataclass
class Register:
    site: str
    site_name: str
    table: str
    district: str
    device_id: str
    days: list[str]
    tubes: list[Tube]
    boxes: dict[str, Box]
    operator_names: dict[str, str]

    @property
    def people(self) -> int:
        """People registered, voided entries NOT counted (a moved person is counted once)."""
        return sum(t.count for t in self.tubes if not t.replaced_by)

    @property
    def voided(self) -> int:
        return sum(t.voided for t in self.tubes if not t.replaced_by)

    def sampler(self, tube: Tube) -> str:
        names = [self.operator_names.get(op, op) for op in tube.operators]
        return "、".join(names) if names else "—"

    def only(self, tube_ids: Iterable[str]) -> Register:
        keep = set(tube_ids)
        tubes = [t for t in self.tubes if t.tube_id in keep]
        boxes = {b: box for b, box in self.boxes.items() if any(t.box_id == b for t in tubes)}
        return Register(self.site, self.site_name, self.table, self.district, self.device_id,
                        sorted({t.day for t in tubes if t.day}) or self.days, tubes, boxes, self.operator_names)


def _clock(at: str) -> str:
    """HH:MM:SS of a record's ISO local time, as the kiosk wrote it."""
    return at[11:19] if isinstance(at, str) and len(at) >= 19 else ""


def _void_target(rec: dict) -> str | None:
    for key in ("voided_record_id", "voids", "void_of"):
        if isinstance(rec.get(key), str):
            return rec[key]
    return None


def _str(value) -> str:
    return "" if value is None else str(value)


def build_register(records: Iterable[dict], site_name: str = "") -> Register:
    """Tubes (in the order they opened), each with its people in order, from a day's records."""
    records = sorted(records, key=lambda r: r.get("seq", 0))
    tubes: dict[str, Tube] = {}
    boxes: dict[str, Box] = {}
    names: dict[str, str] = {}
    samples: dict[str, tuple[Person, str]] = {}  # record_id -> (person, tube it is in now)
    first = next((r for r in records), {})

    def tube(tube_id: str) -> Tube:
        if tube_id not in tubes:
            tubes[tube_id] = Tube(tube_id)
        return tubes[tube_id]

    def box(box_id: str) -> Box:
        if box_id not in boxes:
            boxes[box_id] = Box(box_id)
        return boxes[box_id]

    for rec in records:
        kind, at = rec.get("kind"), _str(rec.get("at"))
        tid = rec.get("tube_id") if isinstance(rec.get("tube_id"), str) else None
        if kind == "shift_start" and rec.get("operator"):
            names[rec["operator"]] = _str(rec.get("operator_name")) or rec["operator"]
        elif kind == "tube_open" and tid:
            t = tube(tid)
            t.day, t.opened_at = at[:10], at
            t.pool_mode, t.capacity, t.single_reason = _str(rec.get("pool_mode")), rec.get("capacity"), rec.get("single_reason")
            if rec.get("operator") and rec["operator"] not in t.operators:
                t.operators.append(rec["operator"])
        elif kind == "sample" and tid:
            t = tube(tid)
            if not t.day:  # a tube opened on an earlier day than these records
                t.day = at[:10]
                t.pool_mode = t.pool_mode or _str(rec.get("pool_mode"))
                t.capacity = t.capacity or rec.get("capacity")
            p = Person(rec["record_id"], rec.get("seq", 0), at, _str(rec.get("name")), _str(rec.get("id_type")),
                       _str(rec.get("id_number")), _str(rec.get("phone")), rec.get("colour"), rec.get("single_reason"),
                       _str(rec.get("source")), bool(rec.get("key_person")), rec.get("duplicate_of"))
            t.people.append(p)
            samples[p.record_id] = (p, tid)
            if rec.get("operator") and rec["operator"] not in t.operators:
                t.operators.append(rec["operator"])
        elif kind == "void":
            target = _void_target(rec)
            if target in samples:
                samples[target][0].void = True
                samples[target][0].void_reason = _str(rec.get("reason")) or "mistaken_entry"
        elif kind == "tube_close" and tid:
            t = tube(tid)
            t.closed_at, t.close_reason = at, _str(rec.get("reason"))
        elif kind == "tube_replace" and tid:
            old_id = rec.get("old_tube_id")
            new = tube(tid)
            new.day = new.day or at[:10]
            new.opened_at = new.opened_at or at
            if isinstance(old_id, str):
                old = tube(old_id)
                new.replaces, old.replaced_by = old_id, tid
                new.replace_reason = old.replace_reason = _str(rec.get("reason")) or "broken"
                new.pool_mode, new.capacity = new.pool_mode or old.pool_mode, new.capacity or old.capacity
                new.single_reason = new.single_reason or old.single_reason
                moved = [samples[s] for s in rec.get("samples") or [] if s in samples]
                if not moved:  # samples not listed: every person of the old tube moves
                    moved = [(p, old_id) for p in old.people]
                for p, was in moved:
                    p.from_tube = p.from_tube or was
                    samples[p.record_id] = (p, tid)
                    new.people.append(p)
                old.people = [p for p in old.people if samples[p.record_id][1] == old_id]
            if rec.get("operator") and rec["operator"] not in new.operators:
                new.operators.append(rec["operator"])
        elif kind in ("box_open", "box_add", "box_close", "box_handover") and isinstance(rec.get("box_id"), str):
            b = box(rec["box_id"])
            if kind == "box_open":
                b.opened_at = at
            elif kind == "box_add" and tid:
                if tid not in b.tubes:
                    b.tubes.append(tid)
                tube(tid).box_id = b.box_id
            elif kind == "box_close":
                b.closed_at = at
                for t in rec.get("tubes") or []:
                    if isinstance(t, str) and t not in b.tubes:
                        b.tubes.append(t)
            else:
                b.courier, b.handed_over_at = _str(rec.get("courier")), at
    # the people moved out of a broken tube are listed where they are now: in the new tube
    for t in tubes.values():
        if not t.replaces:  # a replacement lists the moved people first, then who came after
            t.people.sort(key=lambda p: p.seq)
    kept = [t for t in tubes.values() if t.people or t.replaced_by]  # an opened, never used tube is no tube
    kept.sort(key=lambda t: (t.opened_at or "~", t.tube_id))
    days = sorted({t.day for t in kept if t.day} or {_str(first.get("at"))[:10]} - {""})
    return Register(site=_str(first.get("site")), site_name=site_name or _str(first.get("site")),
                    table=_str(first.get("table")), district=_str(first.get("district")),
                    device_id=_str(first.get("device_id")), days=days, tubes=kept, boxes=boxes, operator_names=names)


def pool_text(tube: Tube) -> str:
    if tube.single_reason:
        return f"单采单检（{SINGLE_ZH.get(tube.single_reason, tube.single_reason)}）"
    return POOL_ZH.get(tube.pool_mode, tube.pool_mode or "—")


# --------------------------------------------------------------------------
# The PDF (fpdf2)
# --------------------------------------------------------------------------


def find_font() -> tuple[str, int]:
    """The CJK font file to embed: $SWABKIOSK_CJK_FONT, else the first Debian font installed."""
    env = os.environ.get(FONT_ENV)
    if env:
        if not os.path.isfile(env):
            raise RegisterError(f"找不到字体文件 {env}（{FONT_ENV}）", f"font file {env} ({FONT_ENV}) not found")
        return env, 2 if "NotoSansCJK" in env and env.endswith(".ttc") else 0
    for path, index in FONT_CANDIDATES:
        if os.path.isfile(path):
            return path, index
    raise RegisterError("找不到中文字体：请安装 fonts-wqy-microhei（sudo apt-get install fonts-wqy-microhei）",
                        "no CJK font found: install the Debian package fonts-wqy-microhei "
                        f"(or set {FONT_ENV} to a .ttf/.ttc file)")


# column: (title, width mm)
COLUMNS = (("序号", 8), ("姓名", 21), ("证件号码", 38), ("证件", 12), ("电话", 24), ("码色", 10),
           ("单管原因", 18), ("录入", 16), ("时间", 14), ("备注", 25))
ROW_H = 6.0
MARGIN = 12.0


def _fpdf():
    try:
        from fpdf import FPDF
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RegisterError("缺少 fpdf2：请重新安装 swabkiosk", f"fpdf2 is not installed ({exc}); reinstall swabkiosk") from None
    return FPDF


def render_pdf(reg: Register, generated_at: str | None = None) -> bytes:
    """The register as A4 PDF bytes, one block per tube (a block never splits across pages)."""
    FPDF = _fpdf()
    font, index = find_font()
    generated_at = generated_at or dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    days = "、".join(reg.days) if reg.days else "—"

    class Doc(FPDF):
        def header(self):
            self.set_font("cjk", size=14)
            self.cell(0, 8, "混采检测登记表", align="C", new_x="LMARGIN", new_y="NEXT")
            self.set_font("cjk", size=9)
            self.cell(0, 5, f"采样点 {reg.site_name}    采样台 {reg.table}    日期 {days}    设备 {reg.device_id}",
                      align="C", new_x="LMARGIN", new_y="NEXT")
            self.ln(2)

        def footer(self):
            self.set_y(-11)
            self.set_font("cjk", size=7)
            self.set_text_color(90)
            self.cell(0, 4, f"含完整身份证号与电话，仅供区指挥部流调使用，请妥善保管 · 生成于 {generated_at} · "
                            f"第 {self.page_no()}/{{nb}} 页", align="C")
            self.set_text_color(0)

    pdf = Doc(orientation="P", unit="mm", format="A4")
    pdf.set_title(f"混采检测登记表 {reg.site_name} {reg.table} {days}")
    pdf.set_creator("swabkiosk")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(False)
    pdf.add_font("cjk", "", font, collection_font_number=index)
    pdf.alias_nb_pages()
    pdf.add_page()
    bottom = pdf.h - 14
    width = pdf.w - 2 * MARGIN

    pdf.set_font("cjk", size=9)
    summary = (f"共 {len(reg.tubes)} 管，{reg.people} 人（不含作废 {reg.voided} 人次；作废条目以删除线标出，"
               f"拭子仍在管中）")
    pdf.cell(0, 5, summary, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)

    for tube in reg.tubes:
        rows = max(len(tube.people), 1)
        need = 7 + 5 + 5 + ROW_H * (1 + rows) + 16
        if pdf.get_y() + need > bottom and pdf.get_y() > 40:
            pdf.add_page()
        _tube_block(pdf, reg, tube, width, bottom)
    _box_summary(pdf, reg, width, bottom)
    out = pdf.output()
    return bytes(out)


def _tube_block(pdf, reg: Register, tube: Tube, width: float, bottom: float) -> None:
    box = reg.boxes.get(tube.box_id or "")
    # the tube's header: id, pool mode, times, sampler, box
    pdf.set_fill_color(226, 232, 240)
    pdf.set_font("cjk", size=11)
    pdf.cell(width * 0.42, 7, f"试管 {tube.tube_id}", border="LT", fill=True)
    pdf.set_font("cjk", size=9)
    count = ("人员已转出" if tube.replaced_by else f"本管 {tube.count} 人"
             + (f"（另作废 {tube.voided} 人次）" if tube.voided else ""))
    pdf.cell(width * 0.58, 7, f"{pool_text(tube)}    {count}",
             border="TR", fill=True, align="R", new_x="LMARGIN", new_y="NEXT")
    if tube.replaced_by:
        close = "已替换"
    elif tube.closed_at:
        close = f"{_clock(tube.closed_at)}（{CLOSE_ZH.get(tube.close_reason, tube.close_reason)}）"
    else:
        close = "未封管"
    line = (f"日期 {tube.day or '—'}   开管 {_clock(tube.opened_at) or '—'}   封管 {close}   "
            f"采样人 {reg.sampler(tube)}   转运箱 {tube.box_id or '未装箱'}")
    pdf.cell(width, 5, line, border="LR", new_x="LMARGIN", new_y="NEXT")
    if tube.replaces or tube.replaced_by:
        pdf.set_text_color(170, 0, 0)
        why = REPLACE_ZH.get(tube.replace_reason, tube.replace_reason)
        note = (f"替换{why}管 {tube.replaces}：原管人员已转入本管（备注“原管转入”），需重新采样" if tube.replaces
                else f"本管{why}，不送检：人员已全部转入新管 {tube.replaced_by}，见该管登记")
        pdf.cell(width, 5, note, border="LR", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
    # the people
    if tube.people:
        pdf.set_font("cjk", size=8)
        grid = _Table(pdf, width)
        grid.header()
        for n, p in enumerate(tube.people, 1):
            if grid.y + ROW_H > bottom:  # a tube of 20 always fits a page; kept for safety
                grid.rules()
                pdf.add_page()
                pdf.set_font("cjk", size=8)
                grid.header()
            grid.person(n, p)
        grid.rules()
    # signatures (a broken tube is not shipped: nothing to sign for it)
    pdf.set_font("cjk", size=9)
    if not tube.replaced_by:
        pdf.ln(1.5)
        courier = box.courier if box and box.courier else ""
        handed = box.handed_over_at[:16].replace("T", " ") if box and box.handed_over_at else ""
        third = width / 3
        blank = "________________"
        pdf.cell(third, 6, f"采样人签字：{blank}")
        pdf.cell(third, 6, f"转运人签字：{blank}")
        pdf.cell(third, 6, f"接收人签字：{blank}", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(third, 6, "")
        pdf.cell(third, 6, f"转运人：{courier}  {handed}" if courier else f"转运时间：{blank}")
        pdf.cell(third, 6, f"接收时间：{blank}", new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.cell(width, 0, "", border="T", new_x="LMARGIN", new_y="NEXT")
    y1 = pdf.get_y()
    pdf.set_draw_color(120)
    pdf.line(pdf.l_margin, y1 + 1, pdf.l_margin + width, y1 + 1)
    pdf.set_draw_color(0)
    pdf.set_y(y1 + 3)


BOX_COLUMNS = (("转运箱", 40), ("封箱时间", 22), ("管数", 12), ("人数(不含作废)", 24), ("转运人", 30),
               ("交接时间", 26), ("接收人签字", 32))


def _box_summary(pdf, reg: Register, width: float, bottom: float) -> None:
    """The boxes of these tubes: what the courier took, to sign for at the lab."""
    tubes = {t.tube_id: t for t in reg.tubes}
    boxes = [b for b in reg.boxes.values() if any(x in tubes for x in b.tubes)]
    if not boxes:
        return
    if pdf.get_y() + 7 + ROW_H * (2 + len(boxes)) > bottom:
        pdf.add_page()
    scale = width / sum(w for _, w in BOX_COLUMNS)
    pdf.set_font("cjk", size=11)
    pdf.cell(width, 7, "转运箱交接汇总", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=8)
    pdf.set_fill_color(245, 245, 245)
    for title, w in BOX_COLUMNS:
        pdf.cell(w * scale, ROW_H, title, border=1, align="C", fill=True)
    pdf.ln(ROW_H)
    for b in boxes:
        if pdf.get_y() + ROW_H > bottom:
            pdf.add_page()
            pdf.set_font("cjk", size=8)
        people = sum(tubes[x].count for x in b.tubes if x in tubes)
        cells = (b.box_id, _clock(b.closed_at) or "未封箱", str(len(b.tubes)), str(people), b.courier or "",
                 b.handed_over_at[:16].replace("T", " ") if b.handed_over_at else "", "")
        for (title, w), text in zip(BOX_COLUMNS, cells):
            pdf.cell(w * scale, ROW_H, _fit(pdf, text, w * scale, 10), border=1,
                     align="L" if title in ("转运箱", "转运人") else "C")
        pdf.ln(ROW_H)


def _fit(pdf, text: str, width: float, limit: int) -> str:
    """Cut text to the column (only texts longer than ``limit`` characters are measured)."""
    if len(text) <= limit:
        return text
    while text and pdf.get_string_width(text) > width - 1.2:
        text = text[:-1]
    return text


def _remark(p: Person) -> str:
    remark = []
    if p.void:
        remark.append("作废")
    if p.from_tube:
        remark.append("原管转入")
    if p.duplicate_of:
        remark.append("当日重复已确认")
    if p.key_person and p.single_reason != "key_person":
        remark.append("重点人群")
    return " ".join(remark)


# characters a column's text may have before it is measured for cutting (8 pt)
_LIMITS = {"姓名": 6, "证件号码": 20, "电话": 14, "单管原因": 6, "备注": 8, "证件": 3, "录入": 5}
_CENTRED = ("序号", "码色", "证件", "时间")


class _Table:
    """The people of one tube as a grid: texts placed with FPDF.text() and the rules drawn once
    per block (FPDF.cell() per cell is ~9x slower: a 10,000-person day is 100,000 cells)."""

    def __init__(self, pdf, width: float):
        self.pdf, self.scale = pdf, width / 186
        self.xs = [pdf.l_margin]
        for _, w in COLUMNS:
            self.xs.append(self.xs[-1] + w * self.scale)
        self.widths: dict[str, float] = {}
        self.top = self.y = 0.0

    def _w(self, text: str) -> float:
        if text not in self.widths:
            self.widths[text] = self.pdf.get_string_width(text)
        return self.widths[text]

    def header(self) -> None:
        pdf = self.pdf
        self.top = self.y = pdf.get_y()
        pdf.set_fill_color(245, 245, 245)
        pdf.rect(self.xs[0], self.y, self.xs[-1] - self.xs[0], ROW_H, style="F")
        for i, (title, _) in enumerate(COLUMNS):
            pdf.text(self.xs[i] + (self.xs[i + 1] - self.xs[i] - self._w(title)) / 2, self.y + ROW_H * 0.68, title)
        self.y += ROW_H

    def person(self, n: int, p: Person) -> None:
        pdf = self.pdf
        source = SOURCE_ZH.get(p.source, p.source)
        cells = (str(n), p.name, p.id_number or "（无）", ID_TYPE_ZH.get(p.id_type, p.id_type), p.phone,
                 COLOUR_ZH.get(p.colour, p.colour or "—"), SINGLE_ZH.get(p.single_reason or "", p.single_reason or ""),
                 "※" + source if p.manual else source,  # ※: typed in, not read from a card or a signed code
                 _clock(p.at), _remark(p))
        grey = 110 if p.void else 0
        pdf.set_text_color(grey)
        base = self.y + ROW_H * 0.68
        for i, ((title, _), text) in enumerate(zip(COLUMNS, cells)):
            if not text:
                continue
            cw = self.xs[i + 1] - self.xs[i]
            text = _fit(pdf, text, cw, _LIMITS.get(title, 99))
            if title == "码色" and not p.void and p.colour in ("red", "yellow"):
                pdf.set_text_color(*((200, 0, 0) if p.colour == "red" else (170, 120, 0)))
            x = self.xs[i] + ((cw - self._w(text)) / 2 if title in _CENTRED else 0.8)
            pdf.text(x, base, text)
            if title == "码色":
                pdf.set_text_color(grey)
        if p.void:  # struck through: the entry stays readable, the swab is still in the tube
            pdf.set_draw_color(90)
            pdf.set_line_width(0.3)
            pdf.line(self.xs[1], self.y + ROW_H / 2, self.xs[-2], self.y + ROW_H / 2)
            pdf.set_line_width(0.2)
            pdf.set_draw_color(0)
        pdf.set_text_color(0)
        self.y += ROW_H

    def rules(self) -> None:
        pdf = self.pdf
        for k in range(round((self.y - self.top) / ROW_H) + 1):
            pdf.line(self.xs[0], self.top + k * ROW_H, self.xs[-1], self.top + k * ROW_H)
        for x in self.xs:
            pdf.line(x, self.top, x, self.y)
        pdf.set_xy(pdf.l_margin, self.y)


def write_pdf(reg: Register, path: str) -> int:
    """Write the register (0600, it holds full ID numbers); returns its size in bytes."""
    data = render_pdf(reg)
    write_private(path, data)
    return len(data)


def write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with open(fd, "wb", closefd=False) as f:
            f.write(data)
    finally:
        os.close(fd)
