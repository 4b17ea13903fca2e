"""Repository functions for the inbox: store an event once, find what needs a task.

Every writer of inbox rows runs ``insert_event``: through a session (``store_event``), or
compiled once (``compile_insert``) for the receiver's asyncio path on PostgreSQL. The
receiver commits many events at once (group commit): ``insert_events`` is that one
statement with many rows of values, and ``stored_ids`` reads its answer back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Dialect, bindparam
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
    "stale_changes",
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
        "stale_changes": 0,
    }


Stored = ReturningInsert[tuple[int, str, str, str]]  # id, connection, source, event_id
Key = tuple[str, str, str]  # connection, source, event_id: what makes an event a redelivery


@cache
def insert_event(dialect: str) -> Stored:
    """The one statement that stores an event, for ``dialect`` ("sqlite" or "postgresql"),
    executed with ``new_event``'s values: its inbox id (and key), or no row when that event
    id is stored already (a redelivery). One statement, no savepoint: the hot path."""
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    insert = sqlite_insert(table) if dialect == "sqlite" else postgresql_insert(table)
    statement: Stored = insert.on_conflict_do_nothing(
        index_elements=["connection", "source", "event_id"]
    ).returning(table.c.id, table.c.connection, table.c.source, table.c.event_id)
    return statement


@cache
def insert_events(dialect: str, count: int) -> Stored:
    """``insert_event`` with ``count`` rows of values, bound as ``many_values``'s names: one
    round trip and one commit for a group of events. Its rows say which were new (a row
    returned, in any order: ``stored_ids``); the others were stored already."""
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    rows = [
        {name: bindparam(f"{name}_{n}", type_=table.c[name].type) for name in COLUMNS}
        for n in range(count)
    ]
    return insert_event(dialect).values(rows)


def many_values(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``new_event``'s values of each event, named as ``insert_events`` binds them."""
    return {f"{name}_{n}": values[name] for n, values in enumerate(events) for name in COLUMNS}


def stored_ids(keys: Sequence[Key], rows: Sequence[Sequence[Any]]) -> list[int | None]:
    """For each key, the inbox id ``insert_events`` returned for it, or None: stored already.
    Keys must be distinct: the same event twice in one statement is one row."""
    found = {(row[1], row[2], row[3]): int(row[0]) for row in rows}
    return [found.get(key) for key in keys]


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


def store_events(session: Session, events: Sequence[Mapping[str, Any]]) -> list[int | None]:
    """Insert ``new_event``s with distinct keys in one statement; for each, its inbox id or
    None if it was stored already. The caller commits before acknowledging the senders."""
    statement = insert_events(session.get_bind().dialect.name, len(events))
    rows = session.execute(statement, many_values(events)).all()
    return stored_ids([key_of(values) for values in events], rows)


def key_of(values: Mapping[str, Any]) -> Key:
    return (values["connection"], values["source"], values["event_id"])


@dataclass(frozen=True, slots=True)
class CompiledInsert:
    """``insert_events`` as SQL text for a DB-API driver, with named parameters: for a
    writer that runs outside SQLAlchemy's sessions (the receiver's asyncio pool)."""

    sql: str
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    count: int

    def parameters(self, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``new_event``'s values of ``count`` events as SQLAlchemy would bind them (aware
        times in UTC)."""
        bound = many_values(events)
        for n in range(len(events)):
            for name, process in self.processors:
                bound[f"{name}_{n}"] = process(bound[f"{name}_{n}"])
        return bound


def compile_insert(dialect: Dialect, count: int = 1) -> CompiledInsert:
    """``insert_events`` for ``count`` events compiled for ``dialect``, with its columns'
    bind processing (compile once per count: it costs about a millisecond)."""
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    compiled = insert_events(dialect.name, count).compile(dialect=dialect)
    processors = tuple(
        (name, process)
        for name in COLUMNS
        if (process := table.c[name].type.bind_processor(dialect)) is not None
    )
    return CompiledInsert(sql=compiled.string, processors=processors, count=count)


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
