"""Pollers: bring in source events that no webhook delivered (beat runs them).

Every source's events API works the same way here: fetch what happened since the stored
cursor less a look-back window, store each event the inbox does not hold yet (deduped by
event id, so webhooks and polls never double up), hand the new ones on, move the cursor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from sqlalchemy import Engine

from connectors.chargebee import poll as chargebee
from connectors.stripe import poll as stripe
from connectors.surveymonkey.api import SURVEYMONKEY_API
from connectors.typeform import poll as typeform
from state.connections import Tenant
from state.db import session_scope
from state.inbox import store_event
from state.tables import Cursor, utcnow

log = structlog.get_logger(__name__)

# Where a connection's source API credentials sit among its secrets.
STRIPE_API_KEY = "stripe:api_key"
CHARGEBEE_API_KEY = "chargebee:api_key"
CHARGEBEE_SITE = "chargebee:site"  # "acme" for acme.chargebee.com
TYPEFORM_API_KEY = "typeform:api_key"  # a personal access token with responses:read
SURVEYMONKEY_ACCESS_TOKEN = "surveymonkey:access_token"  # noqa: S105 - a key name


@dataclass(frozen=True, slots=True)
class Feed:
    source: str
    fetch: Callable[[httpx.Client, int], list[Any]]  # events from a unix time, oldest first
    position: Callable[[Any], int]  # an event's place in time (unix seconds)
    event_id: Callable[[Any], str]  # its id, the same a webhook delivery is stored under
    lookback: int  # seconds asked again before the cursor
    cursor: str = ""  # the cursor's name when a source has several feeds; else the source's


def _id(event: Any) -> str:
    return str(event["id"])


STRIPE = Feed("stripe", stripe.events_since, lambda e: int(e.get("created", 0)), _id,
              stripe.LOOKBACK_SECONDS)  # fmt: skip
CHARGEBEE = Feed("chargebee", chargebee.events_since, lambda e: int(e.get("occurred_at", 0)),
                 _id, chargebee.LOOKBACK_SECONDS)  # fmt: skip


def typeform_feed(form_id: str) -> Feed:
    return Feed(
        "typeform",
        lambda client, since: typeform.responses_since(client, form_id, since),
        typeform.submitted,
        lambda event: str(event["form_response"]["token"]),  # as connectors/typeform/verify
        typeform.LOOKBACK_SECONDS,
        cursor=f"typeform:{form_id}",
    )


@dataclass(frozen=True, slots=True)
class SourceApis:
    """Base URLs of the source APIs (local fakes in tests)."""

    stripe: str = stripe.STRIPE_API
    chargebee: str | None = None  # None: https://<the connection's site>.chargebee.com
    typeform: str = typeform.TYPEFORM_API
    surveymonkey: str = SURVEYMONKEY_API


def feeds(tenant: Tenant, apis: SourceApis) -> Iterator[tuple[Feed, httpx.Client]]:
    """The feeds a connection can be polled on: those it has an API key for."""
    secrets = tenant.secrets
    if key := secrets.get(STRIPE_API_KEY):
        yield STRIPE, stripe.stripe_client(key, apis.stripe)
    site = apis.chargebee or secrets.get(CHARGEBEE_SITE)
    if (key := secrets.get(CHARGEBEE_API_KEY)) and site:
        yield CHARGEBEE, chargebee.chargebee_client(key, chargebee.chargebee_base_url(site))
    forms = tenant.options.get("typeform.forms", "")
    if (key := secrets.get(TYPEFORM_API_KEY)) and forms:
        for form_id in filter(None, (form.strip() for form in forms.split(","))):
            yield typeform_feed(form_id), typeform.typeform_client(key, apis.typeform)


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
        cursor = session.get(Cursor, (connection, feed.cursor or feed.source))
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
                event_id=feed.event_id(event),
                body=json.dumps(event).encode(),
                dispatched=True,
            )
            if inbox_id is not None:
                new.append(inbox_id)
            newest = max(newest, feed.position(event))
        name = feed.cursor or feed.source
        row = session.get(Cursor, (connection, name)) or Cursor(connection=connection, source=name)
        row.position, row.updated_at = str(newest), utcnow()
        session.add(row)
    if new:
        submit(new)
    log.info("poll", source=feed.source, connection=connection, fetched=len(events), new=len(new))
    return len(new)
