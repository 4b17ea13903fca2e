"""Ingest: stored event → source mapping → changes → diff → outbox. Plain functions.

Everything for one event happens in one transaction, so an event is either fully turned
into outbox rows and marked done, or not at all (and is retried).

The diff keeps three invariants (ARCHITECTURE.md):
- never back in time: a change older than the version we pushed is dropped;
- no call without a difference: a change that leaves the record's fields as last pushed
  is dropped;
- coalescing: one outbox row per record; changes merge into it, last writer wins per field.
Fields Planhat writes itself (its id, timestamps, computed fields such as a license's
``arr``: connectors/planhat/generated.py) are no content: they are left out before the
diff, so they are never compared, queued, sent or remembered, and a record read back from
Planhat and offered again is no change.
The rules themselves are the pure ``merge`` (worker/pipeline/merge.py); here they meet rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from enum import StrEnum

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from connectors.change import Change, MappingError, RecordRejected
from connectors.custom_fields.rules import RuleError, with_custom_fields
from connectors.planhat.generated import generated_fields, without_generated
from connectors.source import PlanhatHints, ThinEvents
from connectors.sources import SOURCES, OptionError, source_options
from state.tables import Connection, DeadLetter, InboxEvent, Link, OutboxItem, RecordState, utcnow
from worker.pipeline.conflicts import admit
from worker.pipeline.deletions import is_deletion, offer_deletion
from worker.pipeline.failures import bury_event as bury_event
from worker.pipeline.failures import record_failure as record_failure
from worker.pipeline.merge import Outcome, merge, pending_of, pushed_of
from worker.pipeline.reverse import Back, offer_from_planhat

log = structlog.get_logger(__name__)


class Verdict(StrEnum):
    QUEUED = "queued"  # an outbox row now holds it
    STALE = "stale"  # older than what we pushed
    UNCHANGED = "unchanged"  # Planhat already has these values
    TOMBSTONED = "tombstoned"  # deleted in Planhat; the source did not create it again
    ECHO = "echo"  # what we last wrote to the source (worker/pipeline/links.py)
    OVERRULED = "overruled"  # owned by Planhat, or Planhat's edit of it is newer
    QUARANTINED = "quarantined"  # flapping: dropped until dlq retry releases it


@dataclass(frozen=True, slots=True)
class IngestReport:
    connection: str
    verdicts: dict[str, int]
    models: frozenset[str]  # models that got outbox rows: flush these
    write_back: bool = False  # changes made in Planhat wait to be written back
    source: str = ""
    status: str = ""  # what became of the event: done, ignored, dead ("": nothing yet)

    @property
    def queued(self) -> int:
        return self.verdicts.get(Verdict.QUEUED, 0)


def _nothing(connection: str = "", source: str = "", status: str = "") -> IngestReport:
    return IngestReport(connection=connection, verdicts={}, models=frozenset(), source=source,
                        status=status)  # fmt: skip


def _log_context(event: InboxEvent) -> AbstractContextManager[None]:
    """Every log line while handling ``event`` names it (worker/runtime/logs.py)."""
    return structlog.contextvars.bound_contextvars(
        event_id=event.event_id, inbox_id=event.id, connection=event.connection,
        source=event.source,
    )  # fmt: skip


def ingest(
    session: Session,
    inbox_id: int,
    *,
    again: bool = False,
    default_options: Mapping[str, str] | None = None,
) -> IngestReport:
    """Turn one stored event into outbox rows. Idempotent: a done event is skipped unless
    ``again`` (replay), and replaying what Planhat already has queues nothing."""
    event = session.get(InboxEvent, inbox_id, with_for_update=True)
    if event is None or (event.status != "pending" and not again):
        return _nothing()
    if awaiting_detail(event):
        return _nothing(event.connection)
    with _log_context(event):
        return _ingest(session, event, default_options)


def _ingest(
    session: Session, event: InboxEvent, default_options: Mapping[str, str] | None
) -> IngestReport:
    changes = _map(session, event, default_options)
    if changes is None:
        return _nothing(event.connection, event.source, "dead")
    verdicts: Counter[str] = Counter()
    models: set[str] = set()
    options = _options(session, event.connection, default_options)
    for change in changes:
        if change.origin == "planhat":
            verdicts[offer_from_planhat(session, event.connection, change, options=options,
                                        inbox_id=event.id)] += 1  # fmt: skip
            continue
        verdict = offer(session, event.connection, change, inbox_id=event.id, options=options)
        verdicts[verdict] += 1
        if verdict is Verdict.QUEUED:
            models.add(change.model)
    return IngestReport(
        connection=event.connection,
        verdicts=dict(verdicts),
        models=frozenset(models),
        write_back=verdicts[Back.WRITE_BACK] > 0,
        source=event.source,
        status=_done(session, event, changes, verdicts[Verdict.STALE]),
    )


def awaiting_detail(event: InboxEvent) -> bool:
    """A thin event the worker has not completed from its source's API yet, or a hint whose
    Planhat record it has not re-read: it stays pending (the engine fetches, then ingests;
    the sweeper retries a failed fetch)."""
    return completed_elsewhere(event.source) and event.detail is None


def completed_elsewhere(source: str) -> bool:
    """Whether a source's events are mapped from what the worker fetched (their detail)."""
    return isinstance(SOURCES.get(source), ThinEvents | PlanhatHints)


