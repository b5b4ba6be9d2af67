"""The WeChat webhook: verification, messages and events in every encryption mode."""

from app.wechat import webhook  # noqa: F401  (its views join the blueprint)
from app.wechat.blueprint import bp

__all__ = ["bp"]
