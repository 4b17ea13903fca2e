"""How the receiver commits an event and hands it on: the hot path of every webhook.

One path for every deployment: ``Inbox`` commits the event through a writer, then queues
its id with the dispatcher's enqueue protocol (``Dispatcher.ingest_async``: Celery on
Redis, or the embedded engine's threads). Both writers run the one statement that stores
an event (``state.inbox.insert_event``) and commit before they return, so a 2xx always
means the event is in the inbox:

- ``ThreadedWriter``: any database, through a SQLAlchemy session on a worker thread (the
  embedded default, on SQLite);
- ``PostgresWriter``: production, that statement compiled once and run through an asyncio
  psycopg pool, without leaving the event loop.

Waiting on the database is bounded (``wait``): past it, or when the database cannot be
reached, ``store`` raises ``DatabaseUnavailable`` and the receiver answers 503 with
Retry-After. The write is not cut short (on PostgreSQL the server ends it at the same
bound, rolled back: ``statement_timeout``); one that commits after all, the lock gone just
then, still counts: the sender's retry is a duplicate (200), and the sweeper hands the
event on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.concurrency import run_in_threadpool

from state.db import session_scope
from state.inbox import compile_insert, new_event, store_event
from worker.intake.limits import ReceiverLimits
from worker.runtime.jobs import Dispatcher

log = structlog.get_logger(__name__)

T = TypeVar("T")
DEFAULT_WAIT = ReceiverLimits().database_wait


class DatabaseUnavailable(Exception):
    """The database did not answer in time, or cannot be reached: nothing was stored."""


class EventWriter(Protocol):
    async def write(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        """Commit the event, marked as handed on; its inbox id, or None for a duplicate."""
        ...

    async def ready(self) -> None:
        """Raise unless the database answers."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class Inbox:
    def __init__(
        self, writer: EventWriter, dispatcher: Dispatcher, wait: float = DEFAULT_WAIT
    ) -> None:
        self._writer = writer
        self._dispatcher = dispatcher
        self._wait = wait

    async def store(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        """Commit the event and hand it on; its inbox id, or None for a duplicate.
        ``DatabaseUnavailable`` when that takes longer than ``wait``, or cannot be done."""
        write = self._writer.write(connection, source, event_id, body)
        try:
            inbox_id = await within(self._wait, write, keep=self._late_commit)
        except TimeoutError:
            raise DatabaseUnavailable(
                f"the database did not answer within {self._wait:g} s"
            ) from None
        if inbox_id is not None:
            try:
                await self._dispatcher.ingest_async([inbox_id])
            except Exception as error:  # stored is safe: the sweeper sends it again
                log.warning("receive.enqueue_failed", inbox_id=inbox_id, error=str(error))
        return inbox_id

    def _late_commit(self, inbox_id: int | None) -> None:
        """A write given up on (answered 503) committed after all: the sender's retry is
        a duplicate (200), so hand the event on now rather than wait for the sweeper."""
        if inbox_id is None:
            return
        log.warning("receive.committed_after_503", inbox_id=inbox_id)
        handing = asyncio.ensure_future(self._dispatcher.ingest_async([inbox_id]))
        _LATE.add(handing)  # kept until it ends; a failure leaves it to the sweeper
        handing.add_done_callback(lambda done: _settle(done, None))

    async def ready(self) -> None:
        """Raise unless the database and the broker answer, each within ``wait``."""
        try:
            await within(self._wait, self._writer.ready())
        except TimeoutError:
            raise DatabaseUnavailable(
                f"the database did not answer within {self._wait:g} s"
            ) from None
        try:
            await within(self._wait, self._dispatcher.ready())
        except TimeoutError:
            raise ConnectionError(f"the broker did not answer within {self._wait:g} s") from None

    async def open(self) -> None:
        await self._writer.open()

    async def close(self) -> None:
        await self._writer.close()


class ThreadedWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _write(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        try:
            with session_scope(self._engine) as session:
                return store_event(
                    session,
                    connection=connection,
                    source=source,
                    event_id=event_id,
                    body=body,
                    dispatched=True,
                )
        except (OperationalError, PoolTimeoutError) as error:  # locked, unreachable, no slot
            raise _unavailable(error) from None
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            raise DatabaseUnavailable("the database dropped the connection") from None

    async def write(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        return await run_in_threadpool(self._write, connection, source, event_id, body)

    def _ready(self) -> None:
        with self._engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    async def ready(self) -> None:
        await run_in_threadpool(self._ready)

    async def open(self) -> None:
        pass  # the engine connects on demand

    async def close(self) -> None:
        pass  # the engine is its owner's


class PostgresWriter:
    def __init__(self, engine: Engine, pool_size: int = 10, wait: float = DEFAULT_WAIT) -> None:
        """The statement is compiled by ``engine``'s dialect; the pool opens its database."""
        self._insert = compile_insert(engine.dialect)
        self._timeout_ms = max(1, int(wait * 1000))
        self._attempts = pool_size + 1  # every pooled connection dead, then a new one
        # Autocommit: the INSERT commits as it runs, one round trip instead of two.
        # timeout: how long a checkout waits for a connection (the pool's default: 30 s).
        # No check= on checkout: it costs a round trip on every webhook, and after a
        # restart the pool backs off 1 s, 2 s, 4 s… between the dead connections it finds
        # (psycopg_pool AttemptWithBackoff); ``_run`` tries the next connection at once.
        self._pool = AsyncConnectionPool(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
            min_size=2,
            max_size=pool_size,
            open=False,
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=wait,
        )

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # The server ends a statement waiting past the bound (a locked table) and rolls it
        # back: it is never committed behind a 503.
        await conn.execute(f"SET statement_timeout = {self._timeout_ms}")

    async def _run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``work`` on a pooled connection. One the server dropped while it sat in the pool
        (a restart, pg_terminate_backend) fails at once, is discarded by the pool (it is
        closed) and the next is tried: the statement never ran on it, and if a reply was
        lost after a commit, the INSERT's ON CONFLICT makes the retry a duplicate."""
        for _ in range(self._attempts):
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                async with self._pool.connection() as conn:
                    return await work(conn)
            except psycopg.OperationalError as error:  # statement_timeout, pool timeout, gone
                if conn is None or not conn.broken:
                    raise _unavailable(error) from None
        raise DatabaseUnavailable("the database drops every connection")

    async def write(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        values = new_event(
            connection=connection, source=source, event_id=event_id, body=body, dispatched=True
        )
        parameters = self._insert.parameters(values)

        async def insert(conn: psycopg.AsyncConnection[Any]) -> int | None:
            row = await (await conn.execute(self._insert.sql, parameters)).fetchone()
            return int(row[0]) if row is not None else None

        return await self._run(insert)

    async def ready(self) -> None:
        """The lock an INSERT takes, taken and let go at once: a table locked against
        inserts makes the receiver not ready, as a dead database does."""

        async def probe(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction():
                await conn.execute("LOCK TABLE inbox_event IN ROW EXCLUSIVE MODE")

        await self._run(probe)

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()


def writer_for(engine: Engine, wait: float = DEFAULT_WAIT) -> EventWriter:
    """On PostgreSQL the hot path stays on the event loop; any other database runs
    SQLAlchemy on worker threads."""
    if engine.dialect.name == "postgresql":
        return PostgresWriter(engine, wait=wait)
    return ThreadedWriter(engine)


async def within(seconds: float, work: Awaitable[T], keep: Callable[[T], None] | None = None) -> T:
    """``work``'s result if it is done within ``seconds``, else TimeoutError. Without
    ``keep`` the work is then cancelled; with it, the work goes on in the background and
    ``keep`` is given its result: a write that commits after all must be known."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    if keep is None:
        task.cancel()
    _LATE.add(task)
    task.add_done_callback(lambda finished: _settle(finished, keep))
    raise TimeoutError


_LATE: set[asyncio.Future[Any]] = set()  # tasks given up on, kept until they end


def _settle(task: asyncio.Future[Any], keep: Callable[[Any], None] | None) -> None:
    _LATE.discard(task)
    if task.cancelled() or task.exception() is not None:
        return  # ended without a result: nothing was stored
    if keep is not None:
        keep(task.result())


def _unavailable(error: BaseException) -> DatabaseUnavailable:
    # The driver's first line goes to the log (it names hosts and ports: not for senders);
    # never parameters (hide_parameters, and psycopg's messages carry none).
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    log.warning("receive.database_error", error=lines[0] if lines else type(error).__name__)
    return DatabaseUnavailable(f"the database is unavailable ({type(error).__name__})")
