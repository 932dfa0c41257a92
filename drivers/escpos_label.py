"""Label -> ESC/POS bytes, with no I/O (the printer shell sends them).

Bytes are produced by python-escpos itself (a byte-collecting ``Escpos``
subclass, like its ``Dummy`` printer) so the printer mock parses back exactly
what the library sends to a real printer.

Choices that matter on the 58 mm Chinese thermal printers at the tables
(Xprinter XP-58, ZJiang ZJ-5890 and the like, 384 dots, GB18030 font):

* Text: the label enters Chinese character mode (``FS &``) once and every
  line is sent as GB18030 bytes. In that mode ASCII bytes still print as
  ASCII, so one encoding covers a Chinese site name (e.g. "Guancheng stadium, table 3") and "DG03...".
  python-escpos' own ``text()`` picks single-byte code pages and cannot print
  Chinese, so lines go through ``_raw``. Characters outside GBK (4-byte
  GB18030) need a printer whose font has them; site names do not use them.
* Code128 in hardware (``GS k 73``): code set B for letters, code set C for a
  run of 4+ digits (two digits per symbol; ESC/POS takes code C as binary
  values 0-99). A tube id DG03 + yymmdd + nnnn is 290 dots wide at module
  width 2 instead of 378 in pure code B, which would leave no quiet zone on
  384-dot paper. A literal ``{`` is sent as ``{{`` (ESC/POS Code128 escape).
  That is ``barcode = "printer"`` ([devices.printer], the default). Some clone printers
  read code set C as ASCII and print nothing for it: ``barcode = "image"`` has
  python-escpos render the Code 128 itself (python-barcode, code sets chosen by it)
  and send it as a raster image (``GS v 0``, as ``barcode(..., force_software=
  "bitImageRaster")`` does): ~4 KB instead of ~40 bytes, but any printer that
  prints images prints it. ``swabkiosk probe printer --test-label`` prints both.
* QR in hardware (``GS ( k``, native=True): 0.04 ms and ~300 bytes against
  ~8 ms and ~4 KB as a raster image.
* ``Escpos.barcode()`` prints "Using hardware barcode renderer" on stdout on
  every call; we call its hardware renderer ``_hw_barcode`` directly (the
  same bytes, with the library's own validation) so the daemon's output
  stays clean without redirecting sys.stdout under other threads; the image
  mode calls ``_sw_barcode`` with the arguments ``barcode()`` passes it, for
  the same reason.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from drivers import said
from firmware_app.catalogue import both
from firmware_app.labels import box_label, manifest_label, probe_label, tube_label  # noqa: F401 (the one builder)
from firmware_app.model import Label

CHINESE_ON = b"\x1c&"  # FS &: Chinese character mode (GB18030 double-byte)
TEXT_ENCODING = "gb18030"
BARCODE_HEIGHT = 80  # dots: 10 mm at 203 dpi, easy for a handheld scanner
BARCODE_MODULE = 2  # dots per narrow bar: the narrowest python-escpos allows
QR_MODULE = 4  # dots per QR module
PAPER_COLUMNS = 32  # 384 dots / 12-dot font A
PAPER_DOTS = 384  # 58 mm paper
SOFTWARE_DPI = 180  # python-escpos' fallback: the image barcode's module is 2 dots at it
BARCODE_MODES = ("printer", "image")  # [devices.printer] barcode
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGIT_RUN = re.compile(r"\d{4,}")


class LabelError(ValueError):
    """A label that cannot be printed as asked (e.g. a barcode with non-ASCII)."""


def _escpos_class():
    """Import python-escpos on first use (it costs ~70-230 ms, see below)."""
    # python-escpos caches its parsed printer database as a pickle in a fresh
    # mkdtemp() per process unless told where: every import re-parses ~140 ms
    # of YAML and leaves a temp dir behind. Give it a persistent private cache.
    if "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
        base = os.environ.get("CACHE_DIRECTORY") or os.environ.get("XDG_CACHE_HOME") \
            or str(Path.home() / ".cache")
        cache = Path(base.split(":")[0]) / "swabkiosk-escpos"
        try:
            cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = cache.stat()
            # the library unpickles from there: only a directory no one else can write
            if st.st_uid == os.getuid() and not st.st_mode & 0o022:
                os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(cache)
        except OSError:  # read-only home: slower import, labels still print
            pass
    from escpos.escpos import Escpos

    class _Bytes(Escpos):
        def __init__(self) -> None:
            super().__init__()
            self.out = bytearray()

        def _raw(self, msg: bytes) -> None:
            self.out += msg

    return _Bytes


_BYTES_CLASS = None


def _printer():
    global _BYTES_CLASS
    if _BYTES_CLASS is None:
        _BYTES_CLASS = _escpos_class()
    return _BYTES_CLASS()


def code128_data(text: str) -> str:
    """The ESC/POS Code128 data for ``text``: code set B, C for digit runs."""
    if not text or any(not (32 <= ord(c) <= 126) for c in text):
        raise LabelError(said(both("printer.barcode_ascii", text=repr(text))))
    parts: list[str] = []
    pos = 0
    for m in _DIGIT_RUN.finditer(text):
        start, end = m.start(), m.end()
        if (end - start) % 2:  # an odd run keeps its first digit in code B
            start += 1
        if start > pos:
            parts.append("{B" + text[pos:start].replace("{", "{{"))
        digits = text[start:end]
        parts.append("{C" + "".join(chr(int(digits[i:i + 2])) for i in range(0, len(digits), 2)))
        pos = end
    if pos < len(text):
        parts.append("{B" + text[pos:].replace("{", "{{"))
    data = "".join(parts)
    if len(data) > 255:
        raise LabelError(said(both("printer.barcode_too_long", length=len(text))))
    return data


def columns(line: str) -> int:
    """Printed width in font-A columns: a Chinese character takes two.
    58 mm paper holds PAPER_COLUMNS; a longer line wraps on the printer."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _clean(line: str) -> str:
    # A control byte inside a line would be read by the printer as a command.
    return _CONTROL.sub(" ", line)


