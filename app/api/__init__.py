"""The pull API for the city's performance-evaluation platform (bearer tokens, read only)."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from app.api import views  # noqa: E402,F401
