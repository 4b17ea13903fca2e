"""Write-back: the write_back queue → the source's budget → ``WritesBack.write_back`` →
the link's source side, or a dead letter.

The reverse path's flush, per connection and source. A batch of due rows is claimed (a
lease, so a killed worker's rows come back) and written one by one, each after its turn
in that source's own budget (per source credential). What goes wrong is mapped to one
action by ``outcome_of``, as for Planhat: a 429 pauses the source's budget and costs no
attempt; 5xx and timeouts back off, capped, and after ``max_attempts`` become a dead
letter; a refusal is a dead letter at once, carrying the source's answer; a record over
its own write limit (``TargetBusy``) waits alone, without an attempt. A row leaves
the queue only in the transaction that records the write on its link (what we last wrote
to the source: an echo of it is dropped), and only if no newer change merged into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, func, or_
from sqlmodel import Session, col, select

from connectors.change import fields_hash
from connectors.source import TargetBusy, WriteBack, WriteBackContext, WritesBack
from state.db import for_update, session_scope
from state.tables import DeadLetter, Link, OutboxItem, WriteBackItem, utcnow
from worker.pipeline.batch import FlushPolicy
from worker.pipeline.links import nested, wrote
from worker.pipeline.outcomes import Action, outcome_of
from worker.pipeline.settle import letter_of
from worker.runtime.logs import describe
from worker.runtime.ratelimit import RateLimiter, wait_for_budget

log = structlog.get_logger(__name__)

BATCH = 100  # rows claimed at a time


@dataclass(slots=True)
class WriteBackReport:
    source: str
    written: int = 0
    dead: int = 0
    deferred: int = 0  # waiting for budget, paused, or backing off
    full: bool = False  # a whole batch was claimed: there may be more
    stopped: bool = False  # out of budget or paused: the rest waits
    errors: list[str] = field(default_factory=list)


def due(engine: Engine, connection: str) -> tuple[list[str], float | None]:
    """The sources with rows due now, and seconds until the next one is (None: none)."""
    now = utcnow()
    free = or_(col(WriteBackItem.claimed_until).is_(None), col(WriteBackItem.claimed_until) < now)
    mine = WriteBackItem.connection == connection
    with session_scope(engine) as session:
        ready = session.exec(
            select(WriteBackItem.source)
            .where(mine, free, WriteBackItem.next_attempt_at <= now)
            .distinct()
        ).all()
        later = session.exec(
            select(func.min(WriteBackItem.next_attempt_at)).where(
                mine, free, WriteBackItem.next_attempt_at > now
            )
        ).one()
    wait = max(0.0, (later - now).total_seconds()) if later is not None else None
    return sorted(ready), wait


def connections_due(session: Session, now: datetime) -> list[str]:
    """Connections with write-backs due and not held by a run (for the sweeper)."""
    free = or_(col(WriteBackItem.claimed_until).is_(None), col(WriteBackItem.claimed_until) < now)
    query = select(WriteBackItem.connection).where(free, WriteBackItem.next_attempt_at <= now)
    return list(session.exec(query.distinct()))


def write_back_batch(
    engine: Engine,
    source: WritesBack,
    context: WriteBackContext,
    limiter: RateLimiter,
    budget: str,
    *,
    name: str,
    policy: FlushPolicy,
    sleep: Callable[[float], None] = time.sleep,
    metered: bool = False,
) -> WriteBackReport:
    """Claim due rows of ``name`` for the context's connection and write them, one action
    for whatever goes wrong (module doc). ``metered``: the context's client takes each
    call from ``budget`` itself (``ratelimit.metered``); else each write takes one."""
    report = WriteBackReport(source=name)
    connection = context.connection
    with session_scope(engine) as session:
        claimed = _claim(session, connection, name, policy, utcnow())
    report.full = len(claimed) == BATCH
    for index, (key, change, sent, revision) in enumerate(claimed):
        if not metered:
            wait = wait_for_budget(limiter, budget, max_wait=policy.max_budget_wait, sleep=sleep)
            if wait > 0:  # no budget: the rest waits, without an attempt
                _release(engine, connection, [c[0] for c in claimed[index:]], delay=wait)
                report.deferred += len(claimed) - index
                report.stopped = True
                break
        try:
            source.write_back(context, change)
        except TargetBusy as busy:  # this record's own limit: it waits, the others go on
            log.info("write_back.busy", connection=connection, source=name, key=key[3],
                     wait=round(busy.wait, 3))  # fmt: skip
            _release(engine, connection, [key], delay=busy.wait)
            report.deferred += 1
            continue
        except Exception as error:
            outcome = outcome_of(error, 1)
            report.errors.append(outcome.reason)
            log.warning("write_back.failed", connection=connection, source=name,
                        model=change.model, action=str(outcome.action),
                        error=describe(error))  # fmt: skip
            if outcome.action is Action.BURY:
                report.dead += _bury(engine, key, revision, outcome.reason)
                continue
            if outcome.action is Action.BACK_OFF:
                dead = _retry(engine, key, outcome.reason, policy)
                report.dead += dead
                report.deferred += 1 - dead
                continue
            if outcome.action is Action.PAUSE:  # every worker writing with it waits
                limiter.pause(budget, outcome.delay)
            rest = [c[0] for c in claimed[index:]]
            _release(engine, connection, rest, delay=outcome.delay)
            report.deferred += len(rest)
            report.stopped = True
            break
        _settle(engine, key, sent, revision, policy)
        report.written += 1
    if claimed:
        log.info("write_back.done", connection=connection, source=name,
                 written=report.written, dead=report.dead, deferred=report.deferred)  # fmt: skip
    return report


Key = tuple[str, str, str, str]  # a write_back row's: connection, source, model, key


def _claim(
    session: Session, connection: str, name: str, policy: FlushPolicy, now: datetime
) -> list[tuple[Key, WriteBack, dict[str, Any], int]]:
    """Due rows, leased: each one's key, the write, its fields as compared, its revision."""
    query = (
        select(WriteBackItem)
        .where(WriteBackItem.connection == connection, WriteBackItem.source == name)
        .where(WriteBackItem.next_attempt_at <= now)
        .where(
            or_(col(WriteBackItem.claimed_until).is_(None), col(WriteBackItem.claimed_until) < now)
        )
        .order_by(col(WriteBackItem.enqueued_at))
        .limit(BATCH)
    )
    claimed = []
    for row in session.exec(for_update(session, query, skip_locked=True)):
        row.claimed_until = now + timedelta(seconds=policy.lease)
        session.add(row)
        change = WriteBack(
            model=row.model,
            key_field=row.key_field,
            key=row.key_value,
            planhat_id=row.planhat_id,
            fields=nested(row.fields),
            version=row.version,
            deleted=row.deleted,
        )
        key = (row.connection, row.source, row.model, row.key)
        claimed.append((key, change, dict(row.fields), row.revision))
    return claimed