def sw_barcode(p, text: str) -> None:
    """The Code 128 of ``text`` rendered by python-escpos as a raster image (GS v 0), as
    ``p.barcode(text, "CODE128", force_software="bitImageRaster")`` renders it, without its
    print() on stdout, and with one difference: the module width in mm is rounded to 1 µm.
    barcode() passes exactly 2 dots' worth (2 × 25.4/180 mm), and python-barcode's float
    arithmetic then draws bars of 1 and 3 dots among the 2s, which zxing-cpp cannot read;
    0.282 mm draws every module 2 dots wide. Centred by the ESC a before it (the default
    profile has no paper width for python-escpos to centre by)."""
    code128_data(text)  # the same refusals as the printer's own barcode
    # The default profile has neither: python-escpos would print() a notice on stdout for
    # each label and take 180 dpi (its fallback; the image is sent in dots either way).
    media = p.profile.profile_data.setdefault("media", {})
    if not isinstance(media.get("dpi"), int):
        media["dpi"] = SOFTWARE_DPI
    width = media.setdefault("width", {})
    if not isinstance(width.get("pixels"), int):
        width["pixels"] = PAPER_DOTS
    mm_per_dot = 25.4 / p._dpi()
    p.set(align="center")
    p._sw_barcode("code128", text, impl="bitImageRaster", module_height=BARCODE_HEIGHT * mm_per_dot,
                  module_width=round(BARCODE_MODULE * mm_per_dot, 3), text_distance=3, font_size=9, center=False)


def render(label: Label, barcode: str = "printer") -> bytes:
    """ESC/POS bytes for one label: title, text lines, Code128, QR, feed and cut.
    ``barcode``: "printer" (its own Code 128, GS k) or "image" (rendered here, GS v 0)."""
    if barcode not in BARCODE_MODES:
        raise LabelError(said(both("printer.barcode_mode", choices=", ".join(BARCODE_MODES))) + f": {barcode!r}")
    p = _printer()
    p.hw("INIT")
    p._raw(CHINESE_ON)
    for i, line in enumerate(label.lines):
        if i == 0:
            # GS ! (custom size) doubles Chinese characters too; ESC ! would not.
            p.set(align="center", bold=True, custom_size=True, width=1, height=2)
        elif i == 1:
            p.set(align="left", bold=False, custom_size=True, width=1, height=1)
        p._raw(_clean(line).encode(TEXT_ENCODING, errors="replace") + b"\n")
    if label.barcode and barcode == "image":
        sw_barcode(p, label.barcode)
    elif label.barcode:
        p._hw_barcode(code128_data(label.barcode), "CODE128", height=BARCODE_HEIGHT,
                      width=BARCODE_MODULE, pos="BELOW", font="A", align_ct=True,
                      function_type="B")
    if label.qr:
        p.set(align="center")
        p.qr(label.qr, size=QR_MODULE, native=True)
    p.set(align="left", bold=False, custom_size=True, width=1, height=1)
    p.cut(mode="PART")
    return bytes(p.out)
