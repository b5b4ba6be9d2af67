"""Alembic migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.models import Base


def test_migrations_match_models(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diff == []
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_upgrading_keeps_the_rows_of_existing_surveys(tmp_path):
    """On SQLite, 0002 copies the questions table to change its kind check: the options, answers
    and responses that refer to questions must survive it (foreign keys are on in the app)."""
    from sqlalchemy import event, text

    from app.migrate import upgrade

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA foreign_keys=ON"))
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO surveys (id, slug, title, template, status, period_start, period_end, levels, "
                "snapshot, created_at) VALUES (1, 's', 't', 'x', 'open', '2026-01-01', '2026-12-31', '[]', "
                "'{}', '2026-01-01')"
            ))  # fmt: skip
            conn.execute(text("INSERT INTO questions (id, survey_id, key, position, kind, title, required, "
                              "scored, segment) VALUES (1, 1, 'q', 0, 'single', 't', 1, 0, 0)"))  # fmt: skip
            conn.execute(text("INSERT INTO options (id, question_id, key, position, label, negative) "
                              "VALUES (1, 1, 'a', 0, 'A', 0)"))  # fmt: skip
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM options")).scalar() == 1
            assert conn.execute(text("SELECT indicator FROM questions")).scalar() is None
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # on again for the app
    finally:
        engine.dispose()
