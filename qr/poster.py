# Printable A4 posters (150 dpi PNG) that put one department's survey QR code on a wall:
# account and survey in a red header band, the department in large bold type, the code, how to scan.
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .fonts import find_cjk_font, load_font, sibling_weight

A4_WIDTH_MM = 210.0
RED = (184, 25, 30)
INK = (17, 17, 17)
GREY = (85, 85, 85)
RULE = (200, 200, 200)
WHITE = (255, 255, 255)
QUIET_MODULES = 4  # the quiet zone the QR standard asks for
# Breaking before these (or after the openers) reads badly in Chinese.
_NO_LINE_START = set("）)」』》〉】，。、；：！？…·-")
_NO_LINE_END = set("（(「『《〈【")


def _qr_matrix(image: Image.Image) -> list[list[bool]] | None:
    """Recover the module grid of a clean QR image (ours or WeChat's showqrcode), else None."""
    gray = image.convert("RGBA")
    flat = Image.new("RGBA", gray.size, WHITE + (255,))
    flat.alpha_composite(gray)
    bw = flat.convert("L").point(lambda v: 255 if v >= 128 else 0)
    bbox = bw.point(lambda v: 255 - v).getbbox()
    if bbox is None:
        raise ValueError("qr_png holds no QR code (the image is blank)")
    x0, y0, x1, y1 = bbox
    px = bw.load()
    assert px is not None
    run = 0
    while x0 + run < x1 and px[x0 + run, y0] == 0:
        run += 1
    n = round(7 * (x1 - x0) / run) if run else 0
    if n < 21 or (n - 17) % 4 or abs((y1 - y0) - (x1 - x0)) > (x1 - x0) / n:
        return None
    mx, my = (x1 - x0) / n, (y1 - y0) / n
    grid = [[px[int(x0 + (i + 0.5) * mx), int(y0 + (j + 0.5) * my)] == 0 for i in range(n)] for j in range(n)]
    finder = [True] * 7
    corners = (grid[0][:7], grid[0][n - 7 :], grid[n - 1][:7], grid[6][:7])
    if any(row != finder for row in corners) or any(grid[1][1:6]) or any(grid[1][n - 6 : n - 1]):
        return None
    return grid


