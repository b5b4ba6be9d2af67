"""The audit log service: every admin decision and sensitive action is recorded here."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import AuditEntry


def record(
    session: Session,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Add an entry to the session; it is committed with the change it describes."""
    entry = AuditEntry(actor=actor, action=action, target=target, detail=detail or {}, ip=ip)
    session.add(entry)
    return entry
