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
"""

from __future__ import annotations

from typing import Protocol

import structlog
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from state.db import session_scope
from state.inbox import compile_insert, new_event, store_event
from worker.runtime.jobs import Dispatcher

log = structlog.get_logger(__name__)


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
    def __init__(self, writer: EventWriter, dispatcher: Dispatcher) -> None:
        self._writer = writer
        self._dispatcher = dispatcher

    async def store(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        """Commit the event and hand it on; its inbox id, or None for a duplicate."""
        inbox_id = await self._writer.write(connection, source, event_id, body)
        if inbox_id is not None:
            try:
                await self._dispatcher.ingest_async([inbox_id])
            except Exception as error:  # stored is safe: the sweeper sends it again
                log.warning("receive.enqueue_failed", inbox_id=inbox_id, error=str(error))
        return inbox_id

    async def ready(self) -> None:
        """Raise unless the database and the broker answer."""
        await self._writer.ready()
        await self._dispatcher.ready()

    async def open(self) -> None:
        await self._writer.open()

    async def close(self) -> None:
        await self._writer.close()


class ThreadedWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _write(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        with session_scope(self._engine) as session:
            return store_event(
                session,
                connection=connection,
                source=source,
                event_id=event_id,
                body=body,
                dispatched=True,
            )

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
    def __init__(self, engine: Engine, pool_size: int = 10) -> None:
        """The statement is compiled by ``engine``'s dialect; the pool opens its database."""
        self._insert = compile_insert(engine.dialect)
        # Autocommit: the INSERT commits as it runs, one round trip instead of two.
        self._pool = AsyncConnectionPool(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
            min_size=2,
            max_size=pool_size,
            open=False,
            kwargs={"autocommit": True},
        )

    async def write(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        values = new_event(
            connection=connection, source=source, event_id=event_id, body=body, dispatched=True
        )
        async with self._pool.connection() as conn:
            cursor = await conn.execute(self._insert.sql, self._insert.parameters(values))
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else None

    async def ready(self) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()


def writer_for(engine: Engine) -> EventWriter:
    """On PostgreSQL the hot path stays on the event loop; any other database runs
    SQLAlchemy on worker threads."""
    if engine.dialect.name == "postgresql":
        return PostgresWriter(engine)
    return ThreadedWriter(engine)
