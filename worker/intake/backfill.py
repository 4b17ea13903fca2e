"""Backfill: bring in what a source held before the connection, through the normal pipeline.

A source that lists its objects (``Backfilled.object_lists``) is read a list and a page at
a time; each object comes wrapped as the event its webhook would carry, with a
deterministic event id, and is stored in the inbox like a polled event (deduped by event
id, handed on to ingest), so the one mapping, the diff and the bulk flush take it. A
``Polled`` source without lists is backfilled by its feeds, read from the beginning (or
``since``) in rounds until one brings nothing newer: its poller's first reads already are
a backfill.

Resumable: after each page, in the transaction that stores it, the list's position (the
page's ``next``) is kept as a cursor row ``backfill:<source>:<list>``; run again with the
same ``since``, a list goes on from there; finished, the row goes, and a later run reads
everything again (what the inbox holds already is counted as known, not stored twice).
A feed's position is the newest one its last round saw, kept the same way.

A source's 429 waits as long as it says (``Retry-After``), then the page is asked again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

import httpx
import structlog
from sqlalchemy import Engine

from connectors.source import Backfilled, Feed, HasApi, ObjectPage, Polled, ThinEvents
from connectors.sources import SOURCES, Source, credentials_of, source_options
from state.connections import Tenant
from state.db import session_scope
from state.inbox import new_event, store_events
from state.tables import Cursor, utcnow
from worker.intake.poll import SourceApis

log = structlog.get_logger(__name__)

CURSOR_PREFIX = "backfill:"
CURSOR_LENGTH = 32  # cursor.source's width (state/tables.py)
RATE_LIMITED_TRIES = 20  # 429s in a row on one page before its error is the answer
DEFAULT_WAIT, MAX_WAIT = 2.0, 120.0  # seconds a 429 waits: without Retry-After, at most


class BackfillError(Exception):
    """A backfill that cannot start as asked; the message says why, in one line."""


@dataclass(slots=True)
class Tally:
    """What one list (or feed) of a backfill did so far."""

    name: str
    pages: int = 0
    stored: int = 0  # new in the inbox, handed on to ingest
    known: int = 0  # the inbox held them already (an earlier run, a webhook, a poll)
    ignored: int = 0  # of those stored, how many the mapping turns into nothing
    resumed: bool = False  # went on from a position an interrupted run kept


class Progress(Protocol):
    def begin(self, name: str, resumed: bool) -> None: ...

    def advance(self, tally: Tally) -> None: ...

    def finish(self, tally: Tally) -> None: ...


@dataclass(frozen=True, slots=True)
class Reader:
    """One list or feed of a source: ``read(position)`` gives a page."""

    name: str
    cursor: str
    read: Callable[[str | None], ObjectPage]
    client: httpx.Client


def readers(tenant: Tenant, source_name: str, apis: SourceApis, since: int | None) -> list[Reader]:
    """What a backfill of ``source_name`` for ``tenant`` reads, in order. Raises
    ``BackfillError`` for an unknown source, one with nothing to backfill, or a connection
    without the credentials (or options) to read it; nothing is read yet."""
    source = SOURCES.get(source_name)
    if source is None:
        raise BackfillError(f"unknown source {source_name!r} (known: {', '.join(SOURCES)})")
    if not isinstance(source, (Backfilled, Polled)):
        raise BackfillError(
            f"{source_name} has no backfill: the worker reads no list of its past records "
            "(its events arrive by webhook only)"
        )
    options = source_options(source, tenant.options)
    credentials = credentials_of(source, tenant.secrets)
    base = apis.base(source_name)
    found: list[Reader] = []
    if isinstance(source, Backfilled):
        for objects, client in source.object_lists(credentials, options, base):
            name = f"{source_name}:{objects.name}"
            read = _object_reader(objects.fetch, client, since)
            found.append(Reader(objects.name, cursor_name(name), read, client))
    else:
        for feed, client in source.feeds(credentials, options, base):
            read = _feed_reader(feed, client, since or 0)
            found.append(Reader(feed.cursor_name, cursor_name(feed.cursor_name), read, client))
    if not found:
        raise BackfillError(_cannot_read(source, tenant.name, credentials))
    return found


def _object_reader(
    fetch: Callable[[httpx.Client, str | None, int | None], ObjectPage],
    client: httpx.Client,
    since: int | None,
) -> Callable[[str | None], ObjectPage]:
    return lambda position: fetch(client, position, since)


def _feed_reader(
    feed: Feed, client: httpx.Client, since: int
) -> Callable[[str | None], ObjectPage]:
    """A feed read in rounds, as its poller reads it poll after poll: each round from the
    newest position the last one saw (a feed's fetch may stop after a few pages of the
    source's own), until a round brings nothing newer."""

    def read(position: str | None) -> ObjectPage:
        start = int(position) if position else since
        events = feed.fetch(client, start)
        pairs = [(feed.event_id(event), json.dumps(event).encode()) for event in events]
        newest = max((feed.position(event) for event in events), default=start)
        return ObjectPage(events=pairs, next=str(newest) if newest > start else None)

    return read


def _cannot_read(source: Source, connection: str, credentials: dict[str, str]) -> str:
    names = [c.name for c in source.credentials] if isinstance(source, HasApi) else []
    missing = [name for name in names if name not in credentials]
    if missing:
        secrets = ", ".join(f"{source.name}:{name}" for name in missing)
        env = ", ".join(f"{source.name}_{name}".upper() for name in missing)
        return (
            f"connection {connection!r} has no {secrets} to read {source.name} with "
            f"(connections add --secret {source.name}:NAME=VALUE; for default: {env})"
        )
    return (
        f"connection {connection!r}: {source.name}'s options name nothing to read "
        f"(see its options: {', '.join(option.name for option in source.options)})"
    )


def cursor_name(name: str) -> str:
    """``backfill:<name>``, within the cursor column's width (a digest when longer)."""
    full = CURSOR_PREFIX + name
    if len(full) <= CURSOR_LENGTH:
        return full
    return CURSOR_PREFIX + hashlib.sha256(name.encode()).hexdigest()[: CURSOR_LENGTH - 9]


def run(
    engine: Engine,
    tenant: Tenant,
    source_name: str,
    found: Sequence[Reader],
    *,
    since: int | None,
    submit: Callable[[list[int]], None] | None,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Tally]:
    """Read every list in turn, storing each page (and its position) in one transaction.
    ``submit``: hands new inbox ids on to ingest; None leaves them to the sweeper.
    Errors of the source API (``httpx.HTTPError``) propagate; what was stored stays."""
    source = SOURCES[source_name]
    options = source_options(source, tenant.options)
    tallies: list[Tally] = []
    with ExitStack() as clients:
        for reader in found:
            clients.enter_context(reader.client)
        for reader in found:
            tally = _read(
                engine, tenant.name, source, options, reader, since, submit, progress, sleep
            )
            tallies.append(tally)
    return tallies


def _read(
    engine: Engine,
    connection: str,
    source: Source,
    options: dict[str, str],
    reader: Reader,
    since: int | None,
    submit: Callable[[list[int]], None] | None,
    progress: Progress,
    sleep: Callable[[float], None],
) -> Tally:
    position = _saved_position(engine, connection, reader.cursor, since)
    tally = Tally(reader.name, resumed=position is not None)
    progress.begin(reader.name, tally.resumed)
    while True:
        page = _read_page(reader, position, sleep)
        new: list[int] = []
        events = dict(page.events)  # an event id twice on one page is one event
        with session_scope(engine) as session:
            # One INSERT for the page, as the receiver stores a group of webhooks.
            stored = store_events(session, [
                new_event(connection=connection, source=source.name, event_id=event_id,
                          body=body, dispatched=submit is not None)
                for event_id, body in events.items()
            ]) if events else []  # fmt: skip
            for (event_id, body), inbox_id in zip(events.items(), stored, strict=True):
                if inbox_id is None:
                    tally.known += 1
                    continue
                new.append(inbox_id)
                tally.ignored += _maps_to_nothing(source, options, event_id, body)
            row = session.get(Cursor, (connection, reader.cursor))
            if page.next is None:
                if row is not None:
                    session.delete(row)  # finished: the next run reads everything again
            else:
                row = row or Cursor(connection=connection, source=reader.cursor)
                row.position = json.dumps({"since": since, "after": page.next})
                row.updated_at = utcnow()
                session.add(row)
        if new and submit is not None:
            submit(new)
        tally.pages += 1
        tally.stored += len(new)
        progress.advance(tally)
        log.info("backfill.page", connection=connection, source=source.name, objects=reader.name,
                 page=tally.pages, stored=len(new), known=len(page.events) - len(new))  # fmt: skip
        if page.next is None:
            progress.finish(tally)
            return tally
        position = page.next


def _read_page(reader: Reader, position: str | None, sleep: Callable[[float], None]) -> ObjectPage:
    """A page; a 429 waits the ``Retry-After`` the source asks for (not every source
    sends one, hence a default), then asks again."""
    for _ in range(RATE_LIMITED_TRIES):
        try:
            return reader.read(position)
        except httpx.HTTPStatusError as error:
            if error.response.status_code != 429:
                raise
            wait = _retry_after(error.response.headers.get("retry-after"))
            log.info("backfill.rate_limited", objects=reader.name, wait=wait)
            sleep(wait)
    return reader.read(position)


def _retry_after(header: str | None) -> float:
    try:
        return min(max(float(header or DEFAULT_WAIT), 0.0), MAX_WAIT)
    except ValueError:  # an HTTP date: rare from an API; wait the default
        return DEFAULT_WAIT


def _saved_position(engine: Engine, connection: str, cursor: str, since: int | None) -> str | None:
    """Where an interrupted run of the same ``since`` stopped (None: from the start)."""
    with session_scope(engine) as session:
        row = session.get(Cursor, (connection, cursor))
        saved = row.position if row else ""
    if not saved:
        return None
    kept = json.loads(saved)
    if kept.get("since") != since:
        log.info("backfill.restart", connection=connection, cursor=cursor,
                 reason="another --since than the interrupted run")  # fmt: skip
        return None
    after = kept.get("after")
    return str(after) if after else None


def _maps_to_nothing(source: Source, options: dict[str, str], event_id: str, body: bytes) -> bool:
    """Whether the mapping makes nothing of the event: ingest will mark it ignored. A thin
    event is mapped only once completed, and one that cannot be mapped becomes a dead
    letter in ingest: neither counts here."""
    if isinstance(source, ThinEvents):
        return False
    try:
        return not source.changes(body, event_id, options)
    except Exception:
        return False


def describe(tallies: Sequence[Tally]) -> Iterator[str]:
    """One summary line a list."""
    for tally in tallies:
        resumed = " (resumed)" if tally.resumed else ""
        yield (
            f"{tally.name}{resumed}: {tally.pages} pages, {tally.stored} stored, "
            f"{tally.known} already known, {tally.ignored} ignored (nothing for Planhat)"
        )
