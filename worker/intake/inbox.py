"""How the receiver commits an event and hands it on: the hot path of every webhook.

``ThreadedInbox`` works on any database through SQLAlchemy, one worker thread per store
(the embedded default, on SQLite). ``PostgresRedisInbox`` is the production path: one
``INSERT … ON CONFLICT DO NOTHING RETURNING id`` through an asyncio psycopg pool, then one
pipelined ``RPUSH`` + ``SET NX`` to Redis, without leaving the event loop. Both commit
before they return: a 2xx always means the event is in the inbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import redis.asyncio
import structlog
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from state.db import session_scope
from state.inbox import store_event

log = structlog.get_logger(__name__)


class Inbox(Protocol):
    async def store(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        """Commit the event and hand it on; its inbox id, or None for a duplicate."""
        ...

    async def ready(self) -> None:
        """Raise unless the database and the broker answer."""
        ...


class ThreadedInbox:
    def __init__(
        self,
        engine: Engine,
        submit: Callable[[Sequence[int]], None],
        broker_ready: Callable[[], object],
    ) -> None:
        self._engine = engine
        self._submit = submit
        self._broker_ready = broker_ready

    def _store(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        with session_scope(self._engine) as session:
            inbox_id = store_event(
                session,
                connection=connection,
                source=source,
                event_id=event_id,
                body=body,
                dispatched=True,
            )
        if inbox_id is not None:
            try:
                self._submit([inbox_id])
            except Exception as error:  # stored is safe: the sweeper sends it again
                log.warning("receive.enqueue_failed", inbox_id=inbox_id, error=str(error))
        return inbox_id

    async def store(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        return await run_in_threadpool(self._store, connection, source, event_id, body)

    def _ready(self) -> None:
        with self._engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        self._broker_ready()

    async def ready(self) -> None:
        await run_in_threadpool(self._ready)


INSERT_EVENT = """
INSERT INTO inbox_event (connection, source, event_id, body, received_at, status, attempts,
                         next_attempt_at, dispatched_at)
VALUES (%s, %s, %s, %s, now(), 'pending', 0, now(), now())
ON CONFLICT (connection, source, event_id) DO NOTHING
RETURNING id
"""


class PostgresRedisInbox:
    """``schedule_batch`` is called (rarely: once per batch) when no ingest task is pending."""

    def __init__(
        self,
        dsn: str,
        redis_url: str,
        *,
        queue: str,
        scheduled: str,
        scheduled_ms: int,
        schedule_batch: Callable[[], Awaitable[None]],
        pool_size: int = 10,
    ) -> None:
        # Autocommit: the INSERT commits as it runs, one round trip instead of two.
        self._pool = AsyncConnectionPool(
            dsn, min_size=2, max_size=pool_size, open=False, kwargs={"autocommit": True}
        )
        self._redis = redis.asyncio.Redis.from_url(redis_url)
        self._queue = queue
        self._scheduled = scheduled
        self._scheduled_ms = scheduled_ms
        self._schedule_batch = schedule_batch

    async def open(self) -> None:
        await self._pool.open()

    async def close(self) -> None:
        await self._pool.close()
        await self._redis.aclose()

    async def store(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(INSERT_EVENT, (connection, source, event_id, body))
            row = await cursor.fetchone()
        if row is None:
            return None
        inbox_id = int(row[0])
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.rpush(self._queue, inbox_id)
            pipe.set(self._scheduled, 1, nx=True, px=self._scheduled_ms)
            _, scheduled_now = await pipe.execute()
            if scheduled_now:
                await self._schedule_batch()
        except Exception as error:  # stored is safe: the sweeper sends it again
            log.warning("receive.enqueue_failed", inbox_id=inbox_id, error=str(error))
        return inbox_id

    async def ready(self) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("SELECT 1")
        await self._redis.ping()
