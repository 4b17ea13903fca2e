"""An event that fails: its dead letter, or a back-off before the next try.

An event that cannot become changes (``bury_event``) is a dead letter at once; a try that
failed for now (``record_failure``: ingest, or completing it from its source or Planhat)
is due again after a back-off, and a dead letter after the last attempt. Never pending
forever (ARCHITECTURE.md, invariant 7).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import structlog
from sqlmodel import Session

from state.tables import DeadLetter, InboxEvent, utcnow

log = structlog.get_logger(__name__)


def bury_event(
    session: Session, event: InboxEvent, reason: str, *, error: str | None = None
) -> None:
    """A dead letter for the event itself (it cannot become changes): ``dlq retry`` runs
    the event again once the cause is fixed. ``error`` goes on the event (else ``reason``).
    This try counts as an attempt."""
    event.status, event.error, event.processed_at = "failed", error or reason, utcnow()
    event.attempts += 1
    session.add(event)
    session.add(
        DeadLetter(
            connection=event.connection,
            model="",
            key=f"event:{event.source}:{event.event_id}",
            key_field="",
            key_value="",
            version=0,
            reason=reason,
            attempts=event.attempts,
            event_id=event.event_id,
            inbox_id=event.id,
        )
    )
    log.warning("ingest.event_buried", inbox_id=event.id, reason=reason)


def record_failure(
    session: Session,
    inbox_id: int,
    reason: str,
    *,
    max_attempts: int,
    backoff: Callable[[int], float],
) -> bool:
    """A try at a pending event failed (ingest, or completing it from its source): it is
    due again after a back-off, and after ``max_attempts`` tries it becomes a dead letter
    with the reason. Never pending forever. Returns whether it was buried."""
    event = session.get(InboxEvent, inbox_id, with_for_update=True)
    if event is None or event.status != "pending":
        return False
    if event.attempts + 1 >= max_attempts:
        bury_event(session, event, f"gave up after {event.attempts + 1} attempts: {reason}")
        return True
    event.attempts += 1
    event.error = reason
    event.next_attempt_at = utcnow() + timedelta(seconds=backoff(event.attempts))
    session.add(event)
    return False
