"""Operators' endpoints (/healthz, /readyz, /metrics in views) over the readiness checks (health),
the Prometheus exposition (prometheus), logging (logs) and backup/restore (backup)."""

from app.ops.views import bp

__all__ = ["bp"]
