# The picture of a department's scan card (the 图文消息 a scan is answered with): the department's
# name large on the account's red, with the account's name and an invitation below. WeChat shows a
# news message's first picture at about 900 x 383 (2.35 : 1); the same size is drawn here.
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from .fonts import find_cjk_font, sibling_weight
from .poster import RED, WHITE, _draw_lines, fit_text

CARD_SIZE = (900, 383)
CARD_STYLE = "1"  # bump when the drawing changes: it is part of the picture's URL
LIGHT = (255, 226, 224)


def render_card(
    *,
    department_name: str,
    account_name: str,
    invitation: str = "请为我们的服务评价 · 约一分钟",
    font_path: Path | None = None,
) -> bytes:
    """PNG bytes of a department's card picture."""
    if not department_name.strip():
        raise ValueError("department_name must not be empty")
    regular = sibling_weight(find_cjk_font(font_path), "Regular")
    bold = sibling_weight(regular, "Bold")
    width, height = CARD_SIZE
    image = Image.new("RGB", CARD_SIZE, RED)
    draw = ImageDraw.Draw(image)
    margin = 60
    name_font, name_lines = fit_text(
        department_name, bold, max_size=92, min_size=44, width=width - 2 * margin, max_lines=2
    )
    small_font, small_lines = fit_text(
        invitation, regular, max_size=34, min_size=24, width=width - 2 * margin, max_lines=1
    )
    account_font, account_lines = fit_text(
        account_name, regular, max_size=30, min_size=20, width=width - 2 * margin, max_lines=1
    )
    block = name_font.size * 1.25 * len(name_lines) + 24 + small_font.size * 1.3
    top = (height - block) / 2 - 10
    bottom = _draw_lines(draw, name_font, name_lines, centre_x=width / 2, top=top, fill=WHITE, leading=1.25)
    _draw_lines(draw, small_font, small_lines, centre_x=width / 2, top=bottom + 24, fill=LIGHT)
    draw.rectangle((0, height - 58, width, height), fill=(150, 20, 24))
    _draw_lines(draw, account_font, account_lines, centre_x=width / 2, top=height - 56, fill=LIGHT)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
