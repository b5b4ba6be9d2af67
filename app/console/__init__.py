"""The admin web console for survey admins at city and county level."""

from flask import Blueprint

bp = Blueprint("console", __name__)

# guard registers the login, CSRF and scope checks that every console view relies on.
from app.console import (  # noqa: E402
    audit,  # noqa: F401
    auth,  # noqa: F401
    departments,  # noqa: F401
    guard,  # noqa: F401
    posters,  # noqa: F401
    results,  # noqa: F401
    review,  # noqa: F401
    surveys,  # noqa: F401
)
