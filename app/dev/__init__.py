"""Dev mode only: the WeChat simulator (phone page, fake WeChat API and OAuth)."""

from app.dev import fake_wechat, phone  # noqa: F401  (their views join the blueprint)
from app.dev.blueprint import bp

__all__ = ["bp"]
