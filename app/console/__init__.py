"""The admin web console for survey admins at city and county level."""

from flask import Blueprint

bp = Blueprint("console", __name__)
