"""The public blueprint object, apart from its views so that they import it without a cycle."""

from flask import Blueprint

bp = Blueprint("public", __name__)
