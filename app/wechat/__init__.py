"""The WeChat webhook: verification, messages and events in every encryption mode."""

from flask import Blueprint

bp = Blueprint("wechat", __name__)

from app.wechat import webhook  # noqa: E402,F401
