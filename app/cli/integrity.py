"""`wxsurvey simulate campaign` (the stuffing detector measured on a labelled campaign) and
`wxsurvey retention purge --older-than DAYS` (integrity metadata past its age)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import click
from flask.cli import AppGroup

from app.integrity.campaign import KINDS, Options


def register(cli: click.Group) -> None:
    cli.add_command(simulate)
    cli.add_command(retention)


@click.group("simulate", help="Simulations on a scratch database and Redis of their own.")
def simulate() -> None:
    pass


def _kinds(_ctx, _param, value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip()) if value else ()
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise click.BadParameter(f"unknown kind {', '.join(unknown)} (kinds: {', '.join(KINDS)})")
    return kinds


@simulate.command("campaign")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 120))
@click.option("--organic-per-day", default=500, show_default=True, type=click.IntRange(0, 100_000),
              help="Organic answers per day over the whole city.")  # fmt: skip
@click.option("--kinds", default=",".join(KINDS), show_default=True, callback=_kinds,
              help="Comma-separated stuffing kinds; empty for organic traffic only.")  # fmt: skip
@click.option(
    "--incidents", default=3, show_default=True, type=click.IntRange(0, 100), help="Incidents per kind."
)
@click.option("--size", default=1.0, show_default=True, type=click.FloatRange(0.05, 20),
              help="Multiplies the stuffed answers of each incident.")  # fmt: skip
@click.option("--threshold", type=click.IntRange(1, 100), help="Default: integrity.threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option(
    "--keep", type=click.Path(file_okay=False), help="Keep the scratch database and Redis files here."
)
def campaign(seed, days, organic_per_day, kinds, incidents, size, threshold, as_json, keep) -> None:
    """Play organic citizens and labelled stuffing through the real intake path (webhook events,
    record_response, the drain with the detector); print precision and recall per kind and
    overall, and organic answers wrongly quarantined per department."""
    from app import create_app
    from app.config import load_settings
    from app.dev import simulate as sim
    from app.migrate import upgrade
    from app.redis_store import ensure_embedded, stop_embedded

    work = Path(keep).resolve() if keep else Path(tempfile.mkdtemp(prefix="wxsurvey-sim-"))
    if keep and work.exists() and any(work.iterdir()):
        raise click.UsageError(f"--keep {keep}: the directory is not empty")
    work.mkdir(parents=True, exist_ok=True)
    try:
        url = ensure_embedded(work / "redis", appendfsync="no")
        settings = load_settings(overrides={
            "app": {"var_dir": str(work), "mode": "dev"},
            "database": {"url": f"sqlite:///{work / 'simulation.db'}"},
            "redis": {"url": url},
        })  # fmt: skip
        app = create_app(settings)
        upgrade(app.extensions["wxsurvey_db"].engine)
        options = Options(seed=seed, days=days, organic_per_day=organic_per_day, kinds=kinds,
                          incidents=incidents, size=size)  # fmt: skip
        outcome = sim.run(app, options, threshold or settings.integrity.threshold)
        app.extensions["wxsurvey_db"].engine.dispose()
    finally:
        stop_embedded(work / "redis")
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(sim.report_lines(outcome)))


@click.group("retention", cls=AppGroup, help="Privacy: integrity metadata past its age.")
def retention() -> None:
    pass


@retention.command("purge")
@click.option("--older-than", "days", required=True, type=click.IntRange(1, None), help="Age in days.")
def purge(days: int) -> None:
    """Remove the integrity metadata of responses older than DAYS (tallies unchanged)."""
    from app.db import db
    from app.integrity.retention import purge_metadata

    purged = purge_metadata(db.session, days, actor="cli")
    db.session.commit()
    click.echo(f"integrity metadata removed from {purged} responses older than {days} days")
