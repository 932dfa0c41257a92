"""The register's A4 page (fpdf2): the title and the station line on top of every page, the
privacy note and the page number at the foot. Imported only when a register is made
(firmware_app.register_pdf): fpdf2 takes ~0.5 s to import."""

from __future__ import annotations

from fpdf import FPDF

from firmware_app.catalogue import zh


class RegisterPage(FPDF):
    def __init__(self, subtitle: str, generated_at: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.subtitle = subtitle
        self.generated_at = generated_at

    def header(self) -> None:
        self.set_font("cjk", size=14)
        self.cell(0, 8, zh("register.title"), align="C", new_x="LMARGIN", new_y="NEXT")
        self.set_font("cjk", size=9)
        self.cell(0, 5, self.subtitle, align="C", new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font("cjk", size=7)
        self.set_text_color(90)
        self.cell(0, 4, zh("register.footer", at=self.generated_at, page=self.page_no(), pages="{nb}"), align="C")
        self.set_text_color(0)
