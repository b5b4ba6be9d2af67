# Plain QR codes for URLs (questionnaire links, WeChat ticket URLs), rendered locally.
# Error correction M: survives smudges on a printed poster without growing the code much.
from __future__ import annotations

import io

import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M


def _make(data: str) -> qrcode.QRCode:
    if not data:
        raise ValueError("QR code data must not be empty")
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=1, border=0)
    code.add_data(data)
    code.make(fit=True)
    return code


def qr_modules(data: str) -> list[list[bool]]:
    """The code's module matrix (True = dark), without a quiet zone."""
    return [list(row) for row in _make(data).get_matrix()]


def qr_image(data: str, *, box_size: int = 10, border: int = 4) -> Image.Image:
    """A black-on-white mode "1" image of the code, `border` modules of quiet zone around it."""
    if box_size < 1 or border < 0:
        raise ValueError("box_size must be >= 1 and border >= 0")
    matrix = qr_modules(data)
    n = len(matrix)
    small = Image.new("1", (n + 2 * border, n + 2 * border), 1)
    px = small.load()
    assert px is not None
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                px[x + border, y + border] = 0
    side = small.width * box_size
    return small.resize((side, side), Image.Resampling.NEAREST)


def url_qr_png(data: str, *, box_size: int = 10, border: int = 4) -> bytes:
    """PNG bytes of the QR code for `data` (error correction M)."""
    buf = io.BytesIO()
    qr_image(data, box_size=box_size, border=border).save(buf, "PNG", optimize=True)
    return buf.getvalue()
