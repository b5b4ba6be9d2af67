"""Dev mode only: the WeChat simulator (phone page, fake WeChat API and OAuth)."""

from flask import Blueprint

bp = Blueprint("dev", __name__)

from app.dev import fake_wechat, phone  # noqa: E402,F401
