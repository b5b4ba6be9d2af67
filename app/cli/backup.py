"""`wxsurvey backup --out FILE` and `wxsurvey restore FILE` (app/ops/backup.py)."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app.db import db
from app.redis_store import redis_store


def register(cli: click.Group) -> None:
    cli.add_command(backup_command)
    cli.add_command(restore_command)


@click.command("backup")
@with_appcontext
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The backup file to write (replaced atomically).")  # fmt: skip
def backup_command(out: Path) -> None:
    """Back up the database and the answers still queued in Redis into one file."""
    from app.ops.backup import backup

    report = backup(db.engine, redis_store.data_raw, out)
    click.echo(
        f"backup written: {report.path} ({report.bytes:,} bytes; {report.dialect}; "
        f"{report.queued} queued answers, {report.dead_letters} dead letters, {report.marks} marks, "
        f"{report.tickets} QR tickets)"
    )


@click.command("restore")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(file: Path) -> None:
    """Restore a backup into an empty database and Redis; the workers then drain the queued answers."""
    from app.ops.backup import restore

    result = restore(db.engine, redis_store.data_raw, file)
    if result["queued"]:
        from app.intake.shards import all_shards
        from app.jobs.intake import DRAIN_SECONDS, drain_intake
        from app.jobs.queues import enqueue

        for shard in all_shards(current_app.config["SETTINGS"].survey.intake_shards):
            enqueue("intake", drain_intake, DRAIN_SECONDS, shard)  # the first workers to start drain them
    waiting = " (a drain job is waiting for the workers)" if result["queued"] else ""
    click.echo(
        f"restored {file} (taken {result['created_at']}): database, {result['queued']} queued answers"
        f"{waiting}, {result['dead_letters']} dead letters, {result['marks']} marks, "
        f"{result['tickets']} QR tickets"
    )
