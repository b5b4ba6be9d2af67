"""The citizen's questionnaire pages, opened in WeChat's browser."""

from flask import Blueprint

bp = Blueprint("public", __name__)

from app.public import identity  # noqa: E402,F401
from app.public import questionnaire  # noqa: E402,F401
