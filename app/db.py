"""The SQL database: one engine per process and a session per app context or job.

Services take a `Session` explicitly; views and jobs get theirs from `db.session`.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.sql import ClauseElement

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
    return create_engine(
        url, echo=echo, pool_size=pool_size, pool_pre_ping=True, connect_args=_connect_args(url)
    )


# libpq's defaults wait on the network without end: no connect timeout (a server that went away
# holds a new connection for the kernel's SYN retries, a listener that never answers for ever) and
# a connection whose server vanished mid-query waits out TCP's retransmissions (~15 minutes), one
# request thread or drain each. These bound both; a URL that names one of them keeps its own.
NETWORK_LIMITS = {
    "connect_timeout": 5,  # seconds to establish a connection, authentication included
    "keepalives": 1,  # probe an idle connection: a server gone is noticed ...
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,  # ... within a minute
    "tcp_user_timeout": 30_000,  # ms that sent data may go unacknowledged (a server gone mid-query)
}
# What every session starts with (libpq's `options`, after any the URL gives). A plan per run, with
# the values and the table's size of the moment (tens of us): psycopg prepares a statement run a
# few times on a connection, PostgreSQL then settles on a generic plan made with the table as it
# was, and connections live as long as their process. At a campaign's start, the table nearly
# empty, the earlier-answer look-up's plan took the (survey, submitted_at) index and filtered
# every answer of the survey (17 ms at 11,000 answers, and growing) until an ANALYZE invalidated it.
SESSION_OPTIONS = "-c plan_cache_mode=force_custom_plan"
# How long the earlier-answer look-up may run on PostgreSQL (waiting on a lock, a slow statement)
# before the form is served without it. It takes well under a millisecond when the server is
# well; the web threads are few (app.web_threads: 2 processes x 32) and a campaign morning's
# arrivals many, so a `wxsurvey migrate` that locks the answers' table must not hold a thread per
# citizen: at 200 ms, 64 threads still serve 320 new citizens a second. Giving up costs no
# correctness: the answer is checked again when it is sent (its Redis mark), and SQL keeps one
# answer per person and pair whatever comes (the drain's unique key).
LOOK_UP_TIMEOUT_MS = 200


def _connect_args(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    args: dict[str, Any] = {name: value for name, value in NETWORK_LIMITS.items() if name not in parsed.query}
    given = parsed.query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    args["options"] = f"{given} {SESSION_OPTIONS}" if given else SESSION_OPTIONS
    return args


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


class HeldReads:
    """Read-only look-ups on the citizen's hot path (has this person answered here before?) over
    DBAPI connections of their own, kept open in autocommit outside the engine's pool: no
    checkout, ping, BEGIN or ROLLBACK per look-up (on PostgreSQL those cost ~0.35 ms of the app's
    CPU and three of the four round trips). At most the pool's size of them exist; a look-up that
    finds all busy goes through the pool as before. A connection that fails is dropped with the
    idle ones (a restarted server broke them all) and the look-up made once more; all close with
    the engine (which this object does not keep alive). On PostgreSQL a look-up's statement runs
    for at most `LOOK_UP_TIMEOUT_MS` either way (the pool's way may first wait for a free
    connection), and one that runs out of it raises at once (the server is up, only busy: no
    other try, and the connection is kept)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        self.errors: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._bounded = engine.dialect.name == "postgresql"
        size = getattr(engine.pool, "size", None)
        self.keep = int(size()) if callable(size) else 5  # (a SingletonThreadPool's size is no method)
        self._idle: list[tuple[int, Any]] = []  # (generation, DBAPI connection)
        self._open = 0  # connections of ours, idle or in use
        self._generation = 0  # moved on by close(): connections in use then are closed on return
        self._lock = threading.Lock()
        self._sql: dict[ClauseElement, tuple[str, tuple[str, ...] | None]] = {}  # SQL, parameter order
        event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def scalar(self, statement: ClauseElement, params: dict[str, Any]) -> Any:
        """The first column of the first row (None without one): the driver's value, SQLAlchemy's
        when the look-up took the pool's way (callers take either)."""
        engine = self._engine()
        assert engine is not None, "a look-up on an engine gone"
        sql, order = self._compiled(engine, statement)
        args = params if order is None else tuple(params[name] for name in order)
        for attempt in (1, 2):
            held = self._take(engine)
            if held is None:  # all of ours busy: the pool's way
                with engine.connect() as pooled:
                    if self._bounded:  # (this transaction only: the connection goes back as it was)
                        pooled.exec_driver_sql(f"SET LOCAL statement_timeout = {LOOK_UP_TIMEOUT_MS}")
                    return pooled.execute(cast(Any, statement), params).scalar()
            generation, conn = held
            try:
                cursor = conn.cursor()
                try:
                    cursor.execute(sql, args)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except self.errors as exc:
                if ran_out_of_time(exc):
                    self._give(generation, conn)
                    raise
                self._discard(conn)
                self._drop_idle()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                self._discard(conn)
                raise
            self._give(generation, conn)
            return None if row is None else row[0]
        raise AssertionError("unreachable")

    def _compiled(self, engine: Engine, statement: ClauseElement) -> tuple[str, tuple[str, ...] | None]:
        known = self._sql.get(statement)
        if known is None:
            compiled = cast(Any, statement.compile(dialect=engine.dialect))  # a SQLCompiler
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            known = self._sql[statement] = (str(compiled), order)
        return known

    def _take(self, engine: Engine) -> tuple[int, Any] | None:
        with self._lock:
            while self._idle:
                generation, conn = self._idle.pop()
                if generation == self._generation:
                    return generation, conn
                self._open -= 1
                _close(conn, self.errors)
            if self._open >= self.keep:
                return None
            self._open += 1
            generation = self._generation
        try:
            pooled = engine.raw_connection()  # (the engine's connect events run: pragmas)
        except BaseException:
            with self._lock:
                self._open -= 1
            raise
        dbapi, conn = pooled.dbapi_connection, pooled.driver_connection
        pooled.detach()  # its own from now on: no slot of the pool taken
        try:
            engine.dialect.set_isolation_level(cast(Any, dbapi), "AUTOCOMMIT")
            if self._bounded:
                with cast(Any, conn).cursor() as cursor:
                    cursor.execute(f"SET statement_timeout = {LOOK_UP_TIMEOUT_MS}")
        except BaseException:
            self._discard(conn)
            raise
        return generation, conn

    def _give(self, generation: int, conn) -> None:
        with self._lock:
            if generation == self._generation:
                self._idle.append((generation, conn))
                return
        self._discard(conn)

    def _discard(self, conn) -> None:
        with self._lock:
            self._open -= 1
        _close(conn, self.errors)

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for _, conn in idle:
            _close(conn, self.errors)

    def close(self) -> None:
        with self._lock:
            self._generation += 1
        self._drop_idle()


def ran_out_of_time(exc: BaseException) -> bool:
    """PostgreSQL cancelled the statement (statement_timeout: SQLSTATE 57014), the driver's error
    or SQLAlchemy's around it."""
    return getattr(getattr(exc, "orig", exc), "sqlstate", None) == "57014"


def _close(conn, errors: type[Exception]) -> None:
    try:
        conn.close()
    except errors:
        pass


_HELD: weakref.WeakKeyDictionary[Engine, HeldReads] = weakref.WeakKeyDictionary()
_HELD_LOCK = threading.Lock()


def held_reads(engine: Engine) -> HeldReads:
    """The engine's HeldReads (made on first use)."""
    reads = _HELD.get(engine)
    if reads is None:
        with _HELD_LOCK:
            reads = _HELD.get(engine)
            if reads is None:
                reads = _HELD[engine] = HeldReads(engine)
    return reads


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
