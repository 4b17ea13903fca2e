"""Dead letters: list them, send them back through the pipeline, drop them; and replay.

A retried dead letter goes through the same diff as any change (``offer``): if a newer
version has reached Planhat since, it is stale and costs nothing. A dead letter of an
event whose mapping failed re-runs that stored event: replay is always from what we
stored, never by re-sending to the receiver (signatures and timestamps expire).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from state.db import session_scope
from state.tables import DeadLetter, InboxEvent
from worker.pipeline.ingest import awaiting_detail, ingest, offer_again
from worker.pipeline.links import release
from worker.pipeline.write_back import offer_back_again


def list_dead_letters(engine: Engine, *, limit: int = 1000) -> list[DeadLetter]:
    with session_scope(engine) as session:
        query = select(DeadLetter).order_by(col(DeadLetter.id)).limit(limit)
        return list(session.exec(query))


def describe(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "connection": letter.connection,
        "model": letter.model or None,
        "written_back_to": letter.target,
        "quarantine": letter.quarantine,
        "key": letter.key,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "event_id": letter.event_id,
        "created_at": letter.created_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    letter_id: int
    connection: str
    result: str  # "queued", "stale", "unchanged", "event re-run"


def retry(
    engine: Engine,
    letter_ids: list[int] | None,
    *,
    default_options: Mapping[str, str] | None = None,
    tick: Callable[[int, int], None] = lambda done, total: None,
) -> list[RetryOutcome]:
    """Send dead letters back (all of them when ``letter_ids`` is None); ``tick(done,
    total)`` after each (a progress display)."""
    outcomes: list[RetryOutcome] = []
    with session_scope(engine) as session:
        query = select(DeadLetter).order_by(col(DeadLetter.id))
        if letter_ids is not None:
            query = query.where(col(DeadLetter.id).in_(letter_ids))
        letters = list(session.exec(query))
        missing = set(letter_ids or ()) - {letter.id for letter in letters}
        if missing:
            raise LookupError(f"no dead letter with id {', '.join(map(str, sorted(missing)))}")
        for letter in letters:
            assert letter.id is not None
            outcomes.append(
                RetryOutcome(
                    letter.id, letter.connection, _retry_one(session, letter, default_options)
                )
            )
            session.delete(letter)
            tick(len(outcomes), len(letters))
    return outcomes


def _retry_one(
    session: Session, letter: DeadLetter, default_options: Mapping[str, str] | None
) -> str:
    if not letter.model:  # the event itself failed to map: run it again
        event = session.get(InboxEvent, letter.inbox_id) if letter.inbox_id else None
        if event is None:
            raise LookupError(f"dead letter {letter.id}: its stored event is gone")
        if awaiting_detail(event):  # never completed: fetch again, then ingest
            event.status, event.dispatched_at, event.error = "pending", None, None
            session.add(event)
            return "event sent back to be completed"
        ingest(session, event.id or 0, again=True, default_options=default_options)
        return "event re-run"
    if letter.quarantine:  # a record quarantined for flapping
        return release(session, letter)
    if letter.target:  # a write back to a source
        return offer_back_again(session, letter)
    return str(offer_again(session, letter))


def drop(engine: Engine, letter_id: int) -> None:
    with session_scope(engine) as session:
        letter = session.get(DeadLetter, letter_id)
        if letter is None:
            raise LookupError(f"no dead letter with id {letter_id}")
        session.delete(letter)


def replay(
    engine: Engine,
    *,
    since: datetime,
    until: datetime | None = None,
    source: str | None = None,
    default_options: Mapping[str, str] | None = None,
    tick: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Any]:
    """Re-run stored events received since ``since`` (and before ``until``, if given)
    through mapping and diff. What Planhat already has is dropped by the diff, so
    replaying it makes no call. ``tick(done, total)`` after each event (a progress
    display)."""
    ids = events_received(engine, since=since, until=until, source=source)
    queued = 0
    connections: set[str] = set()
    for done, inbox_id in enumerate(ids, 1):
        with session_scope(engine) as session:
            report = ingest(session, inbox_id, again=True, default_options=default_options)
        queued += report.queued
        if report.models:
            connections.add(report.connection)
        tick(done, len(ids))
    return {"events": len(ids), "queued": queued, "connections": sorted(connections)}


def events_received(
    engine: Engine, *, since: datetime, until: datetime | None = None, source: str | None = None
) -> list[int]:
    """Inbox ids of the events a replay of this range re-runs, oldest first."""
    with session_scope(engine) as session:
        query = select(InboxEvent.id).where(InboxEvent.received_at >= since)
        if until is not None:
            query = query.where(InboxEvent.received_at < until)
        if source:
            query = query.where(InboxEvent.source == source)
        return [i for i in session.exec(query.order_by(col(InboxEvent.id))) if i is not None]
