"""The pull API for the city's performance-evaluation platform (bearer tokens, read only)."""

from app.api import views  # noqa: F401  (its views join the blueprint)
from app.api.blueprint import bp

__all__ = ["bp"]
