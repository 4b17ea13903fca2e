"""How the receiver commits an event and hands it on: the hot path of every webhook.

One path for every deployment: ``Inbox`` gathers the events of concurrent webhooks into
groups (``worker.intake.group``), commits each group through a writer, then queues its
new ids with the dispatcher's enqueue protocol (``Dispatcher.ingest_async``: Celery on
Redis, or the embedded engine's threads), once per group. Both writers run the one
statement that stores events (``state.inbox.insert_events``) and commit before they
return, so a 2xx always means the event is in the inbox:

- ``ThreadedWriter``: any database, through a SQLAlchemy session on a worker thread (the
  embedded default, on SQLite);
- ``PostgresWriter``: production, that statement compiled once per group size and run
  through an asyncio psycopg pool, without leaving the event loop.

Waiting on the database, the group's turn included, is bounded (``wait``): past it, or
when the database cannot be reached, ``store`` raises ``DatabaseUnavailable`` and the
receiver answers 503 with Retry-After. The write is not cut short (on PostgreSQL the
server ends it at the same bound, rolled back: ``statement_timeout``); one that commits
after all, the lock gone just then, still counts: the sender's retry is a duplicate (200),
and the sweeper hands the event on.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.concurrency import run_in_threadpool

from state.db import session_scope, urgent_writes
from state.inbox import CompiledInsert, compile_insert, key_of, new_event, store_events, stored_ids
from worker.intake.group import DatabaseClosing, GroupCommit, Values
from worker.intake.limits import ReceiverLimits
from worker.runtime.jobs import Dispatcher

log = structlog.get_logger(__name__)

T = TypeVar("T")
DEFAULTS = ReceiverLimits()
DEFAULT_WAIT = DEFAULTS.database_wait


class DatabaseUnavailable(Exception):
    """The database did not answer in time, or cannot be reached: nothing was stored."""


class EventWriter(Protocol):
    async def write_many(self, events: Sequence[Values]) -> list[int | None]:
        """Commit ``new_event``s with distinct keys, marked as handed on, in one transaction;
        for each, its inbox id, or None for a duplicate."""
        ...

    async def ready(self) -> None:
        """Raise unless the database answers."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class Inbox:
    def __init__(
        self,
        writer: EventWriter,
        dispatcher: Dispatcher,
        wait: float = DEFAULT_WAIT,
        *,
        window: float = DEFAULTS.group_window,
        size: int = DEFAULTS.group_size,
    ) -> None:
        """``window``, ``size``: how long a group gathers after its first event, and at
        most how many events it holds (``worker.intake.group``)."""
        self._writer = writer
        self._dispatcher = dispatcher
        self._wait = wait
        self._group = GroupCommit(self._commit, window=window, size=size)

    async def store(self, connection: str, source: str, event_id: str, body: bytes) -> int | None:
        """Commit the event and hand it on; its inbox id, or None for a duplicate.
        ``DatabaseUnavailable`` when that takes longer than ``wait``, or cannot be done."""
        values = new_event(
            connection=connection, source=source, event_id=event_id, body=body, dispatched=True
        )
        try:
            return await within(self._wait, self._group.submit(values), keep=_late_commit)
        except TimeoutError:
            raise DatabaseUnavailable(
                f"the database did not answer within {self._wait:g} s"
            ) from None
        except DatabaseClosing:
            raise DatabaseUnavailable("the receiver is stopping") from None

    async def _commit(self, events: Sequence[Values]) -> list[int | None]:
        """One group: one transaction, then one enqueue of the new ids."""
        ids = await self._writer.write_many(events)
        new = [inbox_id for inbox_id in ids if inbox_id is not None]
        if new:
            try:
                await self._dispatcher.ingest_async(new)
            except Exception as error:  # stored is safe: the sweeper sends them again
                log.warning("receive.enqueue_failed", inbox_ids=new, error=str(error))
        return ids

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
        await self._group.close()
        await self._writer.close()


class ThreadedWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _write(self, events: Sequence[Values]) -> list[int | None]:
        try:
            with urgent_writes(), session_scope(self._engine) as session:
                return store_events(session, events)
        except (OperationalError, PoolTimeoutError) as error:  # locked, unreachable, no slot
            raise _unavailable(error) from None
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            raise DatabaseUnavailable("the database dropped the connection") from None

    async def write_many(self, events: Sequence[Values]) -> list[int | None]:
        return await run_in_threadpool(self._write, events)

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
        self._dialect = engine.dialect
        self._inserts: dict[int, _NativeInsert] = {}  # by number of rows, compiled once
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

    async def write_many(self, events: Sequence[Values]) -> list[int | None]:
        insert = self._inserts.get(len(events))
        if insert is None:
            insert = self._inserts[len(events)] = _native(
                compile_insert(self._dialect, len(events))
            )
        parameters = insert.parameters(events)

        async def run(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            # One statement in autocommit: committed when it returns.
            cursor = psycopg.AsyncRawCursor(conn)
            return await (await cursor.execute(insert.sql, parameters)).fetchall()

        rows = await self._run(run)
        return stored_ids([key_of(values) for values in events], rows)

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


@dataclass(frozen=True, slots=True)
class _NativeInsert:
    """A ``CompiledInsert`` with PostgreSQL's own placeholders ($1, $2 …), run through
    psycopg's ``RawCursor``: a cursor converts ``%(name)s`` placeholders on every execution
    of a statement with over 50 parameters (psycopg ``_queries``:
    MAX_CACHED_STATEMENT_PARAMS), which a group's INSERT has (12 columns a row); that was
    8-10% of a receiver process's CPU under load (py-spy)."""

    compiled: CompiledInsert
    sql: str
    order: tuple[str, ...]

    def parameters(self, events: Sequence[Values]) -> list[Any]:
        named = self.compiled.parameters(events)
        return [named[name] for name in self.order]


def _native(compiled: CompiledInsert) -> _NativeInsert:
    order: list[str] = []

    def placeholder(found: re.Match[str]) -> str:
        order.append(found.group(1))
        return f"${len(order)}"

    sql = re.sub(r"%\((\w+)\)s", placeholder, compiled.sql).replace("%%", "%")
    return _NativeInsert(compiled=compiled, sql=sql, order=tuple(order))


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


def _late_commit(inbox_id: int | None) -> None:
    if inbox_id is not None:  # its group's enqueue ran: only the answer was late
        # Answered 503 already: the sender's retry is a duplicate (200), and the sweeper
        # hands the event on once its dispatch looks lost (PLANHAT_SYNC_LOST_AFTER).
        log.warning("receive.committed_after_503", inbox_id=inbox_id)


def _unavailable(error: BaseException) -> DatabaseUnavailable:
    # The driver's first line goes to the log (it names hosts and ports: not for senders);
    # never parameters (hide_parameters, and psycopg's messages carry none).
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    log.warning("receive.database_error", error=lines[0] if lines else type(error).__name__)
    return DatabaseUnavailable(f"the database is unavailable ({type(error).__name__})")
