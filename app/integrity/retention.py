# Privacy: the integrity metadata kept with each response (address prefix, browser class, scan and
# follow times, completion time, hashes of text and choices) is removed once past its age.
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.accounts import audit
from app.errors import Invalid
from app.models import Response, utcnow


def purge_metadata(session: Session, older_than_days: int, *, actor: str = "system",
                   now: datetime | None = None) -> int:  # fmt: skip
    """Empty the integrity metadata of responses submitted more than `older_than_days` ago.

    Status, answers, flags, score and reasons stay (decisions remain explainable), so no tally
    changes. In the caller's transaction; returns the number of responses purged."""
    if older_than_days < 1:
        raise Invalid("--older-than 至少为 1 天", field="older_than")
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    purged = session.execute(
        update(Response)
        .where(Response.submitted_at < cutoff, Response.meta != {})
        .values(meta={})
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    audit.record(session, actor, "retention.purge", f"{older_than_days}d",
                 {"before": cutoff.isoformat(), "responses": purged})  # fmt: skip
    return purged
