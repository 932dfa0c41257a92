"""The one label builder: what every printed label says (pure: text in, ``model.Label`` out).

The station builds tube, box and manifest labels with these functions; the printer driver
(``drivers/escpos_label.py``) only turns a Label into ESC/POS bytes. Lines are short enough
for 58 mm paper (32 columns, a Chinese character counting two). Every line is the zh-CN side
of a ``label.`` key of the catalogue (``firmware_app/catalogue/labels.py``): a label prints
Chinese with the English word beside it, so the lab and the courier read the same paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from firmware_app.catalogue import zh
from firmware_app.model import Label, Words, words


def _line(key: str, /, **values: Any) -> str:
    """One printed line: the zh-CN side of ``key`` (which carries its English beside it)."""
    return words(key, **values).zh


def _single(reason: str) -> Words:
    try:
        return words(f"person.single.{reason}")
    except KeyError:  # a reason the catalogue does not name: printed as it is
        return Words(reason, reason)


def pool_text(capacity: int, mode: str, single_reason: str | None) -> str:
    """How the tube is pooled, as the lab reads it (household is never "label.pool.n")."""
    if single_reason:
        return _line("label.pool.single", reason=_single(single_reason))
    if capacity == 1:
        return _line("label.pool.one")
    if mode == "household":
        return _line("label.pool.household")
    return _line("label.pool.n", capacity=capacity)


def _reprint(lines: list[str], reprint: bool) -> tuple[str, ...]:
    if reprint:
        lines.append(zh("label.reprint"))
    return tuple(lines)


def tube_label(tube_id: str, site_name: str, table: str, opened_at: str, capacity: int,
               single_reason: str | None = None, *, mode: str = "", reprint: bool = False) -> Label:
    """Tube label: Code128 of the tube id plus what the lab and courier read by eye.
    ``opened_at`` is already formatted local time (the core has the clock)."""
    lines = [site_name, _line("label.table", table=table, at=opened_at), pool_text(capacity, mode, single_reason), tube_id]
    return Label(kind="tube", barcode=tube_id, lines=_reprint(lines, reprint))


def box_label(box_id: str, site_name: str, table: str, closed_at: str, tubes: int, people: int,
              *, reprint: bool = False) -> Label:
    lines = [site_name, _line("label.table", table=table, at=closed_at), _line("label.box_count", tubes=tubes, people=people),
             box_id]
    return Label(kind="box", barcode=box_id, lines=_reprint(lines, reprint))


def manifest_label(box_id: str, site_name: str, closed_at: str,
                   tubes: Sequence[tuple[str, str, int, int]], *, sampler: str = "", courier: str = "",
                   reprint: bool = False) -> Label:
    """Transport manifest (``label.manifest``): every tube with its pooling and people (voids
    apart). ``tubes``: (tube id, pool text, people not voided, voided)."""
    lines = [_line("label.manifest_reprint" if reprint else "label.manifest"), _line("label.manifest_box", box_id=box_id),
             site_name, closed_at]
    if sampler:
        lines.append(_line("label.sampler", sampler=sampler))
    for n, (tube_id, pool, people, voided) in enumerate(tubes, 1):
        lines.append(_line("label.manifest_tube", n=n, tube_id=tube_id, pool=pool.split(" ")[0], people=people))
        if voided:  # a line of its own: 58 mm paper has 32 columns
            lines.append(_line("label.manifest_voided", voided=voided))
    lines.append(_line("label.manifest_total", tubes=len(tubes), people=sum(t[2] for t in tubes)))
    lines.append(_line("label.courier", courier=courier or "__________"))
    lines.append(_line("label.receiver"))
    return Label(kind="manifest", barcode=box_id, lines=tuple(lines))


def recall_slip(old_id: str, new_id: str, site_name: str, when: str, people: Sequence[str]) -> Label:
    """Who must come back to be swabbed again after a broken tube (masked, as on screen)."""
    lines = [_line("label.recall"), _line("label.recall_old", tube_id=old_id), _line("label.recall_new", tube_id=new_id),
             site_name, when, *(f"{n:>2}. {who}" for n, who in enumerate(people, 1)),
             _line("label.recall_total", people=len(people))]
    return Label(kind="manifest", barcode=new_id, lines=tuple(lines))


def probe_label(target: str, at: str, barcode: str = "printer") -> Label:
    """The test label; ``barcode`` names the setting it is printed with, on the label."""
    return Label(kind="test", barcode="SWABTEST123456", lines=(
        _line("label.probe"), _line("label.probe_charset"), _line("label.probe_target", target=target),
        _line("label.probe_time", at=at), f'barcode = "{barcode}"'), qr="SWABTEST")
