"""The WeChat webhook: verification, messages and events in every encryption mode."""

from flask import Blueprint

bp = Blueprint("wechat", __name__)
