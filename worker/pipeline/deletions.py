"""Records a source says are gone: a tombstone at once, one Planhat delete when flushed.

A change with ``action="deleted"`` and ``origin="source"`` (a helpdesk ticket deleted, or
any source's deletion) is offered here by ingest instead of to the merge:

    older than what we pushed                  stale: dropped
    its link is a tombstone already            tombstoned: dropped (deleted before,
                                               in Planhat or by its source), unless
                                               Planhat still has it (a dead letter's
                                               retry): queued again
    otherwise                                  the link becomes a tombstone now (created
                                               when the record has none), so a late
                                               webhook or the next export item of it is
                                               dropped by ``links.gate``; Planhat has it
                                               (pushed, or a write pending or in flight):
                                               its outbox row becomes a deletion (queued)

A deletion row is an outbox row whose fields are exactly ``DELETION`` (a ``~`` hint:
never sent, left out of every comparison), so it coalesces, settles and becomes a dead
letter like any row, and ``dlq retry`` of its dead letter deletes again. The flush sends
it as Planhat's single delete (``DELETE /<model>/{_id}``; there is no bulk delete:
shared/reference/planhat-api.md), one budgeted call per record; a 404 is done (already
gone), other answers go through ``outcomes.outcome_of`` like an upsert's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from sqlmodel import Session

from connectors.change import Change
from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import NotFoundError
from state.tables import Link, OutboxItem, RecordState, utcnow
from worker.pipeline.batch import Claimed, FlushReport

log = structlog.get_logger(__name__)

DELETED_HINT = "~deleted"
DELETION: dict[str, Any] = {DELETED_HINT: True}


def is_deletion(fields: Mapping[str, Any]) -> bool:
    return bool(fields.get(DELETED_HINT))


def offer_deletion(
    session: Session,
    connection: str,
    change: Change,
    state: RecordState | None,
    pending: OutboxItem | None,
    inbox_id: int | None,
    link: Link | None,
) -> tuple[str, OutboxItem | None]:
    """Ingest's part (see the module's doc): a verdict ("stale", "tombstoned" or
    "queued") and the record's pending row after."""
    if state is not None and change.version < state.version:
        return "stale", pending
    # Deleted before, and gone from Planhat or on its way out. A tombstone whose record
    # state is still there is a delete that did not happen (its dead letter retried).
    queued = pending is not None and is_deletion(pending.fields)
    if link is not None and link.deleted_at is not None and (state is None or queued):
        return "tombstoned", pending
    if link is None:  # never written (e.g. a dead letter): still never to be created
        link = Link(connection=connection, model=change.model, key=change.record_key,
                    key_field=change.key_field, key_value=change.key)  # fmt: skip
    if link.deleted_at is None:
        link.deleted_at = utcnow()
        session.add(link)
        session.flush()  # a batch's later change of the record finds it (ingest_many)
        log.info("deletion.tombstoned", model=change.model, key=change.record_key)
    if state is None and pending is None:
        return "tombstoned", None  # Planhat never had it: no call
    version = max(change.version, pending.version if pending is not None else change.version)
    if pending is None:
        pending = OutboxItem(connection=connection, model=change.model, key=change.record_key,
                             key_field=change.key_field, key_value=change.key,
                             fields=dict(DELETION), field_versions={}, version=version,
                             event_id=change.event_id, inbox_id=inbox_id)  # fmt: skip
    else:  # a write still pending (maybe in flight: its settle then sees this revision)
        pending.fields, pending.field_versions = dict(DELETION), {}
        pending.version, pending.revision = version, pending.revision + 1
        pending.event_id, pending.inbox_id = change.event_id, inbox_id
        pending.changed_at = utcnow()
        pending.next_attempt_at = min(pending.next_attempt_at, pending.changed_at)
    session.add(pending)
    return "queued", pending


def planhat_ref(row: OutboxItem, state: RecordState | None) -> str | None:
    """How the flush names the record to delete: Planhat's ``_id`` as last answered, else
    its keyable (``srcid-``: sourceId is unique per model); None: Planhat never had it."""
    if state is None:
        return None
    if state.planhat_id:
        return state.planhat_id
    return f"srcid-{row.key_value}" if row.key_field == "sourceId" else None


def delete_in_planhat(planhat: PlanhatClient, model: str, ref: str) -> None:
    """Planhat's single delete; a 404 is done: the record is already gone. Other errors
    go to the flush's ``outcome_of``."""
    try:
        planhat.delete(model, ref)
    except NotFoundError:
        log.info("deletion.already_gone", model=model)


def settle_deleted(
    session: Session, connection: str, model: str, item: Claimed, report: FlushReport
) -> None:
    """Planhat no longer has the record: what we pushed is forgotten and the row goes,
    unless a newer change reached it meanwhile (a source creating it again)."""
    row = session.get(OutboxItem, (connection, model, item.key), with_for_update=True)
    if row is not None and row.revision != item.revision:
        row.claimed_until = None
        session.add(row)
        return
    if row is not None:
        session.delete(row)
    state = session.get(RecordState, (connection, model, item.key))
    if state is not None:
        session.delete(state)
    report.deleted += 1
    log.info("deletion.done", model=model, key=item.key)
