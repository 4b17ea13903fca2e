"""Repository functions for the inbox: store an event once, find what needs a task."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
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
    event = InboxEvent(
        connection=connection,
        source=source,
        event_id=event_id,
        body=body,
        dispatched_at=utcnow() if dispatched else None,
    )
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        return None
    assert event.id is not None
    return event.id


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
