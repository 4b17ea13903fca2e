"""Flush: outbox → rate budget → one Planhat bulk upsert → record state or dead letter.

A flush claims a batch of due rows (a lease, so a killed worker's rows come back), sends
them as one keyed bulk upsert, and settles each row by its own result. Nothing is lost
between the steps: a row leaves the outbox only in the transaction that records its
outcome, and only if no newer change arrived meanwhile (its ``revision``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, func, or_
from sqlmodel import Session, col, select

from connectors.planhat.bulk import RecordResult
from connectors.planhat.client import PlanhatClient
from connectors.planhat.models import MODELS, Operation, model_spec
from connectors.source import PrepareContext, PrepareHook, Preparing
from connectors.sources import SOURCES
from state.db import for_update, session_scope
from state.records import record_states
from state.tables import OutboxItem, utcnow
from worker.pipeline.batch import Claimed, FlushPolicy, FlushReport
from worker.pipeline.deletions import delete_in_planhat, is_deletion, planhat_ref, settle_deleted
from worker.pipeline.links import nested
from worker.pipeline.merge import pushed_of, still_needed
from worker.pipeline.outcomes import Action, Outcome, outcome_of
from worker.pipeline.parents import company_key
from worker.pipeline.settle import PartlySettled, bury, release, settle
from worker.runtime import metrics
from worker.runtime.logs import describe
from worker.runtime.ratelimit import RateLimiter, budget_taker

log = structlog.get_logger(__name__)

# Records others reference go first: a license names its company, so companies flush
# before licenses, and a child whose parent is still pending waits for it.
PARENTS = ("companies", "endusers")
FLUSH_ORDER = (*PARENTS, *(name for name in MODELS if name not in PARENTS))


def with_settled(fields: dict[str, Any], settled: dict[str, Any] | None) -> dict[str, Any]:
    """A record's fields with those a prepare hook found (``custom`` merged per key)."""
    if not settled:
        return fields
    out = {**fields, **settled}
    if isinstance(fields.get("custom"), dict) and isinstance(settled.get("custom"), dict):
        out["custom"] = {**fields["custom"], **settled["custom"]}
    return out


def prepare_hooks(model: str) -> list[PrepareHook]:
    """The hooks registered sources declare for ``model``, each once, in registry order."""
    hooks: list[PrepareHook] = []
    for source in SOURCES.values():
        if isinstance(source, Preparing):
            hook = source.prepare.get(model)
            if hook is not None and all(hook is not known for known in hooks):
                hooks.append(hook)
    return hooks


@dataclass(frozen=True, slots=True)
class FlushPlan:
    """Which models of a connection may be sent now, and when the next one may."""

    ready: frozenset[str]
    next_in: float | None  # seconds until another row is ready; None: nothing waits


