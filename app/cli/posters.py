"""`wxsurvey qr export --out DIR`: every department's printable poster, as PNGs, a ZIP or a PDF."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app

from app.cli.qr import group
from app.db import db
from app.org import posters as service
from app.org.surveys import get_survey, list_surveys
from app.redis_store import redis_store


def register(cli: click.Group) -> None:
    cli.add_command(group)


@group.command("export")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write into (created if needed).",
)
@click.option("--survey", "slug", help="One survey's slug (default: every survey not closed).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(service.FORMATS),
    default="png",
    show_default=True,
    help="png: one file per department in DIR/<survey>/; zip or pdf: DIR/<survey>-posters.<fmt>.",
)
@click.option(
    "--code",
    "kind",
    type=click.Choice(service.CODE_KINDS),
    default="auto",
    show_default=True,
    help="auto: a WeChat code already created, else the questionnaire URL; wechat: create them.",
)
def export_command(out_dir: Path, slug: str | None, fmt: str, kind: str) -> None:
    """Write the posters of one survey, or of every survey not closed."""
    settings = current_app.config["SETTINGS"]
    chosen = (
        [get_survey(db.session, slug)]
        if slug
        else [s for s in list_surveys(db.session) if s.status != "closed"]
    )
    if not chosen:
        raise click.ClickException("no survey to export posters for (create one first)")
    for survey in chosen:
        target = out_dir / survey.slug if fmt == "png" else out_dir / f"{survey.slug}-posters.{fmt}"
        count = service.write_batch(
            db.session, redis_store.client, settings, survey.slug, fmt, target, kind=kind
        )
        click.echo(f"{survey.slug}: {count} posters -> {target}")
