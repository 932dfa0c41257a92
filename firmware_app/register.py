"""The paper register (the catalogue's "register.title"): one block per tube, built from the stored records.

Two halves, as everywhere in the kiosk:

* ``build_register(records)`` (firmware_app.register_model) is pure: records in, a ``Register`` (tubes with their
  people, voids, replacements, boxes, couriers, samplers) out. The XLSX export and the
  PDF both read it, so the paper and the spreadsheet can never disagree on who was in
  a tube.
* ``write_pdf(register, path)`` (firmware_app.register_pdf) lays it out on A4 with fpdf2 and a CJK font from Debian
  (``fonts-wqy-microhei``; see ``find_font``).

The register is the district's paper: it carries FULL ID numbers and phones (a
positive pooled tube must be recalled person by person). It is written 0600.
"""

from __future__ import annotations

from firmware_app.register_model import (CLOSE_ZH, COLOUR_ZH, ID_TYPE_ZH, POOL_ZH, REPLACE_ZH, SINGLE_ZH, SOURCE_ZH,
                                         Box, Person, Register, RegisterError, Tube, build_register, pool_text)
from firmware_app.register_pdf import FONT_CANDIDATES, FONT_ENV, find_font, render_pdf, write_pdf, write_private

__all__ = ["CLOSE_ZH", "COLOUR_ZH", "FONT_CANDIDATES", "FONT_ENV", "ID_TYPE_ZH", "POOL_ZH", "REPLACE_ZH", "SINGLE_ZH",
           "SOURCE_ZH", "Box", "Person", "Register", "RegisterError", "Tube", "build_register", "find_font",
           "pool_text", "render_pdf", "write_pdf", "write_private"]