def _map(
    session: Session,
    event: InboxEvent,
    default_options: Mapping[str, str] | None,
    known: MutableMapping[str, Mapping[str, str]] | None = None,
) -> list[Change] | None:
    """The event's changes, or None after burying an event that cannot be mapped: a bad
    mapping never gets better by retrying; the dead letter is replayable once it is fixed."""
    source = SOURCES.get(event.source)
    try:
        if source is None:
            raise MappingError(f"no source named {event.source!r}")
        options = _options(session, event.connection, default_options, known)
        given = source_options(source, options)
        body = event.detail if completed_elsewhere(event.source) else event.body
        if body is None:  # not completed from the source's API yet: the caller waits
            raise MappingError("the event's detail was not fetched from the source's API")
        # The connection's custom field rules join their values to the changes before the
        # diff: an unchanged value costs no call (connectors/custom_fields/rules.py).
        changes = source.changes(body, event.event_id, given)
        return with_custom_fields(source, body, changes, options)
    except (MappingError, OptionError, RuleError) as error:
        # The record's own fault (RecordRejected) is said as it is.
        rejected = isinstance(error, RecordRejected)
        reason = str(error) if rejected else f"mapping failed: {error}"
        bury_event(session, event, reason, error=str(error))
        return None


def _options(
    session: Session,
    connection: str,
    default_options: Mapping[str, str] | None,
    known: MutableMapping[str, Mapping[str, str]] | None = None,
) -> Mapping[str, str]:
    """A connection's mapping options, read in this transaction (never a second one: on
    SQLite that would wait for the lock this one holds) unless ``known`` has them (read
    once per batch, or kept across batches by the caller). The ``default`` connection
    without a stored row takes ``default_options`` (from the environment)."""
    if known is not None and (seen := known.get(connection)) is not None:
        return seen
    row = session.get(Connection, connection)
    options: Mapping[str, str] = row.options or {} if row is not None else {}
    if row is None and connection == "default":
        options = default_options or {}
    if known is not None:
        known[connection] = options
    return options


def _done(session: Session, event: InboxEvent, changes: list[Change], stale: int) -> str:
    # An event the mapping has nothing to say about (an event type it does not map) is
    # kept and marked "ignored": accepted, not an error, and replayable if that changes.
    status = "done" if changes else "ignored"
    event.status, event.error, event.processed_at = status, None, utcnow()
    event.stale_changes = stale  # its changes older than what was pushed: dropped
    event.attempts += 1
    session.add(event)
    return status


def offer(
    session: Session,
    connection: str,
    change: Change,
    *,
    inbox_id: int | None = None,
    options: Mapping[str, str] | None = None,
) -> Verdict:
    """Diff one change against what we pushed and what is pending; queue what is new.
    ``options``: the connection's (read here when not given)."""
    if options is None:
        options = _options(session, connection, None)
    for _ in range(3):  # a concurrent insert of the same new outbox row: look again
        try:
            with session.begin_nested():
                return _offer(session, connection, change, inbox_id, options)
        except IntegrityError:
            continue
    raise RuntimeError(f"could not queue {change.model} {change.record_key}")


