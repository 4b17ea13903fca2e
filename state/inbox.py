"""Repository functions for the inbox: store an event once, find what needs a task."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from state.tables import InboxEvent, utcnow


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
    (a redelivery). The caller commits before acknowledging the sender. ``dispatched``:
    the caller sends its task right after the commit (saves a second write)."""
    values = {
        "connection": connection,
        "source": source,
        "event_id": event_id,
        "body": body,
        "received_at": utcnow(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": utcnow(),
        "dispatched_at": utcnow() if dispatched else None,
    }
    # One statement, no savepoint: the receiver's hot path. A repeated event id inserts
    # nothing and returns no row.
    insert = _insert_for(session).values(**values)
    statement = insert.on_conflict_do_nothing(
        index_elements=["connection", "source", "event_id"]
    ).returning(InboxEvent.id)
    inbox_id = session.execute(statement).scalar_one_or_none()
    return int(inbox_id) if inbox_id is not None else None


def _insert_for(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    table = InboxEvent.__table__  # type: ignore[attr-defined]
    return sqlite_insert(table) if dialect == "sqlite" else postgresql_insert(table)


def mark_dispatched(session: Session, ids: Sequence[int], when: datetime | None = None) -> None:
    when = when or utcnow()
    for event in session.exec(select(InboxEvent).where(col(InboxEvent.id).in_(ids))):
        event.dispatched_at = when
        session.add(event)


def lost_events(session: Session, *, lost_after: float, limit: int = 5000) -> list[int]:
    """Pending events whose task was sent long enough ago to count as lost (or never)."""
    cutoff = utcnow() - timedelta(seconds=lost_after)
    query = (
        select(InboxEvent.id)
        .where(InboxEvent.status == "pending", InboxEvent.next_attempt_at <= utcnow())
        .where((col(InboxEvent.dispatched_at).is_(None)) | (col(InboxEvent.dispatched_at) < cutoff))
        .order_by(col(InboxEvent.id))
        .limit(limit)
    )
    return [event_id for event_id in session.exec(query) if event_id is not None]


def has_pending(session: Session, connection: str) -> bool:
    """Whether events of ``connection`` still wait to be ingested."""
    query = select(InboxEvent.id).where(
        InboxEvent.connection == connection, InboxEvent.status == "pending"
    )
    return session.exec(query.limit(1)).first() is not None
