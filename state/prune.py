"""Pruning: delete what the state store no longer needs, a small batch per transaction.

Deleted once older than the retention:
- inbox events processed before the cutoff: ``done``, ``ignored``, or ``failed`` with no
  dead letter left (its dead letter was dropped); their raw bodies are the bulk of the
  database;
- dead letters that are resolved. ``dlq retry`` and ``dlq drop`` delete a dead letter, so
  what is left is unresolved, with one exception: a record's dead letter is *superseded*
  once a later version of that record has reached Planhat (its ``record_state`` version
  is higher). ``dlq retry`` would drop it as stale and do nothing, so it is pruned too
  (not a write back to a source: that waits for retry or drop like the others).

Kept, whatever their age:
- pending inbox events: work not done yet;
- every other dead letter (an event that could not be mapped, a record Planhat refused
  and nothing newer replaced): each waits for someone to retry or drop it; ``Pruned``
  counts the old ones so the command can say so;
- an inbox event an outbox row or a dead letter still names (``inbox_id``): ``dlq retry``
  re-runs an event's dead letter from the stored event.

Each batch is its own transaction, so neither PostgreSQL nor SQLite holds one long
transaction (SQLite's write lock would stop the receiver) while a backlog is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, and_, delete, exists, func, literal, or_
from sqlmodel import col, select

from state.db import session_scope
from state.tables import DeadLetter, InboxEvent, OutboxItem, RecordState, utcnow

BATCH = 500  # ids a transaction
# Bytes of event bodies a transaction: deleting 500 bodies of 1 MiB held SQLite's write lock
# (and so the receiver) for 2.7 s; 16 MiB keeps a transaction under about 0.1 s.
BATCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    cutoff: datetime
    inbox_events: int  # deleted
    dead_letters: int  # deleted (superseded)
    dead_letters_kept: int  # older than the cutoff, still waiting for retry or drop


def prune(
    engine: Engine,
    *,
    older_than: timedelta,
    batch: int = BATCH,
    batch_bytes: int = BATCH_BYTES,
    now: datetime | None = None,
) -> Pruned:
    """Delete processed inbox events and resolved dead letters older than ``older_than``.
    Dead letters go first: an event whose last dead letter goes is prunable in this run."""
    cutoff = (now or utcnow()) - older_than
    with session_scope(engine) as session:
        # No index on created_at: one scan of a table that holds only failures.
        newest_letter = session.exec(
            select(func.max(DeadLetter.id)).where(col(DeadLetter.created_at) < cutoff)
        ).one()
        newest_event = session.exec(
            select(func.max(InboxEvent.id)).where(col(InboxEvent.received_at) < cutoff)
        ).one()
    letters = _delete_in_windows(
        engine, DeadLetter, last=newest_letter, condition=_superseded(cutoff), batch=batch
    )
    events = _delete_in_windows(
        engine,
        InboxEvent,
        last=newest_event,
        condition=_prunable(cutoff),
        batch=batch,
        size=(_body_bytes(), batch_bytes),
    )
    with session_scope(engine) as session:
        kept = session.exec(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.created_at < cutoff)
        ).one()
    return Pruned(cutoff=cutoff, inbox_events=events, dead_letters=letters, dead_letters_kept=kept)


def _prunable(cutoff: datetime) -> ColumnElement[bool]:
    """A processed event, processed before ``cutoff``, that nothing names any more.

    Shaped for the planners (measured, see the commit): no term an index could serve but
    the id window ``_delete_in_windows`` adds, so each batch reads its window and no more
    (``status IN (…)`` had SQLite walk its status index over every processed event, recent
    ones too, at every batch; a ``received_at`` term had PostgreSQL bitmap-scan every old
    event at every batch); ``NOT IN`` subqueries rather than correlated ``NOT EXISTS``,
    which SQLite ran as a scan of dead_letter per event (it has no index on inbox_id)."""
    event_id = col(InboxEvent.id)
    processed_at = col(InboxEvent.processed_at)
    return and_(
        col(InboxEvent.status) != "pending",
        or_(
            processed_at < cutoff,
            and_(processed_at.is_(None), col(InboxEvent.received_at) < cutoff),
        ),
        # NULLs out: one NULL in a NOT IN list makes it match nothing at all.
        event_id.not_in(select(OutboxItem.inbox_id).where(col(OutboxItem.inbox_id).is_not(None))),
        event_id.not_in(select(DeadLetter.inbox_id).where(col(DeadLetter.inbox_id).is_not(None))),
    )


def _body_bytes() -> ColumnElement[int]:
    # length() of a blob reads neither SQLite's overflow pages nor PostgreSQL's TOAST.
    body = func.coalesce(func.length(InboxEvent.body), 0)
    return body + func.coalesce(func.length(InboxEvent.detail), 0)


def _superseded(cutoff: datetime) -> ColumnElement[bool]:
    """A record's dead letter, from before ``cutoff``, older than what Planhat has now."""
    newer = exists().where(
        col(RecordState.connection) == col(DeadLetter.connection),
        col(RecordState.model) == col(DeadLetter.model),
        col(RecordState.key) == col(DeadLetter.key),
        col(RecordState.version) > col(DeadLetter.version),
    )
    # A write back to a source is never superseded this way: its version is Planhat's.
    to_planhat = col(DeadLetter.target).is_(None)
    return and_(col(DeadLetter.model) != "", to_planhat, col(DeadLetter.created_at) < cutoff, newer)


def _delete_in_windows(
    engine: Engine,
    table: type[InboxEvent] | type[DeadLetter],
    *,
    last: int | None,
    condition: ColumnElement[bool],
    batch: int,
    size: tuple[ColumnElement[int], int] | None = None,
) -> int:
    """Delete the rows of ``table`` that meet ``condition``, up to the id ``last``, one
    transaction per window of ``batch`` ids (fewer if ``size``, a row's bytes and a limit,
    says they are too big together).

    Every query is bounded: a window starts at the next id that exists (primary key) and
    reads at most ``batch`` rows, so each old row, deleted or kept, is read once a run (a
    LIMIT over "every row that qualifies" re-read the rows kept, and on PostgreSQL every
    old row, at each batch). The DELETE repeats ``condition``: a row that changed since it
    was read (an event replayed meanwhile) is left alone."""
    row_id = col(table.id)
    row_bytes, max_bytes = size if size is not None else (literal(0), 0)
    deleted, after = 0, 0
    while last is not None:
        with session_scope(engine) as session:
            start = session.exec(select(func.min(row_id)).where(row_id > after)).one()
            if start is None or start > last:
                break
            end = min(start + batch - 1, last)
            rows = session.exec(
                select(row_id, row_bytes)
                .where(row_id >= start, row_id <= end, condition)
                .order_by(row_id)
            ).all()
            ids = _within(max_bytes, [(int(i or 0), int(n or 0)) for i, n in rows])
            if ids:
                result = session.exec(delete(table).where(row_id.in_(ids), condition))
                deleted += result.rowcount
        after = end if len(ids) == len(rows) else ids[-1]
    return deleted


def _within(max_bytes: int, rows: list[tuple[int, int]]) -> list[int]:
    """The ids of the first rows that fit in ``max_bytes`` (always at least one; no limit
    when ``max_bytes`` is 0)."""
    ids: list[int] = []
    total = 0
    for row_id, size in rows:
        total += size
        if ids and max_bytes and total > max_bytes:
            break
        ids.append(row_id)
    return ids
