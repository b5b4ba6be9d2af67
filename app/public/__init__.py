"""The citizen's questionnaire pages, opened in WeChat's browser."""

from flask import Blueprint

bp = Blueprint("public", __name__)

from app.public import identity, questionnaire  # noqa: E402,F401