def flush_plan(engine: Engine, connection: str, *, batch_size: int, linger: float) -> FlushPlan:
    """A model is ready when a full batch of its rows is due, or when its oldest due row
    has waited ``linger`` seconds (Kafka's ``linger.ms`` and ``batch.size``): in a burst
    batches fill, at a trickle a change waits about ``linger``. Rows claimed by a running
    flush, or backing off, are not due."""
    now = utcnow()
    free = or_(col(OutboxItem.claimed_until).is_(None), col(OutboxItem.claimed_until) < now)
    mine = OutboxItem.connection == connection
    with session_scope(engine) as session:
        due = session.exec(
            select(OutboxItem.model, func.count(), func.min(OutboxItem.enqueued_at))
            .where(mine, free, OutboxItem.next_attempt_at <= now)
            .group_by(OutboxItem.model)
        ).all()
        later = session.exec(
            select(func.min(OutboxItem.next_attempt_at)).where(
                mine, free, OutboxItem.next_attempt_at > now
            )
        ).one()
    ready: set[str] = set()
    waits: list[float] = []
    for model, count, oldest in due:
        waited = (now - oldest).total_seconds()
        if count >= batch_size or waited >= linger:
            ready.add(model)
        else:
            waits.append(linger - waited)
    if later is not None:
        waits.append((later - now).total_seconds())
    return FlushPlan(frozenset(ready), max(0.0, min(waits)) if waits else None)


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
    if pending_parents:
        # A company Planhat has already (only a newer version waits) resolves the child's
        # reference now: only children of companies never written wait for them. Under a
        # steady stream every company has a newer version waiting most of the time.
        known = record_states(session, connection, ["companies"], pending_parents)
        pending_parents -= {key for _, key in known}
    claimed: list[Claimed] = []
    for row in rows:
        deletion = is_deletion(row.fields)
        if not deletion and not still_needed(row, pushed_of(states.get(row.key))):
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
                # "~" fields are planhat-sync's own hints (connectors/surveys.py): never
                # sent; "custom.<name>" fields (custom field rules) go in "custom"
                record={
                    row.key_field: row.key_value,
                    **nested({k: v for k, v in row.fields.items() if not k.startswith("~")}),
                },
                fields=dict(row.fields),
                version=row.version,
                attempts=row.attempts,
                planhat_id=planhat_ref(row, states.get(row.key)) if deletion else None,
            )
        )
    return claimed, report


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
    hooks: Sequence[PrepareHook] = (),
    memo: dict[str, Any] | None = None,
) -> FlushReport:
    """Claim one batch of ``model`` for ``connection``, then prepare (``hooks``, in order),
    send and settle it. Whatever goes wrong is mapped to one action (``outcome_of``)."""
    if not model_spec(model).supports(Operation.UPSERT):
        policy = replace(policy, batch_size=1)  # one record per budgeted call
    with session_scope(engine) as session:
        claimed, report = _claim(session, connection, model, policy, utcnow())
    if not claimed:
        metrics.records_settled(connection, model, {"dropped": report.dropped})
        return report
    take = budget_taker(limiter, budget, max_wait=policy.max_budget_wait, sleep=sleep)
    context = PrepareContext(
        connection=connection, planhat=planhat, take_budget=take, memo={} if memo is None else memo
    )
    flush = _Flush(engine, planhat, limiter, connection, model, budget, policy, report)
    with structlog.contextvars.bound_contextvars(connection=connection, model=model):
        flush.run(claimed, context, hooks)
        log.info("flush.done", sent=report.sent, written=report.written, dead=report.dead,
                 deleted=report.deleted, deferred=report.deferred)  # fmt: skip
    metrics.records_settled(connection, model, {
        "applied": report.written, "dead": report.dead, "dropped": report.dropped,
        "deleted": report.deleted,
    })  # fmt: skip
    return report


