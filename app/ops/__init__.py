"""Operators' endpoints: /healthz and /readyz (views) over the checks of health (readiness)."""

from app.ops.views import bp

__all__ = ["bp"]
