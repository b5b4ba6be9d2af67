"""RQ job: a batch of posters (ZIP or multi-page PDF) for one survey, with progress in job.meta."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flask import current_app
from rq import get_current_job

from app.db import db
from app.org.posters import write_batch
from app.redis_store import redis_store

if TYPE_CHECKING:
    from app.config import Settings

BATCH_FORMATS = ("zip", "pdf")


def batch_path(settings: Settings, batch_id: str, fmt: str) -> Path:
    return Path(settings.var_dir) / "posters" / f"{batch_id}.{fmt}"


def build_poster_batch(
    batch_id: str, survey_slug: str, fmt: str, department_ids: list[int] | None = None, kind: str = "auto"
) -> dict:
    """Write the batch file under var/posters/; `department_ids` is the requesting admin's scope."""
    settings = current_app.config["SETTINGS"]
    job = get_current_job()

    def progress(done: int, total: int) -> None:
        if job is not None:
            job.meta.update(done=done, total=total)
            job.save_meta()

    out = batch_path(settings, batch_id, fmt)
    try:
        count = write_batch(
            db.session, redis_store.client, settings, survey_slug, fmt, out,
            department_ids=set(department_ids) if department_ids is not None else None,
            kind=kind, progress=progress,
        )  # fmt: skip
    finally:
        db.session.rollback()  # read only: release the connection before the next job
    return {"count": count, "file": out.name}
