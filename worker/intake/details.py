"""Complete thin events from their source's API before they are mapped.

Some deliveries only name what changed (a callback that names a survey response but
carries no answers). Before ingesting, the worker asks the source (``ThinEvents.detail``),
outside any transaction, and keeps what it fetched with the stored event
(``inbox_event.detail``). A fetch that fails for now (timeout, 5xx, 429) counts an
attempt: the sweeper sends the event again after a back-off, and after the last it is a
dead letter. One that can never succeed (``CannotComplete``: no credentials, the record is
gone) buries the event with the reason at once. A source that says its API's rate limit
is reached (``NoBudget``: a 429 and its wait) costs no attempt: the event, and the batch's
other events of that source and connection (not asked: they would be refused too), are
due again after the wait, and the next sweep sends them then. ``dlq retry`` fetches again
once the cause is fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

import httpx
import structlog
from sqlalchemy import Engine
from sqlmodel import col, select

from connectors.source import CannotComplete, NoBudget, ThinEvents
from connectors.sources import SOURCES, credentials_of
from state.connections import Connections, LockedConnectionError
from state.db import session_scope
from state.tables import InboxEvent, utcnow
from worker.intake.poll import SourceApis
from worker.pipeline.ingest import bury_event

log = structlog.get_logger(__name__)


def complete(
    engine: Engine,
    connections: Connections,
    apis: SourceApis,
    inbox_ids: Sequence[int],
    failed: Callable[[int, str], None],
) -> None:
    """Fetch and keep the detail of every thin, pending event among ``inbox_ids``. A fetch
    that fails for now is ``failed(inbox_id, reason)``: an attempt, and a dead letter after
    the last."""
    thin = {name: source for name, source in SOURCES.items() if isinstance(source, ThinEvents)}
    if not thin:
        return
    with session_scope(engine) as session:
        rows = session.exec(
            select(InboxEvent.id, InboxEvent.connection, InboxEvent.source, InboxEvent.body)
            .where(col(InboxEvent.id).in_(inbox_ids), col(InboxEvent.source).in_(thin))
            .where(col(InboxEvent.detail).is_(None), InboxEvent.status == "pending")
        ).all()
    waiting: dict[tuple[str, str], float] = {}  # (connection, source) → its wait
    for inbox_id, connection, name, body in rows:
        source = thin[name]
        if (connection, name) in waiting:
            _wait(engine, inbox_id or 0, waiting[connection, name])
            continue
        try:
            tenant = connections.get(connection)
        except LockedConnectionError:
            continue  # pending until its secrets open again (Connections logs why)
        credentials = credentials_of(source, tenant.secrets) if tenant else {}
        try:
            detail = source.detail(credentials, apis.base(name), body)
        except CannotComplete as error:
            with session_scope(engine) as session:
                event = session.get(InboxEvent, inbox_id, with_for_update=True)
                if event is not None and event.detail is None:
                    bury_event(session, event, f"could not complete the event: {error}")
            continue
        except NoBudget as error:
            log.info("detail.rate_limited", inbox_id=inbox_id, source=name, wait=error.wait)
            waiting[connection, name] = error.wait
            _wait(engine, inbox_id or 0, error.wait)
            continue
        except (httpx.HTTPError, ValueError, KeyError) as error:
            log.warning("detail.failed", inbox_id=inbox_id, source=name, error=str(error))
            failed(inbox_id or 0, f"could not complete the event: {error}")
            continue
        with session_scope(engine) as session:
            event = session.get(InboxEvent, inbox_id, with_for_update=True)
            if event is not None and event.detail is None:
                event.detail = detail
                session.add(event)


def _wait(engine: Engine, inbox_id: int, seconds: float) -> None:
    """Due again in ``seconds``, no attempt counted (the source's rate limit), and no task
    out for it: the next sweep after that sends it (not ``lost_after`` later)."""
    with session_scope(engine) as session:
        event = session.get(InboxEvent, inbox_id, with_for_update=True)
        if event is not None and event.detail is None and event.status == "pending":
            event.next_attempt_at = utcnow() + timedelta(seconds=seconds)
            event.dispatched_at = None
            session.add(event)
