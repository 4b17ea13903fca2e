"""Migrations: the schema they build is the tables' schema, on SQLite and PostgreSQL; they are
idempotent; concurrent starts take turns; ``planhat-sync migrate`` runs them."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel
from typer.testing import CliRunner

import state.tables  # noqa: F401 - registers the tables on SQLModel.metadata
from state.db import alembic_config, make_engine, migrate, session_scope
from state.tables import Connection
from tests.engine.conftest import TABLES
from tests.engine.services import fresh_postgres_database
from worker.cli import app

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def schema_diff(url: str) -> list[Any]:
    """What autogenerate would still change: empty when the database matches the tables."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own (not migrated), dropped afterwards."""
    with fresh_postgres_database("phs_mig", migrated=False) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fresh.db"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


def test_the_migrations_build_exactly_the_tables_schema(fresh_url: str) -> None:
    assert revision(fresh_url) is None

    migrate(fresh_url)

    assert schema_diff(fresh_url) == []
    assert revision(fresh_url) == HEAD
    assert table_names(fresh_url) == {*TABLES, "alembic_version"}


def test_the_session_database_matches_the_tables(postgres_url: str) -> None:
    assert schema_diff(postgres_url) == []
    assert revision(postgres_url) == HEAD


def test_migrating_again_changes_nothing_and_keeps_the_data(fresh_url: str) -> None:
    migrate(fresh_url)
    engine = make_engine(fresh_url)
    try:
        with session_scope(engine) as session:
            session.add(Connection(name="acme", planhat_base_url="http://127.0.0.1:1"))

        migrate(fresh_url)
        migrate(fresh_url)

        with session_scope(engine) as session:
            kept = session.get(Connection, "acme")
            versions = session.connection().execute(text("SELECT version_num FROM alembic_version"))
            assert [row[0] for row in versions] == [HEAD]
    finally:
        engine.dispose()
    assert kept is not None
    assert kept.planhat_base_url == "http://127.0.0.1:1"
    assert schema_diff(fresh_url) == []


def test_concurrent_migrations_on_postgresql_take_turns(fresh_postgres_url: str) -> None:
    # given three workers starting at once on an empty database
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(migrate, fresh_postgres_url) for _ in range(3)]
        # then every one of them succeeds (result() re-raises a failed migration)
        results = [future.result(timeout=60) for future in futures]

    assert results == [None, None, None]
    assert revision(fresh_postgres_url) == HEAD
    assert schema_diff(fresh_postgres_url) == []


def test_the_migrate_command_creates_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"

    result = CliRunner().invoke(app, ["migrate"], env={"DATABASE_URL": url})

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"migrated {url}\n"
    assert table_names(url) == {*TABLES, "alembic_version"}
    assert revision(url) == HEAD


def test_the_migrate_command_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    runner = CliRunner()

    first = runner.invoke(app, ["migrate"], env={"DATABASE_URL": url})
    second = runner.invoke(app, ["migrate"], env={"DATABASE_URL": url})

    assert (first.exit_code, second.exit_code) == (0, 0), second.stderr
    assert revision(url) == HEAD
    assert schema_diff(url) == []
