"""The pull API for the city's performance-evaluation platform (bearer tokens, read only)."""

from flask import Blueprint

bp = Blueprint("api", __name__)