@dataclass(slots=True)
class _Flush:
    engine: Engine
    planhat: PlanhatClient
    limiter: RateLimiter
    connection: str
    model: str
    budget: str
    policy: FlushPolicy
    report: FlushReport

    def run(
        self, batch: list[Claimed], context: PrepareContext, hooks: Sequence[PrepareHook]
    ) -> float | None:
        """Prepare, send and settle ``batch``. Returns a delay when the flush must stop
        (no budget, 429, configuration): what is left waits that long, without an attempt."""
        deletions = [item for item in batch if is_deletion(item.fields)]
        if deletions:
            batch = [item for item in batch if not is_deletion(item.fields)]
            stop = self._delete(deletions, context, hooks)
            if stop is not None:
                self.release(batch, delay=stop)
                return stop
        if not batch:
            return None
        try:
            batch = self._prepare(batch, context, hooks)
            if not batch:
                return None
            context.take_budget()
            self.report.sent += len(batch)
            self.report.calls += 1
            results = self._send(batch)
        except Exception as error:
            return self._act(outcome_of(error, len(batch)), batch, context, hooks)
        try:
            settle(self.engine, self.connection, self.model, batch, results, self.policy,
                   self.report)  # fmt: skip
        except PartlySettled as error:  # written, but not remembered: send again (keyed)
            why = f"could not record the result: {describe(error.cause)}"
            return self._act(Outcome(Action.BACK_OFF, why), batch[error.done :], context, hooks)
        return None

    def _delete(
        self, deletions: list[Claimed], context: PrepareContext, hooks: Sequence[PrepareHook]
    ) -> float | None:
        """Planhat's single delete for each deletion row (worker/pipeline/deletions.py), in
        the budget like any call; what goes wrong is acted on as for an upsert."""
        for n, item in enumerate(deletions):
            try:
                if item.planhat_id is not None:  # None: Planhat never had it, no call
                    context.take_budget()
                    self.report.calls += 1
                    self.report.delete_calls += 1
                    delete_in_planhat(self.planhat, self.model, item.planhat_id)
                with session_scope(self.engine) as session:
                    settle_deleted(session, self.connection, self.model, item, self.report)
            except Exception as error:
                stop = self._act(outcome_of(error, 1), [item], context, hooks)
                if stop is not None:
                    self.release(deletions[n + 1 :], delay=stop)
                    return stop
        return None

    def _prepare(
        self, batch: list[Claimed], context: PrepareContext, hooks: Sequence[PrepareHook]
    ) -> list[Claimed]:
        for hook in hooks:
            prepared = hook(
                context, [item.fields for item in batch], [item.record for item in batch]
            )
            self.report.calls += prepared.calls
            self._set_aside([(batch[i], why) for i, why in prepared.refused.items()])
            self._set_aside([(batch[i], why) for i, why in prepared.waiting.items()], wait=True)
            found = prepared.settled
            batch = [
                replace(item, record=record, fields=with_settled(item.fields, found.get(index)))
                for index, (item, record) in enumerate(zip(batch, prepared.records, strict=True))
                if index not in prepared.refused and index not in prepared.waiting
            ]
        return batch

    def _send(self, batch: list[Claimed]) -> Sequence[RecordResult]:
        log.info("flush.sending", records=len(batch))
        records = [item.record for item in batch]
        if model_spec(self.model).supports(Operation.UPSERT):
            return self.planhat.bulk_upsert(self.model, records, chunk_size=len(records))
        # custom fields: one keyed update-or-create (the batch is one record)
        return self.planhat.upsert_each(self.model, records, key_field=batch[0].key_field)

    def _act(
        self,
        outcome: Outcome,
        batch: list[Claimed],
        context: PrepareContext,
        hooks: Sequence[PrepareHook],
    ) -> float | None:
        report = self.report
        if outcome.action is Action.SPLIT:
            # Halve until the records that cause it stand alone (and are buried).
            log.warning("flush.split", records=len(batch), reason=outcome.reason)
            middle = len(batch) // 2
            halves = (batch[:middle], batch[middle:])
            stop = self.run(halves[0], context, hooks)
            if stop is not None:
                self.release(halves[1], delay=stop)
                return stop
            return self.run(halves[1], context, hooks)
        if outcome.action is Action.BURY:
            self._set_aside([(item, outcome.reason) for item in batch])
            return None
        if outcome.action is Action.BACK_OFF:
            report.dead += release(self.engine, self.connection, self.model, batch, delay=0,
                                    error=outcome.reason, policy=self.policy)  # fmt: skip
            report.deferred += len(batch)
            report.retry_in = self.policy.backoff(1)
            report.errors.append(outcome.reason)
            log.warning("flush.retry", error=outcome.reason)
            return None
        report.stopped = True
        delay = outcome.delay
        if outcome.action is Action.PAUSE and outcome.guessed:
            # No time given: one shared guess for every worker on the token, grown at each
            # such 429 (a 429 met while a pause is on does not grow it again).
            delay = self.limiter.back_off(
                self.budget, first=outcome.delay, cap=self.policy.rate_limit_guess_cap
            )
            log.info("flush.rate_limited", retry_after=delay, guessed=True)
        elif outcome.action is Action.PAUSE:  # every worker on this token waits now
            self.limiter.pause(self.budget, delay)
            log.info("flush.rate_limited", retry_after=delay)
        if outcome.action is Action.REST:
            report.errors.append(outcome.reason)
            log.error("flush.fatal", error=outcome.reason)
        self.release(batch, delay=delay)
        return delay

    def release(self, batch: list[Claimed], *, delay: float) -> None:
        """Give rows back without an attempt: waiting is not failing."""
        release(self.engine, self.connection, self.model, batch, delay=delay)
        self.report.deferred += len(batch)
        self.report.retry_in = delay

    def _set_aside(self, reasons: Sequence[tuple[Claimed, str]], *, wait: bool = False) -> None:
        """Dead letters for claimed records, with their reasons; with ``wait``, only after
        ``parent_wait_attempts`` tries (what they need may still arrive), backing off until
        then. A row a newer change reached meanwhile is tried again first: it may be fixed."""
        if not reasons:
            return
        now = utcnow()
        with session_scope(self.engine) as session:
            for item, reason in reasons:
                row = session.get(OutboxItem, (self.connection, self.model, item.key))
                if row is None:
                    continue
                row.claimed_until = None
                if row.revision == item.revision:
                    row.attempts += 1
                    if not wait or row.attempts >= self.policy.parent_wait_attempts:
                        bury(session, row, reason)
                        self.report.dead += 1
                        continue
                    row.last_error = reason
                    row.next_attempt_at = now + timedelta(seconds=self.policy.backoff(row.attempts))
                    self.report.deferred += 1
                session.add(row)
