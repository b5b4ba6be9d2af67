# QR codes and printable posters for departments' surveys. Does not import `app`: settings
# such as the font path and the WeChat base URL are passed in by the caller.
from .batch import build_pdf, build_zip, safe_stem, write_poster_dir
from .card import CARD_STYLE, render_card
from .codes import qr_image, qr_modules, url_qr_png
from .fonts import FontNotFound, find_cjk_font
from .poster import render_poster
from .wechat_ticket import (
    MAX_SCENE_LENGTH,
    SHOWQRCODE_BASE,
    permanent_scene_payload,
    showqrcode_url,
)

__all__ = [
    "CARD_STYLE",
    "MAX_SCENE_LENGTH",
    "SHOWQRCODE_BASE",
    "FontNotFound",
    "build_pdf",
    "build_zip",
    "find_cjk_font",
    "permanent_scene_payload",
    "qr_image",
    "qr_modules",
    "render_card",
    "render_poster",
    "safe_stem",
    "showqrcode_url",
    "url_qr_png",
    "write_poster_dir",
]
