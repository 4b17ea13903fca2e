"""Settle: what happens to claimed outbox rows after a try.

A row leaves the outbox only in the transaction that records its outcome (record state,
or a dead letter), and only if no newer change arrived meanwhile (its ``revision``).
Given back without an attempt, a row waits; with one, it backs off and after
``max_attempts`` becomes a dead letter. Children rejected because their company is unknown
wait for it (``worker/pipeline/parents.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from connectors.change import fields_hash
from connectors.planhat.bulk import RecordResult
from state.db import session_scope
from state.records import pending_rows, record_states
from state.tables import DeadLetter, InboxEvent, OutboxItem, RecordState, WriteBackItem, utcnow
from worker.pipeline.batch import Claimed, FlushPolicy, FlushReport
from worker.pipeline.links import record_written
from worker.pipeline.parents import WAITING, company_key, wake_children
from worker.runtime import metrics

log = structlog.get_logger(__name__)


def release(
    engine: Engine,
    connection: str,
    model: str,
    claimed: Sequence[Claimed],
    *,
    delay: float,
    error: str | None = None,
    policy: FlushPolicy | None = None,
) -> int:
    """Give claimed rows back, due after ``delay``. With a ``policy`` the try counts as a
    failed attempt, and rows past ``max_attempts`` become dead letters. Returns those."""
    dead = 0
    with session_scope(engine) as session:
        now = utcnow()
        for item in claimed:
            row = session.get(OutboxItem, (connection, model, item.key), with_for_update=True)
            if row is None:
                continue
            row.claimed_until = None
            row.next_attempt_at = now + timedelta(seconds=delay)
            if policy is not None:
                row.attempts += 1
                row.last_error = error
                if row.attempts >= policy.max_attempts:
                    bury(session, row, f"gave up after {row.attempts} attempts: {error}")
                    dead += 1
                    continue
                row.next_attempt_at = now + timedelta(seconds=policy.backoff(row.attempts))
            session.add(row)
    return dead


def letter_of(row: OutboxItem | WriteBackItem, reason: str, **more: Any) -> DeadLetter:
    """The dead letter a queued row becomes (an outbox row, or a write back to a source,
    whose ``more`` says where it was going)."""
    return DeadLetter(
        connection=row.connection,
        model=row.model,
        key=row.key,
        key_field=row.key_field,
        key_value=row.key_value,
        fields=row.fields,
        version=row.version,
        reason=reason,
        attempts=row.attempts,
        event_id=row.event_id,
        inbox_id=row.inbox_id,
        **more,
    )


def bury(session: Session, row: OutboxItem, reason: str) -> None:
    session.add(letter_of(row, reason))
    session.delete(row)
    log.warning("flush.dead_letter", model=row.model, key=row.key, reason=reason)


# Rows settled a transaction: on SQLite the write lock is held for one chunk at a time
# (measured: 333 companies settled in one transaction held it 37-130 ms, and every webhook
# of the embedded default waited behind it), and a webhook's commit goes in between.
SETTLE_CHUNK = 50


class PartlySettled(Exception):
    """Settling failed after the first ``done`` rows were settled (committed)."""

    def __init__(self, done: int, cause: Exception) -> None:
        super().__init__(str(cause))
        self.done = done
        self.cause = cause


def settle(
    engine: Engine,
    connection: str,
    model: str,
    claimed: Sequence[Claimed],
    results: Sequence[RecordResult],
    policy: FlushPolicy,
    report: FlushReport,
) -> None:
    """Record each row's result, ``SETTLE_CHUNK`` rows a transaction, waking in the same
    transaction the children of the companies written. ``PartlySettled`` says how far it
    got: the rows after that are still claimed, as they were."""
    for start in range(0, len(claimed), SETTLE_CHUNK):
        end = start + SETTLE_CHUNK
        try:
            with session_scope(engine) as session:
                written, lags = _settle_chunk(session, connection, model, claimed[start:end],
                                              results[start:end], policy, report)  # fmt: skip
                if model == "companies":
                    wake_children(session, connection, written, utcnow())
        except Exception as error:
            raise PartlySettled(start, error) from error
        # Committed: only now are these records confirmed for good.
        metrics.records_confirmed(connection, model, lags)


def _lags(session: Session, rows: Sequence[OutboxItem], now: datetime) -> list[float]:
    """Seconds from the receipt of the event each row's change came from to ``now``; a
    row with no stored event (a ``dlq retry``, a pruned event) counts from its queueing."""
    ids = {row.inbox_id for row in rows if row.inbox_id is not None}
    received = dict(
        session.exec(
            select(InboxEvent.id, InboxEvent.received_at).where(col(InboxEvent.id).in_(ids))
        ).all()
    ) if ids else {}  # fmt: skip
    return [
        (now - received.get(row.inbox_id, row.enqueued_at)).total_seconds()
        if row.inbox_id is not None
        else (now - row.enqueued_at).total_seconds()
        for row in rows
    ]


def _settle_chunk(
    session: Session,
    connection: str,
    model: str,
    claimed: Sequence[Claimed],
    results: Sequence[RecordResult],
    policy: FlushPolicy,
    report: FlushReport,
) -> tuple[list[str], list[float]]:
    """Settle these rows in ``session``; the keys Planhat wrote, and their lags."""
    now = utcnow()
    keys = [item.key for item in claimed]
    # Locked until commit: an ingest merging a newer change into one of these rows
    # waits, so a row is never deleted under a revision we did not send.
    rows = pending_rows(session, connection, model, keys)
    confirmed = [
        row
        for item, result in zip(claimed, results, strict=True)
        if result.ok and (row := rows.get(item.key)) is not None
    ]
    lags = _lags(session, confirmed, now)
    parents = [k for item in claimed if (k := company_key(model, item.fields))]
    states = record_states(session, connection, [model, "companies"], keys + parents, lock=True)
    written = [(item, result) for item, result in zip(claimed, results, strict=True) if result.ok]
    quarantined = record_written(session, connection, model, written, rows, policy)
    for item, result in zip(claimed, results, strict=True):
        row = rows.get(item.key)
        newer = row is not None and row.revision != item.revision
        if result.ok:
            state = states.get((model, item.key))
            if state is None:
                state = RecordState(
                    connection=connection, model=model, key=item.key, fields_hash="", version=0
                )
            state.fields = {**state.fields, **item.fields}
            state.fields_hash = fields_hash(state.fields)
            state.version = max(state.version, item.version)
            state.planhat_id = result.id or state.planhat_id
            state.pushed_at = now
            session.add(state)
            report.written += 1
            if row is not None and not newer:
                session.delete(row)
            elif row is not None:
                row.claimed_until = None  # a newer change waits: flush it next,
                # once it has lingered: it came after the claim, at the latest now
                # (else, in a burst, every row would be ready again at once).
                row.enqueued_at = row.changed_at
                session.add(row)
            continue
        if row is None:
            continue
        reason = f"Planhat {result.outcome}: {result.message or 'no reason given'}"
        parent = company_key(model, item.fields)
        parent_unknown = parent is not None and ("companies", parent) not in states
        if parent_unknown:  # found again by wake_children when the company arrives
            reason = f"{WAITING}: {reason}"
        if newer:
            row.claimed_until = None  # the newer data may fix it: try that first
            row.enqueued_at = row.changed_at
        elif parent_unknown and row.attempts + 1 < policy.parent_wait_attempts:
            # Its company may still be on its way (sources deliver out of order).
            row.attempts += 1
            row.last_error = reason
            row.claimed_until = None
            row.next_attempt_at = now + timedelta(seconds=policy.backoff(row.attempts))
            report.deferred += 1
        else:
            row.attempts += 1
            bury(session, row, reason)
            report.dead += 1
            continue
        session.add(row)
    for key in quarantined:  # flapping: nothing more goes out for it (links.wrote)
        if (row := rows.get(key)) is not None:
            session.delete(row)
    written_keys = [item.key for item, result in zip(claimed, results, strict=True) if result.ok]
    return written_keys, lags