def _settle(
    engine: Engine, key: Key, sent: dict[str, Any], revision: int, policy: FlushPolicy
) -> None:
    """The source has it: the link's source side holds what was written (an echo of it is
    dropped), and the row goes unless a newer change merged into it meanwhile."""
    with session_scope(engine) as session:
        row = session.get(WriteBackItem, key, with_for_update=True)
        link = session.get(Link, (key[0], key[2], key[3]), with_for_update=True)
        if link is not None:
            now = utcnow()
            link.source_written_hash, link.source_written_at = fields_hash(sent), now
            session.add(link)
            if wrote(session, link, "source", policy, now):  # flapping: nothing more goes out
                pending = session.get(OutboxItem, (key[0], key[2], key[3]))
                if pending is not None:
                    session.delete(pending)
                return  # its write_back row went with the quarantine
        if row is None:
            return
        if row.revision == revision:
            session.delete(row)
        else:
            row.claimed_until = None
            session.add(row)


def postpone(engine: Engine, connection: str, name: str, delay: float) -> None:
    """Every row of ``name`` waits ``delay`` (it cannot be written now: configuration)."""
    when = utcnow() + timedelta(seconds=delay)
    with session_scope(engine) as session:
        query = select(WriteBackItem).where(
            WriteBackItem.connection == connection, WriteBackItem.source == name
        )
        for row in session.exec(for_update(session, query)):
            row.next_attempt_at = max(row.next_attempt_at, when)
            session.add(row)


def _release(engine: Engine, connection: str, keys: list[Key], *, delay: float) -> None:
    """Give rows back, due after ``delay``, without an attempt: waiting is not failing."""
    when = utcnow() + timedelta(seconds=delay)
    with session_scope(engine) as session:
        for key in keys:
            row = session.get(WriteBackItem, key, with_for_update=True)
            if row is not None:
                row.claimed_until, row.next_attempt_at = None, when
                session.add(row)


def _retry(engine: Engine, key: Key, reason: str, policy: FlushPolicy) -> int:
    """An attempt failed: back off, capped; after ``max_attempts`` a dead letter (1)."""
    with session_scope(engine) as session:
        row = session.get(WriteBackItem, key, with_for_update=True)
        if row is None:
            return 0
        row.attempts += 1
        row.last_error, row.claimed_until = reason, None
        if row.attempts >= policy.max_attempts:
            bury(session, row, f"gave up after {row.attempts} attempts: {reason}")
            return 1
        row.next_attempt_at = utcnow() + timedelta(seconds=policy.backoff(row.attempts))
        session.add(row)
        return 0


def _bury(engine: Engine, key: Key, revision: int, reason: str) -> int:
    with session_scope(engine) as session:
        row = session.get(WriteBackItem, key, with_for_update=True)
        if row is None:
            return 0
        row.attempts += 1
        if row.revision != revision:  # newer data merged in: it may be taken; try that first
            row.claimed_until, row.last_error = None, reason
            session.add(row)
            return 0
        bury(session, row, reason)
        return 1


def bury(session: Session, row: WriteBackItem, reason: str) -> None:
    session.add(letter_of(row, reason, target=row.source, planhat_id=row.planhat_id))
    session.delete(row)
    log.warning("write_back.dead_letter", source=row.source, model=row.model, key=row.key,
                reason=reason)  # fmt: skip


def offer_back_again(session: Session, letter: DeadLetter) -> str:
    """A dead write-back queued again as it was stored (``dlq retry``), merged under any
    newer change of that record waiting meanwhile."""
    key = (letter.connection, letter.target or "", letter.model, letter.key)
    row = session.get(WriteBackItem, key, with_for_update=True)
    if row is not None:
        if letter.version >= row.version:
            row.fields, row.version = {**row.fields, **letter.fields}, letter.version
        else:
            row.fields = {**letter.fields, **row.fields}
        row.revision += 1
        row.next_attempt_at = utcnow()
        session.add(row)
        return "merged into a waiting write-back"
    session.add(
        WriteBackItem(
            connection=letter.connection,
            source=letter.target or "",
            model=letter.model,
            key=letter.key,
            key_field=letter.key_field,
            key_value=letter.key_value,
            planhat_id=letter.planhat_id or "",
            fields=dict(letter.fields),
            version=letter.version,
            deleted=False,
            event_id=letter.event_id,
            inbox_id=letter.inbox_id,
        )
    )
    return "queued to be written back"
