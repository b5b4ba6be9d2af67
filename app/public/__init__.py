"""The citizen's questionnaire pages, opened in WeChat's browser."""

from app.public import cards, followup, identity, questionnaire, results  # noqa: F401  (their views join the blueprint)
from app.public.blueprint import bp

__all__ = ["bp"]
