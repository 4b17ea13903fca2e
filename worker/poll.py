"""Pollers: bring in source events that no webhook delivered (beat runs them).

Every source's events API works the same way here: fetch what happened since the stored
cursor less a look-back window, store each event the inbox does not hold yet (deduped by
event id, so webhooks and polls never double up), hand the new ones on, move the cursor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from sqlalchemy import Engine

from connectors.chargebee import poll as chargebee
from connectors.stripe import poll as stripe
from state.db import session_scope
from state.inbox import store_event
from state.tables import Cursor, utcnow

log = structlog.get_logger(__name__)

# Where a connection's source API credentials sit among its secrets.
STRIPE_API_KEY = "stripe:api_key"
CHARGEBEE_API_KEY = "chargebee:api_key"
CHARGEBEE_SITE = "chargebee:site"  # "acme" for acme.chargebee.com


@dataclass(frozen=True, slots=True)
class Feed:
    source: str
    fetch: Callable[[httpx.Client, int], list[Any]]  # events from a unix time, oldest first
    position: str  # the event field that orders them (unix seconds)
    lookback: int  # seconds asked again before the cursor


STRIPE = Feed("stripe", stripe.events_since, "created", stripe.LOOKBACK_SECONDS)
CHARGEBEE = Feed("chargebee", chargebee.events_since, "occurred_at", chargebee.LOOKBACK_SECONDS)


@dataclass(frozen=True, slots=True)
class SourceApis:
    """Base URLs of the source APIs (local fakes in tests)."""

    stripe: str = stripe.STRIPE_API
    chargebee: str | None = None  # None: https://<the connection's site>.chargebee.com


def feeds(secrets: Mapping[str, str], apis: SourceApis) -> Iterator[tuple[Feed, httpx.Client]]:
    """The feeds a connection can be polled on: those it has an API key for."""
    if key := secrets.get(STRIPE_API_KEY):
        yield STRIPE, stripe.stripe_client(key, apis.stripe)
    site = apis.chargebee or secrets.get(CHARGEBEE_SITE)
    if (key := secrets.get(CHARGEBEE_API_KEY)) and site:
        yield CHARGEBEE, chargebee.chargebee_client(key, chargebee.chargebee_base_url(site))


def poll(
    engine: Engine,
    connection: str,
    feed: Feed,
    client: httpx.Client,
    submit: Callable[[list[int]], None],
) -> int:
    """Store every event since the cursor (less the look-back) that the inbox does not
    hold yet, hand the new ones on, and move the cursor. Returns how many were new."""
    with session_scope(engine) as session:
        cursor = session.get(Cursor, (connection, feed.source))
        seen = int(cursor.position) if cursor and cursor.position else 0
    events = feed.fetch(client, max(0, seen - feed.lookback))
    new: list[int] = []
    newest = seen
    with session_scope(engine) as session:
        for event in events:
            inbox_id = store_event(
                session,
                connection=connection,
                source=feed.source,
                event_id=str(event["id"]),
                body=json.dumps(event).encode(),
                dispatched=True,
            )
            if inbox_id is not None:
                new.append(inbox_id)
            newest = max(newest, int(event.get(feed.position, 0)))
        row = session.get(Cursor, (connection, feed.source)) or Cursor(
            connection=connection, source=feed.source
        )
        row.position, row.updated_at = str(newest), utcnow()
        session.add(row)
    if new:
        submit(new)
    log.info("poll", source=feed.source, connection=connection, fetched=len(events), new=len(new))
    return len(new)


def poll_stripe(
    engine: Engine, connection: str, client: httpx.Client, submit: Callable[[list[int]], None]
) -> int:
    return poll(engine, connection, STRIPE, client, submit)


def poll_chargebee(
    engine: Engine, connection: str, client: httpx.Client, submit: Callable[[list[int]], None]
) -> int:
    return poll(engine, connection, CHARGEBEE, client, submit)
