# The embeddable PNG of a survey's published results: one bar per department with enough answers,
# its index and 95% interval, for the account's articles (Pillow, drawn on request and cached).
from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from qr import FontNotFound, find_cjk_font

WIDTH, ROW, TOP, LEFT, RIGHT = 720, 34, 70, 220, 70
MAX_ROWS = 40
BRAND, MUTED, LINE = (192, 57, 43), (110, 110, 110), (225, 225, 225)


def _fonts(font_path: str | None):
    try:
        path = find_cjk_font(font_path or None)
        return ImageFont.truetype(str(path), 22), ImageFont.truetype(str(path), 16), True
    except (FontNotFound, OSError):
        return ImageFont.load_default(), ImageFont.load_default(), False


def results_chart_png(document: dict[str, Any], font_path: str | None = None) -> bytes:
    rows = [
        d for level in document["levels"] for c in level["categories"] for d in c["departments"]
        if not d["insufficient"] and d["index"] is not None
    ]  # fmt: skip
    rows.sort(key=lambda d: -d["index"])
    rows = rows[:MAX_ROWS]
    height = TOP + ROW * max(len(rows), 1) + 40
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    title_font, font, chinese = _fonts(font_path)
    title = document["title"] if chinese else document["survey"]
    draw.text((16, 14), title, fill=(30, 30, 30), font=title_font)
    caption = "满意度指数（0-100）与 95% 置信区间" if chinese else "index (0-100), 95% interval"
    draw.text((16, 44), caption, fill=MUTED, font=font)
    span = WIDTH - LEFT - RIGHT
    for i, d in enumerate(rows):
        y = TOP + i * ROW
        draw.line((LEFT, y + ROW - 2, WIDTH - RIGHT, y + ROW - 2), fill=LINE)
        draw.text((16, y + 6), (d["name"] if chinese else d["department"])[:11], fill=(30, 30, 30), font=font)
        x = LEFT + span * d["index"] / 100
        draw.rectangle((LEFT, y + 8, x, y + ROW - 10), fill=(240, 190, 184))
        low, high = LEFT + span * d["ci_low"] / 100, LEFT + span * d["ci_high"] / 100
        middle = y + (ROW - 2) // 2
        draw.line((low, middle, high, middle), fill=BRAND, width=2)
        draw.line((low, middle - 6, low, middle + 6), fill=BRAND, width=2)
        draw.line((high, middle - 6, high, middle + 6), fill=BRAND, width=2)
        draw.text((WIDTH - RIGHT + 8, y + 6), f"{d['index']:.1f}", fill=(30, 30, 30), font=font)
    if not rows:
        draw.text(
            (16, TOP + 6),
            "样本不足，暂无排名" if chinese else "not enough answers yet",
            fill=MUTED,
            font=font,
        )
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
