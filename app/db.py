"""The SQL database: one engine per process and a session per app context or job.

Services take a `Session` explicitly; views and jobs get theirs from `db.session`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, scoped_session, sessionmaker

if TYPE_CHECKING:
    from app.config import Settings


def database_url(settings: Settings) -> str:
    url = settings.database.url
    if url:
        return url
    var = settings.var_dir
    var.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{var / 'wxsurvey.db'}"


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets the web read while a drain batch writes; FKs are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, echo=echo, pool_size=pool_size, pool_pre_ping=True)


class Database:
    """The engine and scoped session factory of one app."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, echo=echo, pool_size=pool_size)
        self.session: scoped_session[Session] = scoped_session(
            sessionmaker(bind=self.engine, expire_on_commit=False)
        )

    def new_session(self) -> Session:
        """A session of its own, for work that must not share the request's transaction."""
        return Session(bind=self.engine, expire_on_commit=False)


class _CurrentDatabase:
    """Module-level handle bound per app with init_app (several apps may live in one process)."""

    def init_app(self, app: Flask) -> None:
        settings = app.config["SETTINGS"]
        database = Database(
            database_url(settings), echo=settings.database.echo, pool_size=settings.database.pool_size
        )
        app.extensions["wxsurvey_db"] = database

        @app.teardown_appcontext
        def _remove_session(_exc):
            database.session.remove()

    @property
    def current(self) -> Database:
        return current_app.extensions["wxsurvey_db"]

    @property
    def session(self) -> Session:
        """The app context's session (a scoped_session proxy, used as the Session it stands for)."""
        return cast(Session, self.current.session)

    @property
    def engine(self) -> Engine:
        return self.current.engine

    def new_session(self) -> Session:
        return self.current.new_session()


db = _CurrentDatabase()
