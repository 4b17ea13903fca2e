"""Pollers: bring in source events that no webhook delivered (beat runs them)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import structlog
from sqlalchemy import Engine

from connectors.stripe.poll import LOOKBACK_SECONDS, events_since
from state.db import session_scope
from state.inbox import store_event
from state.tables import Cursor, utcnow

log = structlog.get_logger(__name__)


def poll_stripe(
    engine: Engine, connection: str, client: httpx.Client, submit: Callable[[list[int]], None]
) -> int:
    """Store every Stripe event since the cursor (less the look-back) that the inbox does
    not hold yet, hand the new ones on, and move the cursor. Returns how many were new."""
    with session_scope(engine) as session:
        cursor = session.get(Cursor, (connection, "stripe"))
        seen = int(cursor.position) if cursor and cursor.position else 0
    events = events_since(client, max(0, seen - LOOKBACK_SECONDS))
    new: list[int] = []
    newest = seen
    with session_scope(engine) as session:
        for event in events:
            inbox_id = store_event(
                session,
                connection=connection,
                source="stripe",
                event_id=str(event["id"]),
                body=json.dumps(event).encode(),
                dispatched=True,
            )
            if inbox_id is not None:
                new.append(inbox_id)
            newest = max(newest, int(event.get("created", 0)))
        row = session.get(Cursor, (connection, "stripe")) or Cursor(
            connection=connection, source="stripe"
        )
        row.position, row.updated_at = str(newest), utcnow()
        session.add(row)
    if new:
        submit(new)
    log.info("poll.stripe", connection=connection, fetched=len(events), new=len(new))
    return len(new)
