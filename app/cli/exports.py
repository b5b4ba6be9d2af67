"""`wxsurvey exports list|run NAME`: the configured export schedules and their history."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from app.db import db
from app.tally import exports as service

group = AppGroup("exports", help="Scheduled exports ([[exports.schedules]] in the config).")


def register(cli: click.Group) -> None:
    cli.add_command(group)


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """The schedules and each one's latest run."""
    found = service.schedules(current_app.config["SETTINGS"])
    items: list[dict[str, Any]] = []
    for schedule in found.values():
        latest = service.recent_runs(db.session, schedule.name, limit=1)
        items.append(
            {
                "name": schedule.name,
                "survey": schedule.survey,
                "when": schedule.cron or f"every {schedule.interval}s",
                "formats": list(schedule.formats),
                "destination": schedule.destination,
                "last_run": service.run_dict(latest[0]) if latest else None,
            }
        )
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("no export schedules configured")
    for item in items:
        last = item["last_run"]
        status = f"{last['status']} at {last['slot']}" if last else "never run"
        click.echo(f"{item['name']}\t{item['survey']}\t{item['when']}\t{','.join(item['formats'])}\t{status}")


@group.command("run")
@click.argument("name")
def run_command(name: str) -> None:
    """Run one schedule now (a manual slot of its own), pushing once if it has a destination."""
    from app.jobs.exports import push_export

    settings = current_app.config["SETTINGS"]
    outcome = service.run_export(db.session, settings, name)
    for entry in outcome.files:
        click.echo(f"{settings.exports.dir}/{name}/{entry['file']}")
    if service.get_schedule(settings, name).destination and outcome.run is not None:
        result = push_export(outcome.run.id)
        db.session.refresh(outcome.run)
        if outcome.run.status != "ok":
            click.echo(f"push {outcome.run.status}: {outcome.run.error} ({result})", err=True)
