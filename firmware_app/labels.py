"""The one label builder: what every printed label says (pure: text in, ``model.Label`` out).

The station builds tube, box and manifest labels with these functions; the printer driver
(``drivers/escpos_label.py``) only turns a Label into ESC/POS bytes. Lines are short enough
for 58 mm paper (32 columns, a Chinese character counting two).
"""

from __future__ import annotations

from collections.abc import Sequence

from firmware_app.model import Label

SINGLE_ZH = {"red_code": "红码", "yellow_code": "黄码", "key_person": "重点人群"}
REPRINT = "补打 / reprint"


def pool_text(capacity: int, mode: str, single_reason: str | None) -> str:
    """How the tube is pooled, as the lab reads it (household is never "10混1")."""
    if single_reason:
        return f"单管 {SINGLE_ZH.get(single_reason, single_reason)} single"
    if capacity == 1:
        return "单采单检 single"
    if mode == "household":
        return "一户一管 household"
    return f"{capacity}混1 pool of {capacity}"


def tube_label(tube_id: str, site_name: str, table: str, opened_at: str, capacity: int,
               single_reason: str | None = None, *, mode: str = "", reprint: bool = False) -> Label:
    """Tube label: Code128 of the tube id plus what the lab and courier read by eye.
    ``opened_at`` is already formatted local time (the core has the clock)."""
    lines = [site_name, f"采样台 {table} {opened_at}", pool_text(capacity, mode, single_reason), tube_id]
    if reprint:
        lines.append(REPRINT)
    return Label(kind="tube", barcode=tube_id, lines=tuple(lines))


def box_label(box_id: str, site_name: str, table: str, closed_at: str, tubes: int, people: int,
              *, reprint: bool = False) -> Label:
    lines = [site_name, f"采样台 {table} {closed_at}", f"{tubes}管 {people}人 / tubes, people", box_id]
    if reprint:
        lines.append(REPRINT)
    return Label(kind="box", barcode=box_id, lines=tuple(lines))


def manifest_label(box_id: str, site_name: str, closed_at: str,
                   tubes: Sequence[tuple[str, str, int, int]], *, sampler: str = "", courier: str = "",
                   reprint: bool = False) -> Label:
    """Transport manifest (样本转运单): every tube with its pooling and people (voids apart).
    ``tubes``: (tube id, pool text, people not voided, voided)."""
    lines = ["转运清单 manifest" + (" 补打 reprint" if reprint else ""), f"箱 box {box_id}", site_name, closed_at]
    if sampler:
        lines.append(f"采样人 sampler {sampler}")
    for n, (tube_id, pool, people, voided) in enumerate(tubes, 1):
        lines.append(f"{n:>2}. {tube_id} {pool.split(' ')[0]} {people}人")
        if voided:  # a line of its own: 58 mm paper has 32 columns
            lines.append(f"    另作废 {voided} 人 voided")
    lines.append(f"共 {len(tubes)} 管 {sum(t[2] for t in tubes)} 人 / total")
    lines.append(f"转运人 courier: {courier or '__________'}")
    lines.append("接收人 receiver: __________")
    return Label(kind="manifest", barcode=box_id, lines=tuple(lines))


def recall_slip(old_id: str, new_id: str, site_name: str, when: str, people: Sequence[str]) -> Label:
    """Who must come back to be swabbed again after a broken tube (masked, as on screen)."""
    lines = ["召回单 recall", f"原管 {old_id}", f"新管 {new_id}", site_name, when,
             *(f"{n:>2}. {who}" for n, who in enumerate(people, 1)), f"共 {len(people)} 人须重新采样"]
    return Label(kind="manifest", barcode=new_id, lines=tuple(lines))


def probe_label(target: str, at: str, barcode: str = "printer") -> Label:
    """The test label; ``barcode`` names the setting it is printed with, on the label."""
    return Label(kind="test", barcode="SWABTEST123456", lines=(
        "打印测试 test label", "中文 GB18030 / ASCII ok", f"目标 target {target}", f"时间 {at}",
        f'barcode = "{barcode}"'), qr="SWABTEST")
