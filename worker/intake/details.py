"""Complete thin events from their source's API before they are mapped.

A SurveyMonkey callback names a response but carries no answers. Before ingesting, the
worker fetches what the mapping needs (connectors/surveymonkey/api.py), outside any
transaction, and keeps it with the stored event (``inbox_event.detail``). A fetch that
fails for now (timeout, 5xx, 429) leaves the event pending: the sweeper sends it again.
One that can never succeed (no access token, the response is gone) buries the event with
the reason, and ``dlq retry`` fetches again once that is fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx
import structlog
from sqlalchemy import Engine
from sqlmodel import col, select

from connectors.sources import SOURCES
from connectors.surveymonkey import api as surveymonkey
from state.connections import Connections
from state.db import session_scope
from state.tables import InboxEvent
from worker.intake.poll import SURVEYMONKEY_ACCESS_TOKEN, SourceApis
from worker.pipeline.ingest import bury_event

log = structlog.get_logger(__name__)


class CannotComplete(Exception):
    """This event can never be completed as things are; the message says why."""


def fetch_surveymonkey(secrets: Mapping[str, str], apis: SourceApis, body: bytes) -> bytes:
    token = secrets.get(SURVEYMONKEY_ACCESS_TOKEN)
    if not token:
        raise CannotComplete(
            "no SurveyMonkey access token to fetch the response with: set "
            "SURVEYMONKEY_ACCESS_TOKEN (default) or --secret surveymonkey:access_token=…"
        )
    try:
        surveymonkey.callback(body)
    except ValueError as error:  # never gets better by asking again
        raise CannotComplete(str(error)) from None
    with surveymonkey.surveymonkey_client(token, apis.surveymonkey) as client:
        try:
            return surveymonkey.detail(client, body)
        except httpx.HTTPStatusError as error:
            if error.response.status_code in (401, 403, 404):
                raise CannotComplete(
                    f"SurveyMonkey answered {error.response.status_code} for "
                    f"{error.request.url.path}: {error.response.text[:200]}"
                ) from None
            raise


FETCHERS = {"surveymonkey": fetch_surveymonkey}


def complete(
    engine: Engine, connections: Connections, apis: SourceApis, inbox_ids: Sequence[int]
) -> None:
    """Fetch and keep the detail of every thin, pending event among ``inbox_ids``."""
    thin = [name for name, source in SOURCES.items() if source.needs_detail]
    with session_scope(engine) as session:
        rows = session.exec(
            select(InboxEvent.id, InboxEvent.connection, InboxEvent.source, InboxEvent.body)
            .where(col(InboxEvent.id).in_(inbox_ids), col(InboxEvent.source).in_(thin))
            .where(col(InboxEvent.detail).is_(None), InboxEvent.status == "pending")
        ).all()
    for inbox_id, connection, source, body in rows:
        tenant = connections.get(connection)
        try:
            detail = FETCHERS[source](tenant.secrets if tenant else {}, apis, body)
        except CannotComplete as error:
            with session_scope(engine) as session:
                event = session.get(InboxEvent, inbox_id, with_for_update=True)
                if event is not None and event.detail is None:
                    bury_event(session, event, f"could not complete the event: {error}")
            continue
        except (httpx.HTTPError, ValueError, KeyError) as error:
            log.warning("detail.failed", inbox_id=inbox_id, source=source, error=str(error))
            continue  # still pending: the sweeper sends it again
        with session_scope(engine) as session:
            event = session.get(InboxEvent, inbox_id, with_for_update=True)
            if event is not None and event.detail is None:
                event.detail = detail
                session.add(event)
