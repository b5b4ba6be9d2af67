# Finds a font that can draw Chinese for the posters, with no manual set-up on common systems,
# and loads the Simplified Chinese face out of .ttc collections.
from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

INSTALL_HINT = "install fonts-noto-cjk (Debian/Ubuntu) or set qr.font_path"

# Bold faces first within each family: posters use the bold face for headings and the
# regular one (see `sibling_weight`) for body text.
WELL_KNOWN_FONTS: tuple[str, ...] = (
    # Noto Sans CJK: Debian/Ubuntu, Fedora, Arch, Alpine
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto/NotoSansCJK-Regular.ttc",
    # Source Han Sans (same design, Adobe naming)
    "/usr/share/fonts/adobe-source-han-sans/SourceHanSansSC-Bold.otf",
    "/usr/share/fonts/adobe-source-han-sans/SourceHanSansSC-Regular.otf",
    "/usr/share/fonts/adobe-source-han-sans/SourceHanSans.ttc",
    "/usr/share/fonts/opentype/source-han-sans/SourceHanSans-Bold.ttc",
    "/usr/share/fonts/opentype/source-han-sans/SourceHanSans-Regular.ttc",
    # WenQuanYi, Droid Sans Fallback
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/wqy-zenhei/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/google-droid-sans-fonts/DroidSansFallbackFull.ttf",
    # macOS
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "/System/Library/Fonts/STHeiti Light.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    # Windows
    "C:/Windows/Fonts/msyhbd.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)

# Faces whose name says Simplified Chinese; "Mono" faces are skipped (narrow Latin).
_SC_MARKERS = (" SC", " CN", " GB", "Hans", "Simplified")


class FontNotFound(RuntimeError):
    """No usable Chinese font; the message says what to install or configure."""


@lru_cache(maxsize=64)
def sc_face_index(path: Path) -> int:
    """Index of the Simplified Chinese face in a .ttc/.otc collection (0 for single fonts)."""
    names: list[str] = []
    for index in range(64):
        try:
            names.append(
                " ".join(part or "" for part in ImageFont.truetype(str(path), 12, index=index).getname())
            )
        except OSError:
            break
    for marker in _SC_MARKERS:
        for index, name in enumerate(names):
            if marker in name and "Mono" not in name:
                return index
    return 0


@lru_cache(maxsize=256)
def load_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    """`path` at `size` pixels, Simplified Chinese face selected."""
    return ImageFont.truetype(str(path), size, index=sc_face_index(path))


@lru_cache(maxsize=64)
def draws_chinese(path: Path) -> bool:
    """True if the font has real glyphs for Chinese, not the .notdef box or nothing at all."""
    try:
        font = load_font(path, 48)
    except OSError:
        return False

    def render(char: str) -> bytes:
        canvas = Image.new("L", (64, 64), 0)
        ImageDraw.Draw(canvas).text((8, 0), char, font=font, fill=255)
        return canvas.tobytes()

    notdef = render("\U0010fffd")  # private use plane 16: no font maps it
    blank = bytes(64 * 64)
    for char in "中国评价":
        if render(char) in (notdef, blank):
            return False
    return True


_WEIGHT_SWAPS: dict[str, tuple[tuple[str, str], ...]] = {
    "Bold": (("Regular", "Bold"), ("msyh.", "msyhbd."), ("Light", "Medium")),
    "Regular": (("Bold", "Regular"), ("msyhbd.", "msyh."), ("Medium", "Light")),
}


def sibling_weight(path: Path, weight: str) -> Path:
    """The same family in `weight` ("Bold" or "Regular") if installed beside `path`, else `path`."""
    for old, new in _WEIGHT_SWAPS[weight]:
        if old in path.name:
            candidate = path.with_name(path.name.replace(old, new, 1))
            if candidate.is_file() and draws_chinese(candidate):
                return candidate
    return path


def _fc_list_candidates() -> list[Path]:
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return []
    try:
        out = subprocess.run(
            [fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    paths = {Path(line.split(":", 1)[0].strip()) for line in out.splitlines() if line.strip()}

    # Sans before serif, bold before the rest, then by name for a stable choice.
    def rank(p: Path) -> tuple[bool, bool, str]:
        name = p.name.lower()
        return ("sans" not in name and "hei" not in name, "bold" not in name, name)

    return sorted(paths, key=rank)


def find_cjk_font(preferred: str | Path | None = None) -> Path:
    """A font file that can draw Chinese: `preferred` if given, else a well-known path, else fc-list."""
    if preferred:
        path = Path(preferred).expanduser()
        if not path.is_file():
            raise FontNotFound(f"没有找到中文字体: {path} does not exist; {INSTALL_HINT}")
        if not draws_chinese(path):
            raise FontNotFound(f"没有找到中文字体: {path} has no Chinese glyphs; {INSTALL_HINT}")
        return path
    found = _discover()
    if found is None:
        raise FontNotFound(f"没有找到中文字体: {INSTALL_HINT}")
    return found


@lru_cache(maxsize=1)
def _discover() -> Path | None:
    # Cached: a batch renders hundreds of posters; fc-list need not run for each.
    for candidate in [Path(p) for p in WELL_KNOWN_FONTS] + _fc_list_candidates():
        if candidate.is_file() and draws_chinese(candidate):
            return candidate
    return None
