"""Logging for web, workers and scheduler: `app.log_format = "text"` (readable lines) or "json" (one
JSON object a line: time, level, logger, message, and the request id, route, status and duration of
the request, or the id of the RQ job, that the line belongs to).

In JSON mode the web app is wrapped in RequestLog, the outermost WSGI layer, so the fast paths in
front of Flask are timed and logged as well; it replaces gunicorn's access log. Nothing here logs a
query string, a header or a body: openids, tokens and secrets travel only there.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("wxsurvey_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Fields a record may carry (logger.info(..., extra={...})) that the JSON line keeps.
FIELDS = ("request_id", "method", "route", "status", "duration_ms", "job_id", "queue")
ROUTE_KEY = "wxsurvey.route"  # set by Flask for the requests it dispatches (register_logging)
SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if "request_id" not in line and (request_id := REQUEST_ID.get()):
            line["request_id"] = request_id
        if "job_id" not in line and (job := _current_job()) is not None:
            line["job_id"], line["queue"] = job.id, job.origin
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def _current_job():
    rq_job = sys.modules.get("rq.job")  # only in workers: the web never imports RQ's job stack
    if rq_job is None:
        return None
    try:
        return rq_job.get_current_job()
    except Exception:
        return None


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """One handler on the root logger, on standard error, in the chosen format (idempotent)."""
    root = logging.getLogger()
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    handler = next((h for h in root.handlers if getattr(h, "wxsurvey", False)), None)
    if handler is None:
        for old in list(root.handlers):  # an earlier basicConfig's handler would print twice
            if isinstance(old, logging.StreamHandler) and old.stream in (sys.stderr, sys.stdout):
                root.removeHandler(old)
        handler = logging.StreamHandler(sys.stderr)
        handler.wxsurvey = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    # urllib3 logs every URL at DEBUG, the WeChat API's access_token query parameter included.
    logging.getLogger("urllib3").setLevel(max(root.level, logging.WARNING))


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's own error log in JSON (deploy/gunicorn.conf.py, with app.log_format = "json")."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
        "root": {"level": "INFO", "handlers": []},  # the app's own handler (configure) goes here
    }


class RequestLog:
    """WSGI layer: a request id (nginx's X-Request-Id when it looks like one, else a new one) for
    every line the request logs, echoed as X-Request-Id, and one line when it ends."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.log = logging.getLogger("wxsurvey.request")

    def __call__(self, environ, start_response):
        given = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = given if SAFE_ID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500}

        def start(status, headers, exc_info=None):
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, [*headers, ("X-Request-Id", request_id)], exc_info)

        def done() -> None:
            route = environ.get(ROUTE_KEY) or route_of(environ.get("PATH_INFO", ""))
            method, status = environ.get("REQUEST_METHOD", ""), seen["status"]
            fields = {"request_id": request_id, "method": method, "route": route, "status": status,
                      "duration_ms": round((time.perf_counter() - started) * 1000, 2)}  # fmt: skip
            level = logging.WARNING if status >= 500 else logging.INFO
            self.log.log(level, "%s %s %s", method, route, status, extra=fields)
            REQUEST_ID.reset(token)

        try:
            body = self.wsgi_app(environ, start)
        except BaseException:
            done()
            raise
        return _Logged(body, done)


class _Logged:
    """The response body, closed as the server closes it; then the request's line is written."""

    def __init__(self, body, done) -> None:
        self.body, self.done = body, done

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done()


def route_of(path: str) -> str:
    """The route of a request Flask never saw (the fast paths), without its variable parts."""
    if path in ("/wechat", "/oauth/callback"):
        return path
    if path.startswith("/q/"):
        return "/q/<survey_slug>/<department_code>"
    return "<unrouted>"
