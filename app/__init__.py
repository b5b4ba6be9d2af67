"""wxsurvey: the Flask app factory, built in small register_* steps."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app import clock
from app.config import Settings, load_settings
from app.db import db
from app.fast.signing import SessionInterface
from app.redis_store import redis_store


def create_app(config: Settings | Mapping[str, Mapping[str, Any]] | None = None) -> Flask:
    """Build the app. `config` is ready Settings, or overrides on top of file and environment."""
    settings = config if isinstance(config, Settings) else load_settings(overrides=config)
    clock.configure(settings.app.timezone)
    app = Flask(__name__)
    app.session_interface = SessionInterface()
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.app.secret_key,
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.app.base_url.startswith("https://"),
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    register_logging(app, settings)
    register_extensions(app)
    register_routing(app)
    register_blueprints(app, settings)
    register_error_pages(app)
    register_static_versions(app)
    register_security_headers(app)
    if settings.app.fast_paths:
        register_fast_paths(app)
    register_request_log(app, settings)
    return app


def register_logging(app: Flask, settings: Settings) -> None:
    """app.log_format: readable lines, or one JSON object a line with each request's id, route,
    status and duration (app/ops/logs.py; the request layer is added last, by register_request_log)."""
    from app.ops.logs import ROUTE_KEY, configure

    configure(settings.app.log_level, settings.app.log_format)
    app.logger.setLevel(getattr(logging, str(settings.app.log_level).upper(), logging.INFO))
    if settings.app.log_format == "json":

        @app.before_request
        def _route_for_the_log():
            from flask import request

            if request.url_rule is not None:
                request.environ[ROUTE_KEY] = request.url_rule.rule


def register_request_log(app: Flask, settings: Settings) -> None:
    if settings.app.log_format == "json":
        from app.ops.logs import RequestLog

        app.wsgi_app = RequestLog(app.wsgi_app)  # type: ignore[method-assign]


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    redis_store.init_app(app)


def register_routing(app: Flask) -> None:
    """The scan router's cache of scene -> questionnaire, dropped whenever a commit changes routing."""
    from app.org.scenes import RouteCache, watch_routing_changes

    app.extensions["wxsurvey_routes"] = RouteCache()
    watch_routing_changes(app.extensions["wxsurvey_db"].session, app.extensions["wxsurvey_redis"]["text"])


def register_blueprints(app: Flask, settings: Settings) -> None:
    from app.api.blueprint import bp as api_bp
    from app.console.blueprint import bp as console_bp
    from app.ops import bp as ops_bp
    from app.public.blueprint import bp as public_bp
    from app.wechat.blueprint import bp as wechat_bp

    app.register_blueprint(ops_bp)
    app.register_blueprint(wechat_bp)
    app.register_blueprint(public_bp)
    app.register_blueprint(console_bp, url_prefix="/console")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    if not settings.is_production and settings.wechat.simulator:
        from app.dev.blueprint import bp as dev_bp
        from app.dev.fake_wechat import bp as wechat_sim_bp

        app.register_blueprint(dev_bp, url_prefix="/dev")
        # The fake WeChat API here too; `wxsurvey run` serves it from its own process instead.
        app.register_blueprint(wechat_sim_bp, url_prefix="/dev")


def register_fast_paths(app: Flask) -> None:
    """The citizen's hot requests answered in front of Flask: WeChat deliveries, the OAuth
    callback, the questionnaire page and its ordinary submissions (app/fast/: what each keeps
    equal to its view is listed in app/fast/CONTRACT.md)."""
    from app.fast.callback import OAuthCallbackFastPath
    from app.fast.questionnaire import QuestionnaireFastPath
    from app.fast.submit import SubmissionFastPath
    from app.fast.webhook import WebhookFastPath

    layers: Any = WebhookFastPath(app, app.wsgi_app)
    layers = SubmissionFastPath(app, layers)
    layers = OAuthCallbackFastPath(app, layers)
    app.wsgi_app = QuestionnaireFastPath(app, layers)  # type: ignore[method-assign]


def register_static_versions(app: Flask) -> None:
    """Static URLs carry ?v=<hash of the file>: nginx caches them for a month (deploy/), and an
    upgrade that changes a stylesheet changes its URL."""
    import hashlib
    from pathlib import Path

    versions: dict[str, str] = {}

    @app.url_defaults
    def _static_version(endpoint: str, values: dict) -> None:
        name = values.get("filename")
        if endpoint != "static" or not name or "v" in values:
            return
        if name not in versions:
            try:
                data = (Path(app.static_folder or "") / name).read_bytes()
                versions[name] = hashlib.sha256(data).hexdigest()[:12]
            except OSError:
                versions[name] = ""
        if versions[name]:
            values["v"] = versions[name]


def register_security_headers(app: Flask) -> None:
    from app.security.headers import register

    register(app)


def register_error_pages(app: Flask) -> None:
    from app.error_pages import register

    register(app)