def offer_again(session: Session, letter: DeadLetter) -> Verdict:
    """A dead record's change, offered again as it was stored (``dlq retry``, or its
    company arriving): the same diff as any change, so a newer version makes it stale."""
    change = Change(
        model=letter.model,
        key_field=letter.key_field,
        key=letter.key_value,
        fields=letter.fields,
        version=letter.version,
        event_id=letter.event_id,
        action="deleted" if is_deletion(letter.fields) else "updated",
    )
    return offer(session, letter.connection, change, inbox_id=letter.inbox_id)


def _offer(
    session: Session,
    connection: str,
    change: Change,
    inbox_id: int | None,
    options: Mapping[str, str],
) -> Verdict:
    key = (connection, change.model, change.record_key)
    state = session.get(RecordState, key)
    pending = None
    if state is None or change.version >= state.version:
        pending = session.get(OutboxItem, key, with_for_update=True)
    link = session.get(Link, key)
    verdict, _ = _apply(session, connection, change, state, pending, inbox_id, link, options)
    session.flush()  # a concurrent insert of the same row fails here, inside the savepoint
    return verdict


def _apply(
    session: Session,
    connection: str,
    change: Change,
    state: RecordState | None,
    pending: OutboxItem | None,
    inbox_id: int | None,
    link: Link | None = None,
    options: Mapping[str, str] | None = None,
) -> tuple[Verdict, OutboxItem | None]:
    """The diff rules on rows already loaded: ``merge`` decides, this applies its decision
    to the rows. Returns the verdict, and the pending row after. First, the record's
    ``link`` may stop it (deleted in Planhat; an echo of our write to the source; its
    fields owned by Planhat, or edited there later: worker/pipeline/conflicts.py)."""
    if change.action == "deleted":  # the source says it is gone (deletions.py)
        gone, pending = offer_deletion(session, connection, change, state, pending, inbox_id,
                                       link)  # fmt: skip
        return Verdict(gone), pending
    if not generated_fields(change.model).isdisjoint(change.fields):
        change = replace(change, fields=without_generated(change.model, change.fields))
    stop, admitted = admit(session, link, change, options or {})
    if admitted is None:
        return Verdict(stop or Verdict.OVERRULED), pending
    change = admitted
    if pending is not None and is_deletion(pending.fields):  # created again: no deletion
        session.delete(pending)
        session.flush()
        pending = None
    decision = merge(pending_of(pending), pushed_of(state), change)
    raised = decision.pushed_version
    if state is not None and raised is not None and raised != state.version:
        state.version = raised  # changes older than this are stale from now on
        session.add(state)
    after = decision.pending
    match decision.outcome:
        case Outcome.STALE:  # both versions, never the fields: a trace, not a leak
            log.info("change.stale", connection=connection, model=change.model,
                     key=change.record_key, event_id=change.event_id, version=change.version,
                     pushed_version=state.version if state else None)  # fmt: skip
            return Verdict.STALE, pending
        case Outcome.UNCHANGED:
            return Verdict.UNCHANGED, pending
        case Outcome.UNDONE:
            if pending is not None:
                session.delete(pending)
                session.flush()  # gone before a later change in this batch inserts the key
            return Verdict.UNCHANGED, None
    if after is None:  # NEW and MERGED always leave a pending write
        raise AssertionError(f"merge said {decision.outcome} without a pending write")
    if pending is None:
        pending = OutboxItem(
            connection=connection,
            model=change.model,
            key=change.record_key,
            key_field=change.key_field,
            key_value=change.key,
            fields=dict(after.fields),
            field_versions=dict(after.field_versions),
            version=after.version,
            event_id=change.event_id,
            inbox_id=inbox_id,
        )
        session.add(pending)
        return Verdict.QUEUED, pending
    if decision.takes_event:
        pending.event_id, pending.inbox_id = change.event_id, inbox_id
    pending.fields, pending.field_versions = dict(after.fields), dict(after.field_versions)
    pending.version = after.version
    pending.revision += 1  # a flush only deletes the revision it sent
    pending.changed_at = utcnow()
    pending.next_attempt_at = min(pending.next_attempt_at, pending.changed_at)
    session.add(pending)
    return Verdict.QUEUED, pending
