"""The paper register (the catalogue's "register.title") as an A4 PDF: one block per tube (a
block never splits across pages), with fpdf2 and a CJK font from Debian
(``fonts-wqy-microhei``; see ``find_font``). It carries FULL ID numbers and phones (a positive
pooled tube must be recalled person by person), so it is written 0600."""

from __future__ import annotations

import datetime as dt
import os

from typing import Any

from firmware_app.catalogue import both, zh
from firmware_app.register_model import (CLOSE_ZH, COLOUR_ZH, ID_TYPE_ZH, REPLACE_ZH, SINGLE_ZH, SOURCE_ZH, Person,
                                         Register, RegisterError, Tube, _clock, pool_text)

NONE = "\u2014"  # an empty field on paper

# Debian packages, smallest first (fonts-wqy-microhei: 1.6 MB download, 5.1 MB installed, Apache-2.0)
FONT_CANDIDATES = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # index 2: SC
)
FONT_ENV = "SWABKIOSK_CJK_FONT"


def find_font() -> tuple[str, int]:
    """The CJK font file to embed: $SWABKIOSK_CJK_FONT, else the first Debian font installed."""
    env = os.environ.get(FONT_ENV)
    if env:
        if not os.path.isfile(env):
            raise RegisterError(*both("register.font_missing", path=env, env=FONT_ENV))
        return env, 2 if "NotoSansCJK" in env and env.endswith(".ttc") else 0
    for path, index in FONT_CANDIDATES:
        if os.path.isfile(path):
            return path, index
    raise RegisterError(*both("register.no_font", env=FONT_ENV))


# column: (name, width mm); its title is the catalogue's "register.col.<name>"
COLUMNS = (("n", 8), ("name", 21), ("id_number", 38), ("id_type", 12), ("phone", 24), ("colour", 10),
           ("single", 18), ("source", 16), ("time", 14), ("remark", 25))
ROW_H = 6.0
MARGIN = 12.0


def _page_class() -> Any:
    """The page class (firmware_app.register_page), imported when a register is made: fpdf2
    takes ~0.5 s to import, which `export --xlsx` and `status` never pay."""
    try:
        from firmware_app.register_page import RegisterPage
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RegisterError(*both("register.no_fpdf", error=exc)) from None
    return RegisterPage


def render_pdf(reg: Register, generated_at: str | None = None) -> bytes:
    """The register as A4 PDF bytes, one block per tube (a block never splits across pages)."""
    page_class = _page_class()
    font, index = find_font()
    generated_at = generated_at or dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    days = zh("register.days_sep").join(reg.days) if reg.days else "\u2014"
    subtitle = zh("register.subtitle", site=reg.site_name, table=reg.table, days=days, device=reg.device_id)
    pdf = page_class(subtitle, generated_at)
    pdf.set_title(zh("register.doc_title", site=reg.site_name, table=reg.table, days=days))
    pdf.set_creator("swabkiosk")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(False)
    pdf.add_font("cjk", "", font, collection_font_number=index)
    pdf.alias_nb_pages()
    pdf.add_page()
    bottom = pdf.h - 14
    width = pdf.w - 2 * MARGIN

    pdf.set_font("cjk", size=9)
    summary = zh("register.summary", tubes=len(reg.tubes), people=reg.people, voided=reg.voided)
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
    pdf.cell(width * 0.42, 7, zh("register.tube", tube=tube.tube_id), border="LT", fill=True)
    pdf.set_font("cjk", size=9)
    count = (zh("register.moved_out") if tube.replaced_by else zh("register.tube_count", count=tube.count)
             + (zh("register.tube_voided", voided=tube.voided) if tube.voided else ""))
    pdf.cell(width * 0.58, 7, f"{pool_text(tube)}    {count}",
             border="TR", fill=True, align="R", new_x="LMARGIN", new_y="NEXT")
    if tube.replaced_by:
        close = zh("register.replaced")
    elif tube.closed_at:
        close = zh("register.closed_at", time=_clock(tube.closed_at),
                   reason=CLOSE_ZH.get(tube.close_reason, tube.close_reason))
    else:
        close = zh("register.not_closed")
    line = zh("register.tube_line", day=tube.day or NONE, opened=_clock(tube.opened_at) or NONE, closed=close,
              sampler=reg.sampler(tube), box=tube.box_id or zh("register.not_boxed"))
    pdf.cell(width, 5, line, border="LR", new_x="LMARGIN", new_y="NEXT")
    if tube.replaces or tube.replaced_by:
        pdf.set_text_color(170, 0, 0)
        why = REPLACE_ZH.get(tube.replace_reason, tube.replace_reason)
        note = (zh("register.replaces", why=why, tube=tube.replaces) if tube.replaces
                else zh("register.replaced_by", why=why, tube=tube.replaced_by))
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
        pdf.cell(third, 6, zh("register.sign_sampler", blank=blank))
        pdf.cell(third, 6, zh("register.sign_courier", blank=blank))
        pdf.cell(third, 6, zh("register.sign_receiver", blank=blank), new_x="LMARGIN", new_y="NEXT")
        pdf.cell(third, 6, "")
        pdf.cell(third, 6, zh("register.courier", courier=courier, at=handed) if courier
                 else zh("register.handed_at", blank=blank))
        pdf.cell(third, 6, zh("register.received_at", blank=blank), new_x="LMARGIN", new_y="NEXT")
    else:
        pdf.cell(width, 0, "", border="T", new_x="LMARGIN", new_y="NEXT")
    y1 = pdf.get_y()
    pdf.set_draw_color(120)
    pdf.line(pdf.l_margin, y1 + 1, pdf.l_margin + width, y1 + 1)
    pdf.set_draw_color(0)
    pdf.set_y(y1 + 3)


