"""Re-read the Planhat records that hints name, before the hints are mapped.

A source with ``PlanhatHints`` delivers hints: "this record changed in Planhat". Its fields
are never trusted. Before ingesting, the worker reads each named record from Planhat with
the connection's own client, each call in turn in the token's one budget (ARCHITECTURE.md,
invariant 6), batched per model (``connectors.planhat.reread.fetch``), and keeps what it
read with the stored event (``inbox_event.detail``), so mapping stays pure and a replay
reads the same thing. A hint that says its record was deleted needs no read.

What goes wrong, and what happens to the hints of that batch:
    no budget within the wait, or a 429      pending, no attempt (a 429 pauses the token
                                             for every worker); the sweeper sends them again
    the connection has no token, its
    secrets are locked, 401/403              pending, no attempt (configuration)
    5xx, timeout, an answer we cannot read   an attempt (``failed``), a dead letter after
                                             the last
    a body that names no record              a dead letter now (it never will)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import structlog
from sqlalchemy import Engine
from sqlmodel import col, select

from connectors.change import MappingError
from connectors.planhat.errors import FatalError, PlanhatError, RateLimitedError
from connectors.planhat.reread import detail, fetch
from connectors.source import Hint, NoBudget, PlanhatHints
from connectors.sources import SOURCES
from state.connections import LockedConnectionError
from state.db import for_update, session_scope
from state.tables import InboxEvent
from worker.pipeline.ingest import bury_event
from worker.runtime.caches import PlanhatClients
from worker.runtime.ratelimit import RateLimiter, budget_taker
from worker.runtime.settings import MissingTokenError

log = structlog.get_logger(__name__)


def reread(
    engine: Engine,
    clients: PlanhatClients,
    limiter: RateLimiter,
    inbox_ids: Sequence[int],
    failed: Callable[[int, str], None],
    *,
    max_wait: float,
) -> None:
    """Read and keep the record each pending hint among ``inbox_ids`` names."""
    hinted = {name for name, source in SOURCES.items() if isinstance(source, PlanhatHints)}
    if not hinted:
        return
    with session_scope(engine) as session:
        rows = session.exec(
            select(InboxEvent.id, InboxEvent.connection, InboxEvent.source, InboxEvent.body)
            .where(col(InboxEvent.id).in_(inbox_ids), col(InboxEvent.source).in_(hinted))
            .where(col(InboxEvent.detail).is_(None), InboxEvent.status == "pending")
            .order_by(col(InboxEvent.id))
        ).all()
    by_connection: dict[str, list[tuple[int, Hint]]] = defaultdict(list)
    for inbox_id, connection, name, body in rows:
        source = SOURCES[name]
        assert isinstance(source, PlanhatHints)
        try:
            by_connection[connection].append((inbox_id or 0, source.hint(body)))
        except MappingError as error:
            _bury(engine, inbox_id or 0, f"not a Planhat hint: {error}")
    for connection, hints in by_connection.items():
        _reread_connection(engine, clients, limiter, connection, hints, failed, max_wait)


def _reread_connection(
    engine: Engine,
    clients: PlanhatClients,
    limiter: RateLimiter,
    connection: str,
    hints: list[tuple[int, Hint]],
    failed: Callable[[int, str], None],
    max_wait: float,
) -> None:
    read: dict[int, bytes] = {}
    by_model: dict[str, list[tuple[int, Hint]]] = defaultdict(list)
    for inbox_id, hint in hints:
        if hint.deleted:  # nothing to read: it is gone
            read[inbox_id] = detail(hint.model, hint.planhat_id, None)
        else:
            by_model[hint.model].append((inbox_id, hint))
    try:
        if by_model:
            with clients.lease(connection) as (planhat, budget):
                take = budget_taker(limiter, budget, max_wait=max_wait)
                for model, group in by_model.items():
                    try:
                        records = fetch(planhat, model, {h.planhat_id for _, h in group}, take)
                    except RateLimitedError as error:
                        limiter.pause(budget, error.retry_after)
                        log.info("reread.rate_limited", connection=connection,
                                 retry_after=error.retry_after)  # fmt: skip
                        break
                    except (NoBudget, FatalError) as error:
                        log.warning("reread.waits", connection=connection, error=str(error))
                        break
                    except PlanhatError as error:
                        for inbox_id, _ in group:
                            failed(inbox_id, f"could not re-read from Planhat: {error}")
                        continue
                    for inbox_id, hint in group:
                        record = records.get(hint.planhat_id)
                        read[inbox_id] = detail(hint.model, hint.planhat_id, record)
    except (LookupError, MissingTokenError, LockedConnectionError) as error:
        log.warning("reread.no_planhat", connection=connection, error=str(error))
    _keep(engine, read)
    log.info("reread.done", connection=connection, hints=len(hints), read=len(read))


def _keep(engine: Engine, read: dict[int, bytes]) -> None:
    if not read:
        return
    with session_scope(engine) as session:
        query = select(InboxEvent).where(col(InboxEvent.id).in_(list(read)))
        events = session.exec(for_update(session, query))
        for event in events:
            if event.detail is None and event.id is not None:
                event.detail = read[event.id]
                session.add(event)


def _bury(engine: Engine, inbox_id: int, reason: str) -> None:
    with session_scope(engine) as session:
        event = session.get(InboxEvent, inbox_id, with_for_update=True)
        if event is not None and event.detail is None and event.status == "pending":
            bury_event(session, event, reason)
