"""QR decoders for camera frames, selectable by name.

Both are restricted to QR codes: searching every symbology costs 3-10x more
per frame and the camera only reads QR (personal codes, operator
certificates). Frames are 2-D uint8 numpy arrays (grey).

  zxing  zxing-cpp (default): ~10x faster and reads blurred, dim and glared
         screens that zbar misses (see docs/camera.md for the numbers)
  zbar   pyzbar + libzbar0, as the design card names it
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from firmware_app.catalogue import both

Decoder = Callable[[np.ndarray], list[str]]
DECODERS = ("zxing", "zbar")


def make_decoder(name: str) -> Decoder:
    """The decode function for ``name``; imports only that library."""
    if name == "zxing":
        import zxingcpp

        qr = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)

        def decode(frame: np.ndarray) -> list[str]:
            return [r.text for r in zxingcpp.read_barcodes(frame, formats=qr) if r.valid]

        return decode
    if name == "zbar":
        from pyzbar.pyzbar import ZBarSymbol
        from pyzbar.pyzbar import decode as zbar_decode

        def decode(frame: np.ndarray) -> list[str]:
            h, w = frame.shape
            found = zbar_decode((frame.tobytes(), w, h), symbols=[ZBarSymbol.QRCODE])
            return [r.data.decode("utf-8", errors="replace") for r in found]

        return decode
    raise ValueError(" / ".join(both("camera.unknown_decoder", name=repr(name), choices=", ".join(DECODERS))))
