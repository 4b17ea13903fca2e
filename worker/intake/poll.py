"""Pollers: bring in source events that no webhook delivered (beat runs them).

Every source's events API works the same way here: fetch what happened since the stored
cursor less a look-back window, store each event the inbox does not hold yet (deduped by
event id, so webhooks and polls never double up), hand the new ones on, move the cursor.
Which feeds a connection has is the source's business (``Polled.feeds``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import structlog
from sqlalchemy import Engine

from connectors.source import Feed, Polled
from connectors.sources import SOURCES, OptionError, credentials_of, source_options
from state.connections import Tenant
from state.db import session_scope
from state.inbox import store_event
from state.tables import Cursor, utcnow

log = structlog.get_logger(__name__)


class SourceApis:
    """Base URLs that replace the source APIs' own (local fakes in tests): source → URL."""

    def __init__(self, **bases: str | None) -> None:
        self._bases = {name: url for name, url in bases.items() if url}

    def base(self, source: str) -> str | None:
        """The override for ``source``, or None: the source uses its own ``api_base``."""
        return self._bases.get(source)


def feeds(tenant: Tenant, apis: SourceApis) -> Iterator[tuple[Feed, httpx.Client]]:
    """The feeds a connection can be polled on: those its credentials can read."""
    for source in SOURCES.values():
        if not isinstance(source, Polled):
            continue
        try:
            options = source_options(source, tenant.options)
        except OptionError as error:  # said at every poll until the option is fixed
            log.warning("poll.bad_options", source=source.name, connection=tenant.name,
                        error=str(error))  # fmt: skip
            continue
        credentials = credentials_of(source, tenant.secrets)
        yield from source.feeds(credentials, options, apis.base(source.name))


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
        cursor = session.get(Cursor, (connection, feed.cursor_name))
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
        name = feed.cursor_name
        row = session.get(Cursor, (connection, name)) or Cursor(connection=connection, source=name)
        row.position, row.updated_at = str(newest), utcnow()
        session.add(row)
    if new:
        submit(new)
    log.info("poll", source=feed.source, connection=connection, fetched=len(events), new=len(new))
    return len(new)