def _qr_block(qr_png: bytes, max_side: int) -> Image.Image:
    """The code with a 4-module quiet zone, as large as fits in `max_side`, crisp edges only."""
    source = Image.open(io.BytesIO(qr_png))
    grid = _qr_matrix(source)
    if grid is None:  # not a clean code image: scale it as it is, by an integer factor
        side = max(source.size)
        up, down = max(1, max_side // side), -(-side // max_side)  # down > 1 only if too big
        return source.convert("RGB").resize(
            (source.width * up // down, source.height * up // down), Image.Resampling.NEAREST
        )
    n = len(grid) + 2 * QUIET_MODULES
    small = Image.new("1", (n, n), 1)
    for j, row in enumerate(grid):
        for i, dark in enumerate(row):
            if dark:
                small.putpixel((i + QUIET_MODULES, j + QUIET_MODULES), 0)
    module = max(1, max_side // n)
    return small.resize((n * module, n * module), Image.Resampling.NEAREST).convert("RGB")


def _break_ok(text: str, i: int) -> bool:
    left, right = text[i - 1], text[i]
    if right in _NO_LINE_START or left in _NO_LINE_END:
        return False
    return not (left.isascii() and left.isalnum() and right.isascii() and right.isalnum())


def _two_lines(text: str, font: ImageFont.FreeTypeFont) -> list[str]:
    """Split into two lines of near-equal width, at a place where Chinese allows a break."""
    cuts = [i for i in range(1, len(text)) if _break_ok(text, i)] or list(range(1, len(text)))
    best = min(cuts, key=lambda i: max(font.getlength(text[:i]), font.getlength(text[i:].lstrip())))
    return [text[:best].rstrip(), text[best:].lstrip()]


def _ellipsize(text: str, font: ImageFont.FreeTypeFont, width: float, lines: int) -> list[str]:
    out: list[str] = []
    rest = text
    while rest and len(out) < lines:
        cut = len(rest)
        while cut > 1 and font.getlength(rest[:cut]) > width:
            cut -= 1
        out.append(rest[:cut])
        rest = rest[cut:].lstrip()
    if rest:
        last = out[-1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        out[-1] = last + "…"
    return out


def fit_text(
    text: str, font_path: Path, *, max_size: int, min_size: int, width: float, max_lines: int
) -> tuple[ImageFont.FreeTypeFont, list[str]]:
    """The largest size at which `text` fits `width` in up to `max_lines` lines (2 at most).

    One line is preferred while it keeps at least 3/4 of the full size; past `min_size`
    the text is cut with an ellipsis rather than made unreadable.
    """
    text = " ".join(text.split())
    sizes = range(max_size, min_size - 1, -2)
    one = next((s for s in sizes if load_font(font_path, s).getlength(text) <= width), None)
    if one is not None and (max_lines == 1 or one >= 0.75 * max_size or len(text) < 2):
        return load_font(font_path, one), [text]
    if max_lines >= 2:
        for size in sizes:
            if one is not None and one >= size:
                break
            font = load_font(font_path, size)
            lines = _two_lines(text, font)
            if all(font.getlength(line) <= width for line in lines):
                return font, lines
    if one is not None:
        return load_font(font_path, one), [text]
    font = load_font(font_path, min_size)
    return font, _ellipsize(text, font, width, max_lines)


def _draw_lines(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont,
    lines: list[str],
    *,
    centre_x: float,
    top: float,
    fill: tuple[int, int, int],
    leading: float = 1.3,
) -> float:
    """Draw centred lines, each in a box of `leading` x size; returns the bottom of the last box."""
    _, ink_top, _, ink_bottom = font.getbbox("中", anchor="ls")
    step = font.size * leading
    for k, line in enumerate(lines):
        # put the ideograph ink in the middle of the line box, whatever the font's metrics
        baseline = top + k * step + (step - (ink_bottom - ink_top)) / 2 - ink_top
        # centre the ink, not the advance: full-width （）。 carry blank half-ems
        ink_left, _, ink_right, _ = font.getbbox(line, anchor="ls")
        draw.text((centre_x - (ink_left + ink_right) / 2, baseline), line, font=font, fill=fill, anchor="ls")
    return top + len(lines) * step


def render_poster(
    *,
    qr_png: bytes,
    department_name: str,
    account_name: str,
    instruction: str = "微信扫一扫，评价我们的服务",
    survey_title: str | None = None,
    footer: str | None = None,
    font_path: Path | None = None,
    size: tuple[int, int] = (1240, 1754),
) -> bytes:
    """PNG bytes of a portrait poster; the default size is A4 at 150 dpi (dpi is set in the PNG)."""
    if not department_name.strip():
        raise ValueError("department_name must not be empty")
    regular_path = sibling_weight(find_cjk_font(font_path), "Regular")
    bold_path = sibling_weight(regular_path, "Bold")
    width, height = size
    s = width / 1240  # every length below is designed for 1240 px wide and scaled
    margin = round(90 * s)
    text_width = width - 2 * margin
    page = Image.new("RGB", size, WHITE)
    draw = ImageDraw.Draw(page)
    centre = width / 2

    # Header band: the account, then the survey, white on a restrained red.
    account_font, account_lines = fit_text(
        account_name,
        bold_path,
        max_size=round(64 * s),
        min_size=round(36 * s),
        width=text_width,
        max_lines=1,
    )
    title_fit = (
        fit_text(
            survey_title,
            regular_path,
            max_size=round(40 * s),
            min_size=round(28 * s),
            width=text_width,
            max_lines=2,
        )
        if survey_title and survey_title.strip()
        else None
    )
    band_pad = round(44 * s)
    band_height = band_pad * 2 + account_font.size * 1.3
    if title_fit:
        band_height += round(10 * s) + title_fit[0].size * 1.35 * len(title_fit[1])
    draw.rectangle((0, 0, width, band_height), fill=RED)
    y = _draw_lines(draw, account_font, account_lines, centre_x=centre, top=band_pad, fill=WHITE)
    if title_fit:
        _draw_lines(
            draw, title_fit[0], title_fit[1], centre_x=centre, top=y + round(10 * s), fill=WHITE, leading=1.35
        )

    # The department, as large as it fits in two lines.
    dept_font, dept_lines = fit_text(
        department_name,
        bold_path,
        max_size=round(112 * s),
        min_size=round(56 * s),
        width=text_width,
        max_lines=2,
    )
    y = _draw_lines(
        draw, dept_font, dept_lines, centre_x=centre, top=band_height + round(56 * s), fill=INK, leading=1.25
    )
    accent = round(60 * s)
    draw.rectangle((centre - accent, y + round(18 * s), centre + accent, y + round(24 * s)), fill=RED)
    qr_top = y + round(60 * s)

    # Bottom up: footer, then the instruction under the code.
    bottom = height - round(56 * s)
    if footer and footer.strip():
        foot_font, foot_lines = fit_text(
            footer,
            regular_path,
            max_size=round(28 * s),
            min_size=round(22 * s),
            width=text_width,
            max_lines=2,
        )
        foot_top = round(bottom - foot_font.size * 1.4 * len(foot_lines))
        _draw_lines(draw, foot_font, foot_lines, centre_x=centre, top=foot_top, fill=GREY, leading=1.4)
        draw.line(
            (margin, foot_top - round(20 * s), width - margin, foot_top - round(20 * s)),
            fill=RULE,
            width=max(1, round(2 * s)),
        )
        bottom = foot_top - round(44 * s)
    instr_font, instr_lines = fit_text(
        instruction,
        bold_path,
        max_size=round(60 * s),
        min_size=round(40 * s),
        width=text_width,
        max_lines=2,
    )
    instr_height = instr_font.size * 1.3 * len(instr_lines)
    gap = round(24 * s)

    # The code, framed outside its quiet zone; code and instruction centred in the space left.
    frame_pad = round(12 * s)
    room = min(bottom - qr_top - gap - instr_height, text_width) - 2 * frame_pad
    block = _qr_block(qr_png, int(min(room, 900 * s)))
    group = block.height + 2 * frame_pad + gap + instr_height
    left = round(centre - block.width / 2)
    top = round(qr_top + (bottom - qr_top - group) / 2 + frame_pad)
    draw.rounded_rectangle(
        (left - frame_pad, top - frame_pad, left + block.width + frame_pad, top + block.height + frame_pad),
        radius=round(16 * s),
        outline=RULE,
        width=max(2, round(3 * s)),
    )
    page.paste(block, (left, top))
    _draw_lines(
        draw, instr_font, instr_lines, centre_x=centre, top=top + block.height + frame_pad + gap, fill=RED
    )

    dpi = round(width / (A4_WIDTH_MM / 25.4))
    out = io.BytesIO()
    page.save(out, "PNG", dpi=(dpi, dpi))
    return out.getvalue()
