"""Flush: outbox → rate budget → one Planhat bulk upsert → record state or dead letter.

A flush claims a batch of due rows (a lease, so a killed worker's rows come back), sends
them as one keyed bulk upsert, and settles each row by its own result. Nothing is lost
between the steps: a row leaves the outbox only in the transaction that records its
outcome, and only if no newer change arrived meanwhile (its ``revision``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from connectors.change import fields_hash
from connectors.planhat.bulk import RecordResult
from connectors.planhat.client import PlanhatClient
from connectors.planhat.errors import FatalError, PlanhatError, RateLimitedError
from connectors.planhat.models import MODELS, Operation, model_spec
from connectors.planhat.retry import equal_jitter
from connectors.surveys import FALLBACK_COMPANY
from state.db import for_update, session_scope
from state.records import pending_rows, record_states
from state.tables import DeadLetter, OutboxItem, RecordState, utcnow
from worker.pipeline.merge import pushed_of, still_needed
from worker.pipeline.parents import WAITING, company_key, wake_children
from worker.pipeline.respondents import Budget, Directories, NoBudget, link, needs_linking
from worker.runtime.ratelimit import RateLimiter, wait_for_budget

log = structlog.get_logger(__name__)

# Records others reference go first: a license names its company, so companies flush
# before licenses, and a child whose parent is still pending waits for it.
PARENTS = ("companies", "endusers")
FLUSH_ORDER = (*PARENTS, *(name for name in MODELS if name not in PARENTS))
FATAL_PAUSE = 60.0  # seconds a connection rests after a 401/403 (configuration)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushPolicy:
    batch_size: int = 500  # records per Planhat call (at most 5,000)
    lease: float = 120.0  # seconds a flush holds its rows before others may take them
    max_attempts: int = 8  # failed sends before a record becomes a dead letter
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    parent_wait_attempts: int = 5  # rejected tries while the record's company is unknown
    max_budget_wait: float = 30.0  # longer waits for rate budget reschedule instead

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 5000:
            raise ValueError("batch_size must be between 1 and 5000")

    def backoff(self, attempts: int, jitter: Callable[[float], float] = equal_jitter) -> float:
        return jitter(min(self.backoff_cap, self.backoff_base * 2 ** max(0, attempts - 1)))


@dataclass(slots=True)
class FlushReport:
    model: str
    sent: int = 0  # records in the Planhat call
    written: int = 0  # confirmed by Planhat
    dead: int = 0  # became dead letters
    dropped: int = 0  # stale or unchanged since queued: no call
    deferred: int = 0  # waiting for a parent, for budget, or backing off
    calls: int = 0
    retry_in: float | None = None  # flush again after this many seconds
    full: bool = False  # the batch was full: there may be more now
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Claimed:
    key: str
    key_field: str
    revision: int
    record: dict[str, Any]  # what is sent: key field + fields
    fields: dict[str, Any]
    version: int
    attempts: int


def _claim(
    session: Session, connection: str, model: str, policy: FlushPolicy, now: datetime
) -> tuple[list[Claimed], FlushReport]:
    report = FlushReport(model=model)
    query = (
        select(OutboxItem)
        .where(OutboxItem.connection == connection, OutboxItem.model == model)
        .where(OutboxItem.next_attempt_at <= now)
        .where(or_(col(OutboxItem.claimed_until).is_(None), col(OutboxItem.claimed_until) < now))
        .order_by(col(OutboxItem.enqueued_at))
        .limit(policy.batch_size)
    )
    rows = list(session.exec(for_update(session, query, skip_locked=True)))
    report.full = len(rows) == policy.batch_size
    if not rows:
        return [], report
    states = {
        key: state
        for (_, key), state in record_states(
            session, connection, [model], [row.key for row in rows]
        ).items()
    }
    parents = {key for row in rows if (key := company_key(model, row.fields))}
    pending_parents = set()
    if parents:
        pending_parents = set(
            session.exec(
                select(OutboxItem.key).where(
                    OutboxItem.connection == connection,
                    OutboxItem.model == "companies",
                    col(OutboxItem.key).in_(parents),
                )
            )
        )
    claimed: list[Claimed] = []
    for row in rows:
        if not still_needed(row, pushed_of(states.get(row.key))):
            session.delete(row)  # stale, or Planhat already has it: no call
            report.dropped += 1
            continue
        if company_key(model, row.fields) in pending_parents:
            row.next_attempt_at = now + timedelta(seconds=1)  # after its company's flush
            session.add(row)
            report.deferred += 1
            continue
        row.claimed_until = now + timedelta(seconds=policy.lease)
        session.add(row)
        claimed.append(
            Claimed(
                key=row.key,
                key_field=row.key_field,
                revision=row.revision,
                # "~" fields are planhat-sync's own hints (connectors/surveys.py): never sent
                record={
                    row.key_field: row.key_value,
                    **{k: v for k, v in row.fields.items() if not k.startswith("~")},
                },
                fields=dict(row.fields),
                version=row.version,
                attempts=row.attempts,
            )
        )
    return claimed, report


def _release(
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
                    _bury(session, row, f"gave up after {row.attempts} attempts: {error}")
                    dead += 1
                    continue
                row.next_attempt_at = now + timedelta(seconds=policy.backoff(row.attempts))
            session.add(row)
    return dead


def _bury(session: Session, row: OutboxItem, reason: str) -> None:
    session.add(
        DeadLetter(
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
        )
    )
    session.delete(row)
    log.warning("flush.dead_letter", model=row.model, key=row.key, reason=reason)


def flush_batch(
    engine: Engine,
    planhat: PlanhatClient,
    limiter: RateLimiter,
    *,
    connection: str,
    model: str,
    budget: str,
    policy: FlushPolicy,
    sleep: Callable[[float], None] = time.sleep,
    directories: Directories | None = None,
) -> FlushReport:
    """Claim, send and settle one batch of ``model`` for ``connection``. With
    ``directories``, survey NPS records are linked to their enduser and company first."""
    if not model_spec(model).supports(Operation.UPSERT):
        policy = replace(policy, batch_size=1)  # one record per budgeted call
    with session_scope(engine) as session:
        claimed, report = _claim(session, connection, model, policy, utcnow())
    if not claimed:
        return report
    bound = log.bind(connection=connection, model=model, records=len(claimed))
    if directories is not None and any(needs_linking(model, item.fields) for item in claimed):
        try:
            claimed = _link(engine, planhat, directories, connection, claimed, report,
                            Budget(limiter, budget, policy.max_budget_wait, sleep))  # fmt: skip
        except NoBudget as error:
            _release(engine, connection, model, claimed, delay=error.wait)
            report.deferred += len(claimed)
            report.retry_in = error.wait
            return report
        except PlanhatError as error:  # reading the directory or creating endusers failed
            report.dead = _release(
                engine, connection, model, claimed, delay=0, error=str(error), policy=policy
            )
            report.deferred += len(claimed) - report.dead
            report.retry_in = policy.backoff(1)
            report.errors.append(str(error))
            return report
        if not claimed:
            return report
    wait = wait_for_budget(limiter, budget, max_wait=policy.max_budget_wait, sleep=sleep)
    if wait > 0:
        _release(engine, connection, model, claimed, delay=wait)
        report.deferred += len(claimed)
        report.retry_in = wait
        return report
    bound.info("flush.sending")
    report.sent, report.calls = len(claimed), 1
    try:
        records = [item.record for item in claimed]
        if model_spec(model).supports(Operation.UPSERT):
            results = planhat.bulk_upsert(model, records, chunk_size=len(records))
        else:  # custom fields: one keyed update-or-create (the batch is one record)
            results = planhat.upsert_each(model, records, key_field=claimed[0].key_field)
    except RateLimitedError as error:
        # Every worker on this token waits now; the rows wait too, without an attempt.
        limiter.pause(budget, error.retry_after)
        _release(engine, connection, model, claimed, delay=error.retry_after)
        report.deferred += len(claimed)
        report.retry_in = error.retry_after
        bound.info("flush.rate_limited", retry_after=error.retry_after)
        return report
    except FatalError as error:
        _release(engine, connection, model, claimed, delay=FATAL_PAUSE)
        report.deferred += len(claimed)
        report.retry_in = FATAL_PAUSE
        report.errors.append(str(error))
        bound.error("flush.fatal", error=str(error))
        return report
    except PlanhatError as error:  # retryable, or an answer we could not read
        report.dead = _release(
            engine, connection, model, claimed, delay=0, error=str(error), policy=policy
        )
        report.deferred += len(claimed) - report.dead
        report.retry_in = policy.backoff(1)
        report.errors.append(str(error))
        bound.warning("flush.retry", error=str(error))
        return report
    _settle(engine, connection, model, claimed, results, policy, report)
    bound.info("flush.done", written=report.written, dead=report.dead, deferred=report.deferred)
    return report


def _link(
    engine: Engine,
    planhat: PlanhatClient,
    directories: Directories,
    connection: str,
    claimed: list[Claimed],
    report: FlushReport,
    budget: Budget,
) -> list[Claimed]:
    """Link survey NPS records to their enduser and company (worker/pipeline/respondents.py); those
    that cannot be become dead letters saying why. Returns the ones to send."""
    emails = [
        str(item.fields["email"]).lower().strip()
        for item in claimed
        if needs_linking("nps", item.fields)
    ]
    directory = directories.get(connection, planhat, budget, emails)
    linked = link(
        directory,
        planhat,
        budget,
        [item.record for item in claimed],
        [item.fields.get(FALLBACK_COMPANY) for item in claimed],
    )
    report.calls += 1 if linked.created else 0
    if linked.refused:
        with session_scope(engine) as session:
            for index, reason in linked.refused.items():
                row = session.get(OutboxItem, (connection, "nps", claimed[index].key))
                if row is not None and row.revision == claimed[index].revision:
                    row.attempts += 1
                    _bury(session, row, reason)
                    report.dead += 1
    return [
        replace(item, record=record)
        for index, (item, record) in enumerate(zip(claimed, linked.records, strict=True))
        if index not in linked.refused
    ]


def _settle(
    engine: Engine,
    connection: str,
    model: str,
    claimed: Sequence[Claimed],
    results: Sequence[RecordResult],
    policy: FlushPolicy,
    report: FlushReport,
) -> None:
    with session_scope(engine) as session:
        now = utcnow()
        keys = [item.key for item in claimed]
        # Locked until commit: an ingest merging a newer change into one of these rows
        # waits, so a row is never deleted under a revision we did not send.
        rows = pending_rows(session, connection, model, keys)
        parents = [k for item in claimed if (k := company_key(model, item.fields))]
        states = record_states(session, connection, [model, "companies"], keys + parents, lock=True)
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
                    row.claimed_until = None  # a newer change waits: flush it next
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
            elif parent_unknown and row.attempts + 1 < policy.parent_wait_attempts:
                # Its company may still be on its way (sources deliver out of order).
                row.attempts += 1
                row.last_error = reason
                row.claimed_until = None
                row.next_attempt_at = now + timedelta(seconds=policy.backoff(row.attempts))
                report.deferred += 1
            else:
                row.attempts += 1
                _bury(session, row, reason)
                report.dead += 1
                continue
            session.add(row)
        if model == "companies":
            written = [item.key for item, result in zip(claimed, results, strict=True) if result.ok]
            wake_children(session, connection, written, now)
