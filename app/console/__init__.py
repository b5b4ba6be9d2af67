"""The admin web console for survey admins at city and county level."""

# guard registers the login, CSRF and scope checks that every console view relies on.
from app.console import (  # noqa: F401  (their views join the blueprint)
    audit,
    auth,
    cases,
    departments,
    guard,
    menu,
    posters,
    results,
    review,
    surveys,
)
from app.console.blueprint import bp

__all__ = ["bp"]
