"""Everything else (images, voice, location, unfollow, template-send reports…): `success`, no reply."""

from __future__ import annotations

from typing import Any

from handlers.context import HandlerContext


def on_anything_else(message: Any, ctx: HandlerContext) -> None:
    return None
