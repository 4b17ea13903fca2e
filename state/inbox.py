"""Repository functions for the inbox: store an event once, find what needs a task.

Every writer of inbox rows runs ``insert_event``: through a session (``store_event``), or
compiled once (``compile_insert``) for the receiver's asyncio path on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import Session, col, select

from state.tables import InboxEvent, utcnow

COLUMNS = (
    "connection",
    "source",
    "event_id",
    "body",
    "received_at",
    "status",
    "attempts",
    "next_attempt_at",
    "dispatched_at",
)


def new_event(
    *, connection: str, source: str, event_id: str, body: bytes, dispatched: bool = False
) -> dict[str, Any]:
    """The values of a new inbox row, named as ``insert_event`` binds them (``COLUMNS``).
    ``dispatched``: its task is sent right after the commit (saves a second write)."""
    now = utcnow()
    return {
        "connection": connection,
        "source": source,
        "event_id": event_id,
        "body": body,
        "received_at": now,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "dispatched_at": now if dispatched else None,
    }


@cache
def insert_event(dialect: str) -> ReturningInsert[tuple[int]]:
    """The one statement that stores an event, for ``dialect`` ("sqlite" or "postgresql"),
    executed with ``new_event``'s values: its inbox id, or no row when that event id is
    stored already (a redelivery). One statement, no savepoint: the receiver's hot path."""
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    insert = sqlite_insert(table) if dialect == "sqlite" else postgresql_insert(table)
    statement: ReturningInsert[tuple[int]] = insert.on_conflict_do_nothing(
        index_elements=["connection", "source", "event_id"]
    ).returning(table.c.id)
    return statement


def store_event(
    session: Session,
    *,
    connection: str,
    source: str,
    event_id: str,
    body: bytes,
    dispatched: bool = False,
) -> int | None:
    """Insert a verified event; its inbox id, or None if this event id is already stored
    (a redelivery). The caller commits before acknowledging the sender."""
    values = new_event(
        connection=connection, source=source, event_id=event_id, body=body, dispatched=dispatched
    )
    statement = insert_event(session.get_bind().dialect.name)
    inbox_id = session.execute(statement, values).scalar_one_or_none()
    return int(inbox_id) if inbox_id is not None else None


@dataclass(frozen=True, slots=True)
class CompiledInsert:
    """``insert_event`` as SQL text for a DB-API driver, with named parameters: for a writer
    that runs outside SQLAlchemy's sessions (the receiver's asyncio pool)."""

    sql: str
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def parameters(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``new_event``'s values as SQLAlchemy would bind them (aware times in UTC)."""
        bound = dict(values)
        for name, process in self.processors:
            bound[name] = process(bound[name])
        return bound


def compile_insert(dialect: Dialect) -> CompiledInsert:
    """``insert_event`` compiled once for ``dialect``, with its columns' bind processing."""
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    compiled = insert_event(dialect.name).compile(dialect=dialect, column_keys=list(COLUMNS))
    processors = tuple(
        (name, process)
        for name in COLUMNS
        if (process := table.c[name].type.bind_processor(dialect)) is not None
    )
    return CompiledInsert(sql=compiled.string, processors=processors)


def mark_dispatched(session: Session, ids: Sequence[int], when: datetime | None = None) -> None:
    when = when or utcnow()
    for event in session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(ids))):
        event.dispatched_at = when
        session.add(event)


def lost_events(session: Session, *, lost_after: float, limit: int = 5000) -> list[int]:
    """Pending events whose task was sent long enough ago to count as lost (or never), the
    longest due first: events that keep failing are due later each time (their back-off),
    so however many there are, they never starve newer ones."""
    cutoff = utcnow() - timedelta(seconds=lost_after)
    query = (
        select(InboxEvent.id)
        .where(InboxEvent.status == "pending", InboxEvent.next_attempt_at <= utcnow())
        .where((col(InboxEvent.dispatched_at).is_(None)) | (col(InboxEvent.dispatched_at) < cutoff))
        .order_by(col(InboxEvent.next_attempt_at), col(InboxEvent.id))
        .limit(limit)
    )
    return [event_id for event_id in session.exec(query) if event_id is not None]


def has_pending(session: Session, connection: str) -> bool:
    """Whether events of ``connection`` still wait to be ingested."""
    query = select(InboxEvent.id).where(
        InboxEvent.connection == connection, InboxEvent.status == "pending"
    )
    return session.exec(query.limit(1)).first() is not None
