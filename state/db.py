"""Engine, sessions and migrations for the state store.

``DATABASE_URL`` unset → SQLite at ``.planhat-sync/state.db``, where ``dev`` keeps it
(``state/location.py``); PostgreSQL with ``postgresql+psycopg://…``. Migrations are
Alembic's, shipped inside the package.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine
from sqlmodel.sql.expression import SelectOfScalar

from state.location import default_database_url, make_data_dir

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_SECONDS = 30  # how long a SQLite transaction waits for the write lock, then fails


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or default_database_url()


def make_engine(url: str | None = None, *, pre_ping: bool = False) -> Engine:
    """``pre_ping``: test each pooled connection as it is checked out (PostgreSQL), for a
    caller that answers someone and must not fail on a connection the database dropped
    (a restart): the receiver. Ignored on SQLite, a file that has no connection to drop."""
    url = url or database_url()
    if url.startswith("sqlite"):
        path = make_url(url).database
        create_private_file(path)
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": BUSY_SECONDS}
        lock = _write_lock(path)
        if lock is not None:
            connect_args["factory"] = _TurnTakingConnection
        engine = create_engine(url, connect_args=connect_args, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", lambda connection: _sqlite_begin_immediate(connection, lock))
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


def _sqlite_begin_immediate(connection: Any, lock: WriteTurns | None) -> None:
    # Every transaction takes the write lock at BEGIN (SQLAlchemy's recipe for pysqlite):
    # transactions then run one after another, the SQLite stand-in for PostgreSQL's row
    # locks (SELECT … FOR UPDATE), and a read is never upgraded after another commit.
    if lock is None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        return
    dbapi = connection.connection.dbapi_connection
    if not lock.acquire(timeout=BUSY_SECONDS):
        locked = sqlite3.OperationalError("database is locked")
        raise OperationalError("BEGIN IMMEDIATE", None, locked)
    dbapi.turn = lock
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        dbapi.let_go()
        raise


class WriteTurns:
    """A lock whose urgent waiters go first: a webhook's commit (a few rows, a sender
    waiting for its answer) waits for the transaction that holds the file, never for the
    queue of ingest and flush transactions behind it (measured in the embedded default:
    the receiver's p99 rose from ~45 to ~130 ms once flushes ran during a burst)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held = False
        self._urgent = 0  # urgent threads waiting

    def acquire(self, timeout: float) -> bool:
        urgent = getattr(_URGENT, "on", False)
        deadline = time.monotonic() + timeout
        with self._changed:
            self._urgent += urgent
            try:
                while self._held or (self._urgent and not urgent):
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._changed.wait(left):
                        return False
                self._held = True
                return True
            finally:
                self._urgent -= urgent

    def release(self) -> None:
        with self._changed:
            self._held = False
            self._changed.notify_all()


_URGENT = threading.local()


@contextmanager
def urgent_writes() -> Iterator[None]:
    """This thread's SQLite transactions go before others waiting in this process."""
    _URGENT.on = True
    try:
        yield
    finally:
        _URGENT.on = False


_WRITE_LOCKS: dict[str, WriteTurns] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: str | None) -> WriteTurns | None:
    """This process's turn at a SQLite file's write lock, shared by its engines.

    Threads of one process (the embedded engine: receiver, ingest, flush timers, sweeper)
    take turns here before BEGIN IMMEDIATE. Without it they all wait in SQLite's busy
    handler, which sleeps and retries (1 ms, then up to 100 ms a try) instead of waking
    when the lock is let go: measured in the embedded default, transactions waited there
    for seconds while the file was free most of the time. Other processes (the CLI) still
    wait in the busy handler. None for a database that is not a file (each in-memory
    connection is a database of its own)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, WriteTurns())


class _TurnTakingConnection(sqlite3.Connection):
    """A pysqlite connection that lets go of its process's turn at the write lock
    (``_write_lock``) once its transaction has ended: committed, rolled back or closed."""

    turn: WriteTurns | None = None

    def let_go(self) -> None:
        turn, self.turn = self.turn, None
        if turn is not None:
            turn.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.let_go()


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
    make_data_dir(url)  # the default's folder: the first command to write makes it
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
