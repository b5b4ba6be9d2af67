# Pure helpers for WeChat permanent parametric QR codes (带参数二维码): the request body for
# POST https://api.weixin.qq.com/cgi-bin/qrcode/create and the showqrcode image URL. No network here.
from __future__ import annotations

from typing import Any
from urllib.parse import quote

MAX_SCENE_LENGTH = 64  # WeChat: scene_str is 1..64 characters
MAX_PERMANENT_CODES = 100_000  # per official account, shared by QR_LIMIT_SCENE and _STR_SCENE
CREATE_PATH = "/cgi-bin/qrcode/create"  # on api.weixin.qq.com, with ?access_token=
SHOWQRCODE_BASE = "https://mp.weixin.qq.com"  # showqrcode lives on mp., not api.


def permanent_scene_payload(scene: str) -> dict[str, Any]:
    """JSON body creating a permanent string-scene code; the scan event carries `scene` back.

    The response holds `ticket` (for `showqrcode_url`) and `url`, the code's own content:
    `url_qr_png(response["url"])` draws the same code locally, at any size.
    """
    if not isinstance(scene, str) or not 1 <= len(scene) <= MAX_SCENE_LENGTH:
        length = len(scene) if isinstance(scene, str) else type(scene).__name__
        raise ValueError(f"WeChat scene string must be 1..{MAX_SCENE_LENGTH} characters, got {length}")
    return {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}


def showqrcode_url(base: str, ticket: str) -> str:
    """`<base>/cgi-bin/showqrcode?ticket=<ticket>`: the code's image (the ticket is URL-encoded)."""
    if not ticket:
        raise ValueError("WeChat QR ticket must not be empty")
    return f"{base.rstrip('/')}/cgi-bin/showqrcode?ticket={quote(ticket, safe='')}"
