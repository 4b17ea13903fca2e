"""Engine, sessions and migrations for the state store.

``DATABASE_URL`` unset → SQLite at ``./planhat-sync.db``; PostgreSQL with
``postgresql+psycopg://…``. Migrations are Alembic's, shipped inside the package.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine
from sqlmodel.sql.expression import SelectOfScalar

DEFAULT_DATABASE_URL = "sqlite:///planhat-sync.db"
MIGRATIONS = Path(__file__).with_name("migrations")


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def make_engine(url: str | None = None, *, pre_ping: bool = False) -> Engine:
    """``pre_ping``: test each pooled connection as it is checked out (PostgreSQL), for a
    caller that answers someone and must not fail on a connection the database dropped
    (a restart): the receiver. Ignored on SQLite, a file that has no connection to drop."""
    url = url or database_url()
    if url.startswith("sqlite"):
        create_private_file(make_url(url).database)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    # No pool_pre_ping by default: it costs a round trip on every checkout, and a worker's
    # transaction that meets a dead connection fails and is retried like any other
    # failure. The receiver, which answers senders, asks for it: its inserts go through
    # its own psycopg pool (worker/intake/inbox.py), so the engine only looks up
    # connections there, and a sender is never answered 500 for a dropped connection.
    # hide_parameters: an error's text never carries the values (records, bodies) it held.
    return create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        pool_pre_ping=pre_ping,
        hide_parameters=True,
    )


def create_private_file(path: str | None) -> None:
    """Create a SQLite file readable by its owner only, before SQLite opens it: it holds
    raw webhook bodies. SQLite gives its -wal and -shm files the database file's mode."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    # An existing file keeps its mode (a shared database's is its owner's business);
    # any other failure is SQLite's to report when it opens the file.
    with suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_begin_immediate(connection: Any) -> None:
    # Every transaction takes the write lock at BEGIN (SQLAlchemy's recipe for pysqlite):
    # transactions then run one after another, the SQLite stand-in for PostgreSQL's row
    # locks (SELECT … FOR UPDATE), and a read is never upgraded after another commit.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own
    # WAL lets the receiver read while the worker writes; busy_timeout waits for the lock
    # instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


Q = TypeVar("Q", bound=SelectOfScalar[Any])


def for_update(session: Session, query: Q, *, skip_locked: bool = False) -> Q:
    """``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite every transaction already holds
    the write lock from its start (``_sqlite_begin_immediate``)."""
    if session.get_bind().dialect.name == "sqlite":
        return query
    return query.with_for_update(skip_locked=skip_locked)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return config


MIGRATION_LOCK = 7_151_942  # any constant: the PostgreSQL advisory lock migrations share


def migrate(url: str | None = None) -> None:
    """Bring the database to the newest schema (idempotent).

    Every long-running command migrates on start; on PostgreSQL an advisory lock makes
    concurrent starts (several workers at once) take turns instead of racing.
    """
    url = url or database_url()
    config = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
