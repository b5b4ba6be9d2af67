"""`wxsurvey qr list|tickets` (posters add `qr export`) and `wxsurvey wechat menu|token`."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from app.db import db
from app.jobs.queues import enqueue
from app.org.scenes import scene_rows
from app.redis_store import redis_store

group = AppGroup("qr", help="QR codes and printable posters for departments' surveys.")
wechat_group = AppGroup("wechat", help="The WeChat official account: menu and access token.")


def register(cli: click.Group) -> None:
    cli.add_command(group)
    cli.add_command(wechat_group)


@group.command("list")
@click.option("--survey", "slug", help="One survey's slug (default: every survey not closed).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(slug: str | None, as_json: bool) -> None:
    """One line per survey and department: scene string, questionnaire URL, WeChat code if created."""
    rows = scene_rows(db.session, redis_store.client, current_app.config["SETTINGS"], slug)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        wechat = "wechat" if row["wechat_qr_url"] else "url"
        click.echo(f"{row['scene']:<40} {wechat:<6} {row['url']}  {row['department_name']}")


@group.command("tickets")
@click.option("--survey", "slug", help="One survey's slug (default: every survey not closed).")
@click.option("--queue", "queued", is_flag=True, help="Hand the work to the worker instead of waiting.")
def tickets_command(slug: str | None, queued: bool) -> None:
    """Create the WeChat permanent parametric codes (once per scene; cached afterwards)."""
    from app.jobs.wechat import create_wechat_tickets

    if queued:
        job = enqueue("wechat", create_wechat_tickets, slug)
        click.echo(f"queued job {job.id}")
        return
    click.echo(f"{create_wechat_tickets(slug)} WeChat codes ready")


@wechat_group.command("menu")
@click.option("--queue", "queued", is_flag=True, help="Hand the work to the worker instead of waiting.")
def menu_command(queued: bool) -> None:
    """Publish the account's custom menu as edited in the console (default: 我要评价 / 使用帮助)."""
    from app.jobs.wechat import publish_menu

    if queued:
        click.echo(f"queued job {enqueue('wechat', publish_menu).id}")
        return
    publish_menu("cli")
    click.echo("menu published")


@wechat_group.command("token")
def token_command() -> None:
    """Check that an access token can be had (it is shared through Redis); prints its lifetime left."""
    from app.wechat_api import TOKEN_KEY, WeChatApi

    WeChatApi(current_app.config["SETTINGS"], redis_store.client).access_token()
    click.echo(f"access token ok, {redis_store.client.ttl(TOKEN_KEY)} s left")