# column: (name, width mm); its title is the catalogue's "register.box_col.<name>"
BOX_COLUMNS = (("box", 40), ("closed", 22), ("tubes", 12), ("people", 24), ("courier", 30),
               ("handed", 26), ("receiver", 32))


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
    pdf.cell(width, 7, zh("register.boxes"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=8)
    pdf.set_fill_color(245, 245, 245)
    for name, w in BOX_COLUMNS:
        pdf.cell(w * scale, ROW_H, zh(f"register.box_col.{name}"), border=1, align="C", fill=True)
    pdf.ln(ROW_H)
    for b in boxes:
        if pdf.get_y() + ROW_H > bottom:
            pdf.add_page()
            pdf.set_font("cjk", size=8)
        people = sum(tubes[x].count for x in b.tubes if x in tubes)
        cells = (b.box_id, _clock(b.closed_at) or zh("register.box_not_closed"), str(len(b.tubes)), str(people), b.courier or "",
                 b.handed_over_at[:16].replace("T", " ") if b.handed_over_at else "", "")
        for (name, w), text in zip(BOX_COLUMNS, cells):
            pdf.cell(w * scale, ROW_H, _fit(pdf, text, w * scale, 10), border=1,
                     align="L" if name in ("box", "courier") else "C")
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
        remark.append(zh("register.remark.void"))
    if p.from_tube:
        remark.append(zh("register.remark.from_tube"))
    if p.duplicate_of:
        remark.append(zh("register.remark.duplicate"))
    if p.key_person and p.single_reason != "key_person":
        remark.append(zh("register.remark.key_person"))
    return " ".join(remark)


# characters a column's text may have before it is measured for cutting (8 pt)
_LIMITS = {"name": 6, "id_number": 20, "phone": 14, "single": 6, "remark": 8, "id_type": 3, "source": 5}
_CENTRED = ("n", "colour", "id_type", "time")


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
        for i, (name, _) in enumerate(COLUMNS):
            title = zh(f"register.col.{name}")
            pdf.text(self.xs[i] + (self.xs[i + 1] - self.xs[i] - self._w(title)) / 2, self.y + ROW_H * 0.68, title)
        self.y += ROW_H

    def person(self, n: int, p: Person) -> None:
        pdf = self.pdf
        source = SOURCE_ZH.get(p.source, p.source)
        cells = (str(n), p.name, p.id_number or zh("register.no_id"), ID_TYPE_ZH.get(p.id_type, p.id_type), p.phone,
                 COLOUR_ZH.get(p.colour, p.colour or "—"), SINGLE_ZH.get(p.single_reason or "", p.single_reason or ""),
                 "※" + source if p.manual else source,  # ※: typed in, not read from a card or a signed code
                 _clock(p.at), _remark(p))
        grey = 110 if p.void else 0
        pdf.set_text_color(grey)
        base = self.y + ROW_H * 0.68
        for i, ((title, _), text) in enumerate(zip(COLUMNS, cells)):  # title: the column's name
            if not text:
                continue
            cw = self.xs[i + 1] - self.xs[i]
            text = _fit(pdf, text, cw, _LIMITS.get(title, 99))
            if title == "colour" and not p.void and p.colour in ("red", "yellow"):
                pdf.set_text_color(*((200, 0, 0) if p.colour == "red" else (170, 120, 0)))
            x = self.xs[i] + ((cw - self._w(text)) / 2 if title in _CENTRED else 0.8)
            pdf.text(x, base, text)
            if title == "colour":
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
