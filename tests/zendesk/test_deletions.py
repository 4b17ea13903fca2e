"""Zendesk deletions through ingest: a deleted ticket's export item tombstones it, and a
late event of the same ticket, even in the same batch, creates nothing."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine
from sqlmodel import select

from state.db import session_scope
from state.inbox import store_event
from state.tables import InboxEvent, Link, OutboxItem
from worker.pipeline.ingest_batch import ingest_many

TICKET = {"id": 7, "url": "https://acme.zendesk.com/api/v2/tickets/7.json", "subject": "Printer",
          "status": "open", "priority": "high", "tags": [], "requester_id": 5,
          "organization_id": None, "updated_at": "2026-01-02T00:00:00Z"}  # fmt: skip


def stored(engine: Engine, event_id: str, document: dict[str, Any]) -> int:
    """A completed Zendesk event (its detail fetched), as the poller or detail step keeps it."""
    body = json.dumps(document).encode()
    with session_scope(engine) as session:
        inbox_id = store_event(session, connection="default", source="zendesk",
                               event_id=event_id, body=body)  # fmt: skip
        assert inbox_id is not None
        event = session.get(InboxEvent, inbox_id)
        assert event is not None
        event.detail = body
        session.add(event)
    return inbox_id


def test_a_deleted_ticket_then_a_late_event_in_one_batch_creates_nothing(
    sqlite_engine: Engine,
) -> None:
    deleted = stored(sqlite_engine, "ticket-7@deleted",
                     {"ticket": {"id": 7, "status": "deleted",
                                 "updated_at": "2026-01-03T00:00:00Z"}})  # fmt: skip
    late = stored(sqlite_engine, "late-event",
                  {"ticket": {**TICKET, "updated_at": "2026-01-04T00:00:00Z"},
                   "users": [{"id": 5, "email": "ann@acme.example"}]})  # fmt: skip
    with session_scope(sqlite_engine) as session:
        reports = ingest_many(session, [deleted, late])
    assert [report.verdicts for report in reports] == [{"tombstoned": 1}, {"tombstoned": 1}]
    with session_scope(sqlite_engine) as session:
        assert list(session.exec(select(OutboxItem))) == []
        [link] = session.exec(select(Link))
        assert (link.key, link.deleted_at is not None) == ("sourceId=7", True)
